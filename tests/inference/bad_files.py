"""A corpus of bad input files next to one good series, built from pydicom's own test files.

Every entry records where a scan must list it (``errors``, ``not_dicom``, ``non_image`` or as a
``stack`` whose loading fails) and which typed error :func:`read_header` or the loader raises.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

GOOD_SERIES_UID = "1.2.826.0.1.3680043.8.498.11111111111111111111"
GOOD_N = 5
GOOD_STEP_MM = 5.0
NON_UTF8_NAME = os.fsdecode(b"bad\xff.dcm")
MPEG2_MAIN_PROFILE = "1.2.840.10008.1.2.4.100"


def testdata(name: str) -> Path:
    path = get_testdata_file(name)
    assert path is not None, f"pydicom test file {name} is missing (pip install pydicom-data)"
    return Path(path)


def ct_small() -> pydicom.Dataset:
    return pydicom.dcmread(testdata("CT_small.dcm"))


def running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@dataclass(frozen=True)
class BadFile:
    """One bad input: where a scan must list it and which error class names it."""

    name: str
    path: str
    listed_in: str  # "errors", "not_dicom", "non_image", "stack" (scans, but loading fails) or "none"
    error: str | None  # LoadError subclass name (scan problem, read_header or load_stack)
    reason_words: tuple[str, ...] = ()  # lower-case words the reason must contain (any of them)


def write_good_series(folder: Path) -> list[Path]:
    """Five CT_small copies 5 mm apart; file names and instance numbers deliberately out of order."""
    folder.mkdir(parents=True, exist_ok=True)
    base = ct_small()
    arr = base.pixel_array
    z0 = float(base.ImagePositionPatient[2])
    names = ["s_c.dcm", "s_a.dcm", "s_e.dcm", "s_b.dcm", "s_d.dcm"]  # slice k is written to names[k]
    instance = [3, 5, 1, 4, 2]
    paths = []
    for k in range(GOOD_N):
        ds = ct_small()
        ds.SOPInstanceUID = f"{GOOD_SERIES_UID}.{k + 1}"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.SeriesInstanceUID = GOOD_SERIES_UID
        ds.SeriesDescription = "good series"
        ds.InstanceNumber = instance[k]
        ds.ImagePositionPatient = [*list(base.ImagePositionPatient)[:2], f"{z0 + GOOD_STEP_MM * k:.6f}"]
        ds.SliceLocation = f"{z0 + GOOD_STEP_MM * k:.6f}"
        ds.PixelData = (arr + np.int16(10 * k)).astype(arr.dtype).tobytes()
        path = folder / names[k]
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def good_slice_values(k: int) -> np.ndarray:
    """Rescaled (HU) values of slice ``k`` of the good series."""
    base = ct_small()
    stored = base.pixel_array.astype(np.int32) + 10 * k
    return stored * int(base.RescaleSlope) + int(base.RescaleIntercept)


def _own_series(ds: pydicom.Dataset, description: str) -> pydicom.Dataset:
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesDescription = description
    return ds


def _value_cut(source: Path, keyword_tag: int, into: int) -> bytes:
    """The bytes of ``source`` cut ``into`` bytes into the value of the element ``keyword_tag``."""
    raw = source.read_bytes()
    ds = pydicom.dcmread(source, stop_before_pixels=True)
    for elem in ds.elements():
        if int(elem.tag) == keyword_tag:
            tell = elem.value_tell
            break
    else:  # pragma: no cover - the test files are fixed
        raise AssertionError(f"tag {keyword_tag:08x} not in {source}")
    return raw[: tell + into]


def build_corpus(root: Path) -> tuple[list[Path], dict[str, BadFile]]:
    """Write the good series and one of each bad input into ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    good = write_good_series(root)
    ct_path = testdata("CT_small.dcm")
    bad: dict[str, BadFile] = {}

    def add(name: str, listed_in: str, error: str | None, *words: str) -> Path:
        path = root / name
        bad[name] = BadFile(name, os.fspath(path), listed_in, error, words)
        return path

    add("empty.dcm", "errors", "EmptyFileError", "empty").write_bytes(b"")

    # Cut in the middle of a long value (Series Description "...") and one byte into a US value.
    src = root.parent / f"{root.name}_src.dcm"
    _own_series(ct_small(), "truncated source series with a long description").save_as(src, enforce_file_format=True)
    add("trunc_header.dcm", "errors", "TruncatedFileError", "header").write_bytes(_value_cut(src, 0x0008103E, 9))
    add("trunc_header_us.dcm", "errors", "TruncatedFileError", "header").write_bytes(_value_cut(src, 0x00280103, 1))
    src.unlink()

    raw = ct_path.read_bytes()
    add("trunc_pixels.dcm", "errors", "TruncatedFileError", "pixel data").write_bytes(raw[:-1000])
    add("notes.txt", "not_dicom", "NotDicomError", "not a dicom").write_text("patient list\nnot an image\n")
    add("image.dcm", "not_dicom", "NotDicomError", "not a dicom").write_bytes(
        b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
    )

    sr = _own_series(pydicom.dcmread(testdata("test-SR.dcm")), "structured report")
    sr.save_as(add("report_sr.dcm", "non_image", None), enforce_file_format=True)
    no_pixels = _own_series(ct_small(), "no pixels")
    del no_pixels.PixelData
    no_pixels.save_as(add("no_pixels.dcm", "non_image", None), enforce_file_format=True)

    no_geo = _own_series(ct_small(), "no geometry")
    for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
        delattr(no_geo, keyword)
    no_geo.save_as(add("no_geometry.dcm", "stack", "MissingGeometryError", "imagepositionpatient"))

    absurd = _own_series(ct_small(), "absurd")
    absurd.Rows = 65535
    absurd.Columns = 65535
    absurd.NumberOfFrames = 100000
    absurd.save_as(add("absurd.dcm", "errors", "AbsurdDimensionsError", "refusing"))

    mpeg = _own_series(pydicom.dcmread(testdata("JPEG2000.dcm")), "mpeg2")
    mpeg.file_meta.TransferSyntaxUID = MPEG2_MAIN_PROFILE
    mpeg.save_as(add("mpeg2.dcm", "stack", "UnsupportedTransferSyntaxError", MPEG2_MAIN_PROFILE))

    # Unreadable: root reads anything, so there a FIFO stands in (a real permission test runs
    # separately with the DAC capabilities dropped). Otherwise a chmod 000 copy of a DICOM file.
    fifo = add("pipe.dcm", "errors", "UnreadableFileError", "regular", "fifo")
    os.mkfifo(fifo)
    if not running_as_root():
        locked = add("locked.dcm", "errors", "UnreadableFileError", "permission")
        _own_series(ct_small(), "locked").save_as(locked, enforce_file_format=True)
        locked.chmod(0)

    os.symlink("does_not_exist.dcm", add("broken_link.dcm", "errors", "UnreadableFileError", "broken"))
    os.symlink("self_loop.dcm", add("self_loop.dcm", "errors", "UnreadableFileError", "loop"))
    (root / "sub").mkdir()
    os.symlink("..", add(os.path.join("sub", "up"), "errors", "UnreadableFileError", "loop"), target_is_directory=True)
    # A folder with a file's name: an (empty) folder for a scan, unreadable as a file.
    add("folder.dcm", "none", "UnreadableFileError", "directory", "regular", "folder").mkdir()

    odd = _own_series(ct_small(), "non-utf8 name")
    odd.save_as(root / NON_UTF8_NAME, enforce_file_format=True)
    return good, bad


def tree_fingerprint(root: Path) -> dict[bytes, tuple[object, ...]]:
    """Every entry below ``root`` (links not followed): kind, mode, size, content hash or link target."""
    out: dict[bytes, tuple[object, ...]] = {}
    base = os.fsencode(root)

    def walk(folder: bytes) -> None:
        for entry in os.scandir(folder):
            st = entry.stat(follow_symlinks=False)
            rel = os.path.relpath(entry.path, base)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(entry.path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", st.st_mode)
                walk(entry.path)
            elif stat.S_ISREG(st.st_mode):
                try:
                    with open(entry.path, "rb") as fp:
                        digest = hashlib.sha256(fp.read()).hexdigest()
                except PermissionError:
                    digest = "unreadable"
                out[rel] = ("file", st.st_mode, st.st_size, st.st_mtime_ns, digest)
            else:
                out[rel] = ("special", st.st_mode, st.st_mtime_ns)

    walk(base)
    return out
