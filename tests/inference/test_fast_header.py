"""The pydicom-free header reader against the pydicom path, and the loader's in-place int16 fast path.

Whenever :func:`read_header_fast` returns a header it must equal, field for field, what the
pydicom path of :func:`read_header` gives for the same file; when it is unsure it returns
``None`` and the pydicom path decides (including every typed error).
"""

from __future__ import annotations

import dataclasses
import os
import struct
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_files
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from inference.errors import LoadError
from inference.io import fast_header
from inference.io.dicom_header import DicomHeader, _read_header_pydicom, read_header
from inference.io.dicom_loader import load_stack
from inference.io.dicom_writer import write_dicom_series
from inference.io.fast_header import read_header_fast
from inference.io.scan import scan

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _pydicom_header(path: str) -> DicomHeader | LoadError:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return _read_header_pydicom(path, os.stat(path))
        except LoadError as exc:
            return exc


def _fast(path: str) -> DicomHeader | None:
    data = Path(path).read_bytes()
    return read_header_fast(path, data, os.stat(path))


def _same(a: DicomHeader, b: DicomHeader) -> bool:
    """Field for field (NaN equal to NaN, as the pydicom path may hand NaN through)."""
    da, db = dataclasses.asdict(a), dataclasses.asdict(b)
    return da == db or repr(da) == repr(db)


def _check_same(path: str) -> bool:
    """Assert the fast header equals the pydicom one; return whether the fast reader answered."""
    ref = _pydicom_header(path)
    try:
        fast = _fast(path)
    except LoadError as exc:  # only what the pydicom path raises too (absurd dimensions)
        assert type(exc) is type(ref) and str(exc) == str(ref), (path, exc, ref)
        return True
    # read_header (first chunk, more on demand, then pydicom when unsure) answers the same.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            got: DicomHeader | LoadError = read_header(path)
        except LoadError as exc:
            got = exc
    if isinstance(ref, LoadError):
        assert type(got) is type(ref) and str(got) == str(ref), (path, got, ref)
    else:
        assert isinstance(got, DicomHeader), (path, got)
        assert _same(got, ref)
    if fast is None:
        return False
    assert isinstance(ref, DicomHeader), f"{path}: pydicom path raised {ref!r}, fast reader answered"
    assert _same(fast, ref)
    return True


def test_tables_match_pydicoms_dictionary() -> None:
    for tag, (keyword, vr) in fast_header.NEEDED.items():
        assert keyword_for_tag(tag) == keyword
        assert dictionary_VR(tag) == vr
    for tag in fast_header.IMPLICIT_SQ_TAGS:
        assert dictionary_VR(tag) == "SQ", keyword_for_tag(tag)


def test_every_pydicom_test_file() -> None:
    answered = 0
    files = sorted({f for f in get_testdata_files() if os.path.isfile(f)})
    assert len(files) > 100, "install pydicom-data"
    for path in files:
        answered += _check_same(path)
    assert answered > 80  # the common files really go through the fast reader


def test_generated_ct_series(tmp_path: Path) -> None:
    vox = np.random.default_rng(3).integers(-1024, 3000, size=(4, 16, 12), dtype=np.int16)
    paths = write_dicom_series(
        vox,
        tmp_path,
        spacing=(0.7, 0.8, 1.25),
        origin=(-10.5, 20.25, 3.0),
        series_description="Thorax ÄÖ",
        study_description="body",
        window_center=[40, -600],
        window_width=[400, 1500],
    )
    for p in paths:
        assert _check_same(str(p))


def test_truncated_copies_agree(tmp_path: Path) -> None:
    """Cut short anywhere in the header: the same header or the same typed error as pydicom."""
    vox = np.zeros((1, 4, 4), dtype=np.int16)
    (src,) = write_dicom_series(vox, tmp_path / "src", spacing=(1, 1, 1))
    data = src.read_bytes()
    for cut in range(1, len(data) + 1, 3):
        p = tmp_path / f"cut_{cut}.dcm"
        p.write_bytes(data[:cut])
        ref = _pydicom_header(str(p))
        try:
            got: DicomHeader | LoadError = read_header(p)
        except LoadError as exc:
            got = exc
        if isinstance(ref, LoadError):
            assert type(got) is type(ref), (cut, got, ref)
        else:
            assert isinstance(got, DicomHeader), (cut, got)
            assert _same(got, ref)
        _check_same(str(p))
        p.unlink()


def test_large_header_is_read_on_demand(tmp_path: Path) -> None:
    """A header longer than the first chunk still goes through the fast reader."""
    ds = _base_dataset()
    ds.add_new(0x00091010, "LO", "p")  # private creator-ish padding before a long private value
    ds.add_new(0x00091011, "OB", b"\x00" * (fast_header.FIRST_CHUNK * 2))
    path = tmp_path / "big.dcm"
    _save(ds, path, explicit=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        fast = fast_header.read_header_fd(str(path), fd, os.stat(path))
    finally:
        os.close(fd)
    assert fast is not None
    assert fast == _pydicom_header(str(path))


# ------------------------------------------------------------------------------ random headers


def _base_dataset() -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = "CT"
    ds.Rows = 4
    ds.Columns = 4
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.PixelRepresentation = 0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    return ds


def _save(ds: Dataset, path: Path, explicit: bool) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.get("SOPClassUID", CTImageStorage)
    meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID", generate_uid())
    meta.TransferSyntaxUID = ExplicitVRLittleEndian if explicit else ImplicitVRLittleEndian
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(path, enforce_file_format=True)


_good_ds = st.one_of(
    st.floats(-1e4, 1e4, allow_nan=False).map(lambda v: f"{v:.6g}"),
    st.sampled_from(["0", "-0", "1", " 1.5", "1.5 ", "+2", ".5", "5.", "1e3", "1E-2", "007", ""]),
)
_odd_ds = st.one_of(_good_ds, st.sampled_from(["abc", "1_0", "nan", "inf", "1e400"]))
_good_is = st.one_of(st.integers(-(2**31), 2**31 - 1).map(str), st.sampled_from(["0", "-0", "+5", " 7", "05", ""]))
_odd_is = st.one_of(_good_is, st.sampled_from(["5.0", "5.5", "x", "1e2"]))
_good_text = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126, exclude_characters="\\="), max_size=20),
    st.text(alphabet="abcÄöé ^\t", max_size=12),
)
_odd_text = st.one_of(_good_text, st.text(alphabet="abcÄöé ^=\\ \t", max_size=12))
charsets = st.sampled_from([None, None, "ISO_IR 100", "ISO_IR 100", "ISO_IR 192", "ISO_IR 6", "", "ISO 2022 IR 100"])


def _multi(draw: Any, item: Any, n: int) -> str:
    return "\\".join(draw(item) for _ in range(n))


def _raw(ds: Dataset, keyword: str, value: str | bytes, explicit: bool, vr: str | None = None) -> None:
    """Put ``value`` into ``ds`` exactly as given (even if invalid), padded to an even length."""
    tag = pydicom.datadict.tag_for_keyword(keyword)
    assert tag is not None
    raw = value.encode("latin-1") if isinstance(value, str) else value
    if len(raw) % 2:
        raw += b"\0" if (vr or dictionary_VR(tag)) == "UI" else b" "
    ds[tag] = RawDataElement(BaseTag(tag), vr or dictionary_VR(tag), len(raw), raw, 0, not explicit, True)


@st.composite
def random_headers(draw: Any) -> tuple[Dataset, bool]:
    ds = _base_dataset()
    rarely = st.sampled_from([False] * 9 + [True])
    odd = draw(st.sampled_from([False, False, False, True]))  # values only pydicom reads
    ds_numbers = _odd_ds if odd else _good_ds
    is_numbers = _odd_is if odd else _good_is
    texts = _odd_text if odd else _good_text
    explicit = draw(st.booleans())
    charset = draw(charsets)
    if charset is not None:
        _raw(ds, "SpecificCharacterSet", charset, explicit)
    ds.Rows = draw(st.integers(0, 40000))
    ds.Columns = draw(st.integers(0, 600))
    if draw(st.booleans()):
        del ds.Rows
    ds.BitsAllocated = draw(st.sampled_from([8, 16, 32]))
    ds.PixelRepresentation = draw(st.integers(0, 1))
    for kw, n in (("ImagePositionPatient", 3), ("ImageOrientationPatient", 6), ("PixelSpacing", 2)):
        if draw(st.booleans()):
            _raw(ds, kw, _multi(draw, ds_numbers, draw(st.sampled_from([n, n, n, 1, n + 1]))), explicit)
    for kw in ("RescaleSlope", "RescaleIntercept", "SliceThickness"):
        if draw(st.booleans()):
            _raw(ds, kw, _multi(draw, ds_numbers, draw(st.sampled_from([1, 1, 1, 2]))), explicit)
    if draw(st.booleans()):
        n = draw(st.integers(1, 3))
        _raw(ds, "WindowCenter", _multi(draw, ds_numbers, n), explicit)
        _raw(ds, "WindowWidth", _multi(draw, ds_numbers, draw(st.integers(1, 3))), explicit)
    for kw in ("SeriesNumber", "InstanceNumber", "AcquisitionNumber", "EchoNumbers", "NumberOfFrames"):
        if draw(st.booleans()) and (kw != "NumberOfFrames" or draw(st.booleans())):
            _raw(ds, kw, _multi(draw, is_numbers, draw(st.sampled_from([1, 1, 1, 2]))), explicit)
    for kw in ("SeriesDescription", "StudyDescription", "PatientID", "PatientName"):
        if draw(st.booleans()):
            value = draw(texts)
            enc = "utf-8" if charset == "ISO_IR 192" else "latin-1"
            try:
                raw = value.encode(enc)
            except UnicodeEncodeError:
                raw = value.encode("utf-8")
            _raw(ds, kw, raw, explicit)
    for kw in ("Modality", "PhotometricInterpretation", "ImageType", "Units", "StudyDate"):
        if draw(st.booleans()):
            _raw(
                ds,
                kw,
                draw(st.sampled_from(["", "CT", "mr ", " PT", "ORIGINAL\\PRIMARY\\AXIAL", "A\\\\B", "x "])),
                explicit,
            )
    for kw in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        if draw(st.booleans()):
            _raw(ds, kw, draw(st.sampled_from(["", "1.2.3", "1.2.3\\4.5", "1.2.840.99 ", "1.2\0"])), explicit)
    if draw(st.booleans()):  # a sequence, nested, with defined or undefined lengths
        inner = Dataset()
        inner.CodeValue = draw(texts)
        inner.CodeMeaning = "x"
        item = Dataset()
        item.ReferencedSOPClassUID = CTImageStorage
        item.ReferencedSOPInstanceUID = "1.2.3.4"
        item.PurposeOfReferenceCodeSequence = Sequence([inner])
        ds.ReferencedImageSequence = Sequence([item, Dataset()] if draw(st.booleans()) else [item])
        if draw(st.booleans()):
            ds.ReferencedImageSequence.is_undefined_length = False
    if draw(st.booleans()):  # a private block, with a private sequence
        ds.add_new(0x00290010, "LO", "RADLENS")
        ds.add_new(0x00291010, "OB", b"\x01\x02" * draw(st.integers(0, 20)))
        priv = Dataset()
        priv.add_new(0x00291020, "LO", "inner")
        ds.add_new(0x00291030, "SQ", Sequence([priv]))
    if draw(st.booleans()):
        ds.PixelData = b"\x00" * draw(st.sampled_from([0, 2, 32]))
        ds["PixelData"].VR = "OW"
    if draw(rarely):
        _raw(ds, "DoseGridScaling", "0.5", explicit)
    if draw(rarely):  # a standard tag with an unexpected VR
        _raw(ds, draw(st.sampled_from(["Rows", "Modality", "RescaleSlope"])), b"\x01\x00", explicit, vr="SS")
    return ds, explicit


@SETTINGS
@given(random_headers())
def test_random_headers_match_pydicom(case: tuple[Dataset, bool]) -> None:
    ds, explicit = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.dcm"
        try:
            _save(ds, path, explicit)
        except Exception:
            return  # pydicom cannot write this combination (value/VR/charset)
        _check_same(str(path))


# ------------------------------------------------------------------------------ loader fast path


def _write_stored(
    tmp: Path, stored: np.ndarray, intercept: str, pixel_rep: int, bits_stored: int = 16, slope: str = "1"
) -> Path:
    folder = tmp / f"s{pixel_rep}_{intercept}_{slope}_{bits_stored}"
    for k in range(stored.shape[0]):
        ds = _base_dataset()
        ds.Rows, ds.Columns = stored.shape[1:]
        ds.BitsStored = bits_stored
        ds.HighBit = bits_stored - 1
        ds.PixelRepresentation = pixel_rep
        ds.SeriesInstanceUID = "1.2.3.9"
        ds.StudyInstanceUID = "1.2.3.8"
        ds.FrameOfReferenceUID = "1.2.3.7"
        ds.ImagePositionPatient = [0, 0, k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [1, 1]
        ds.RescaleIntercept = intercept
        ds.RescaleSlope = slope
        ds.PixelData = np.ascontiguousarray(stored[k]).astype("<u2" if pixel_rep == 0 else "<i2").tobytes()
        folder.mkdir(exist_ok=True)
        _save(ds, folder / f"{k}.dcm", explicit=True)
    return folder


def _load(folder: Path) -> np.ndarray:
    (stack,) = scan(folder).stacks()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_stack(stack).voxels


@pytest.mark.parametrize(
    ("pixel_rep", "lo", "hi", "intercept", "dtype"),
    [
        (0, 0, 4095, "-1024", np.int16),  # typical CT: fits
        (0, 0, 32767 + 1024, "-1024", np.int16),  # top value exactly at the int16 limit
        (0, 0, 32767 + 1025, "-1024", np.float32),  # one above: float32 fallback
        (0, 0, 65535, "-32768", np.int16),  # wraps the whole unsigned range onto int16
        (0, 0, 100, "-40000", np.float32),  # below -32768
        (0, 32000, 40000, "-40000", np.int16),  # intercept below -32768 but values bring it back
        (1, -2000, 3000, "-1024", np.int16),
        (1, -32768, 100, "-1", np.float32),
        (1, -100, 32767, "1", np.float32),
        (1, -32768, 32767, "0", np.int16),
        (1, 0, 30000, "2767", np.int16),
    ],
)
def test_int16_fast_path_is_exact(
    tmp_path: Path, pixel_rep: int, lo: int, hi: int, intercept: str, dtype: type
) -> None:
    rng = np.random.default_rng(0)
    stored = rng.integers(lo, hi + 1, size=(3, 8, 6), dtype=np.int64)
    stored[0, 0, 0], stored[1, 0, 0] = lo, hi
    folder = _write_stored(tmp_path, stored, intercept, pixel_rep)
    got = _load(folder)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got.astype(np.int64), stored + int(intercept))


def test_slope_other_than_one_still_exact(tmp_path: Path) -> None:
    stored = np.arange(3 * 8 * 6, dtype=np.int64).reshape(3, 8, 6) * 10
    folder = _write_stored(tmp_path, stored, "-1024", 0, slope="2")
    got = _load(folder)
    np.testing.assert_array_equal(got.astype(np.int64), stored * 2 - 1024)


# ------------------------------------------------------------------------------ NIfTI without nibabel


def _rotation_matrix(seed: int) -> np.ndarray:
    u, _, vt = np.linalg.svd(np.random.default_rng(seed).normal(size=(3, 3)))
    return np.asarray(u @ vt)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize(
    "case",
    ["int16", "oblique_float32", "flipped_uint16", "colour", "sheared", "bool"],
)
def test_direct_nifti_writer_matches_nibabel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str, case: str
) -> None:
    """The header written without nibabel has nibabel's fields and values; the voxels are the same."""
    import nibabel as nib

    from inference.io import nifti_writer
    from inference.volume import Volume

    from .nifti_oracle import write_with_nibabel

    rng = np.random.default_rng(7)
    shape = (5, 6, 7)
    direction = {
        "oblique_float32": _rotation_matrix(3),
        "flipped_uint16": np.diag([1.0, 1.0, -1.0]),
        "colour": _rotation_matrix(4),
        "sheared": np.array([[1.0, 0, 0], [0, 1.0, 0.2], [0, 0, 0.98]]),
    }.get(case, np.eye(3))
    voxels: np.ndarray = {
        "oblique_float32": rng.normal(size=shape).astype(np.float32),
        "flipped_uint16": rng.integers(0, 65535, size=shape).astype(np.uint16),
        "colour": rng.integers(0, 255, size=(*shape, 3)).astype(np.uint8),
        "bool": rng.integers(0, 2, size=shape).astype(bool),
    }.get(case, rng.integers(-1024, 3000, size=shape).astype(np.int16))
    vol = Volume(voxels, (0.7, 0.8, 1.5), (1.0, -2.0, 3.0), direction)
    ref_path = write_with_nibabel(vol, tmp_path / f"nib{suffix}")
    own_path = nifti_writer.write_nifti(vol, tmp_path / f"own{suffix}")
    ref, own = nib.load(ref_path), nib.load(own_path)
    for key in ref.header:
        if case == "sheared" and key.startswith("quatern_"):
            continue  # qform code 0: no quaternion describes a sheared grid, and none is read
        a, b = np.asarray(ref.header[key]), np.asarray(own.header[key])
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), (key, a, b)
    np.testing.assert_array_equal(np.asarray(own.dataobj), np.asarray(ref.dataobj))
    assert own_path.read_bytes()[:4] == ref_path.read_bytes()[:4]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([ref_path.name, own_path.name])


def test_convert_imports_neither_pydicom_nor_nibabel(tmp_path: Path) -> None:
    """`radlens convert` of a plain series stays on the fast paths (start-up time counts)."""
    import subprocess
    import sys

    vox = np.random.default_rng(0).integers(-1000, 1000, size=(3, 8, 8), dtype=np.int16)
    write_dicom_series(vox, tmp_path / "series", spacing=(1, 1, 2))
    code = (
        "import sys\n"
        "from inference.cli.main import main\n"
        f"rc = main(['convert', {str(tmp_path / 'series')!r}, {str(tmp_path / 'out.nii')!r}])\n"
        "heavy = {'pydicom', 'nibabel', 'SimpleITK', 'multiprocessing'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))\n"
        "sys.exit(rc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
    import nibabel as nib

    back = np.asarray(nib.load(tmp_path / "out.nii").dataobj)
    np.testing.assert_array_equal(back.transpose(2, 1, 0), vox)


# ------------------------------------------------------------------------------ runs of files (SeriesHeaderReader)


def _fd_header(path: Path, reader: fast_header.SeriesHeaderReader | None) -> DicomHeader | LoadError | None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if reader is None:
            return fast_header.read_header_fd(str(path), fd, os.stat(path))
        return reader.read_fd(str(path), fd, os.stat(path))
    except LoadError as exc:
        return exc
    finally:
        os.close(fd)


def _agree(path: Path, reader: fast_header.SeriesHeaderReader) -> None:
    """The series reader answers exactly what reading the file alone answers."""
    got, ref = _fd_header(path, reader), _fd_header(path, None)
    if isinstance(ref, LoadError):
        assert type(got) is type(ref) and str(got) == str(ref), (path, got, ref)
    elif ref is None:
        assert got is None, (path, got)
    else:
        assert isinstance(got, DicomHeader), (path, got)
        assert _same(got, ref), (path, dataclasses.asdict(got), dataclasses.asdict(ref))


def _numbers(n: int, integers: bool = False) -> Any:
    """``n`` decimal (or integer) strings joined with backslashes: of many lengths, mostly valid."""
    one = (
        st.integers(-2000, 2000).map(str) if integers else st.floats(-500, 500, allow_nan=False).map(lambda v: f"{v:g}")
    )
    good = st.lists(one, min_size=n, max_size=n).map("\\".join)
    return st.one_of(good, good, good, good.map(lambda v: v + " "), st.sampled_from(["", "x", "1e999", " 1.5 "]))


_UIDS = st.lists(st.integers(0, 99999).map(str), min_size=2, max_size=6).map(".".join)
#: Attributes changed from file to file, and their values.
_VARIED: dict[str, Any] = {
    "SOPInstanceUID": _UIDS,
    "StudyInstanceUID": _UIDS,
    "InstanceNumber": _numbers(1, integers=True),
    "AcquisitionNumber": _numbers(1, integers=True),
    "EchoNumbers": _numbers(1, integers=True),
    "ImagePositionPatient": _numbers(3),
    "ImageOrientationPatient": st.sampled_from(["1\\0\\0\\0\\1\\0", "0\\1\\0\\0\\0\\-1", "1\\0\\0\\0\\1", "a"]),
    "PixelSpacing": _numbers(2),
    "WindowCenter": st.one_of(_numbers(1), _numbers(2)),
    "WindowWidth": st.one_of(_numbers(1), _numbers(2)),
    "RescaleSlope": _numbers(1),
    "RescaleIntercept": _numbers(1, integers=True),
    "SliceThickness": _numbers(1),
    "ImageType": st.sampled_from(["ORIGINAL\\PRIMARY\\AXIAL", "DERIVED\\SECONDARY\\MPR", "ORIGINAL", ""]),
    "SeriesDescription": st.text(alphabet="abcÄé^= \\", max_size=10),
    "PatientName": st.text(alphabet="abcÄ^= ", max_size=10),
    "Modality": st.sampled_from(["CT", "MR", "PT", "ct "]),
    "Units": st.sampled_from(["HU", "BQML", ""]),
    "SliceLocation": _numbers(1),  # not read: ignored
    "ContentTime": st.sampled_from(["120000", "120001.5", ""]),  # not read: ignored
    "Rows": st.sampled_from([4, 5, 600, 20000]).map(lambda v: struct.pack("<H", v)),  # dimensions, or absurd
    "NumberOfFrames": st.sampled_from(["1", "2", ""]),  # multi-frame: pydicom
    "SpecificCharacterSet": st.sampled_from(["ISO_IR 100", "ISO_IR 192", "ISO_IR 6", "ISO 2022 IR 6"]),
}


@st.composite
def series_runs(draw: Any) -> tuple[Dataset, bool, list[dict[str, bytes]]]:
    """A random first file (mostly one the fast reader answers), then files that change a few values."""
    if draw(st.booleans()):
        ds, explicit = draw(random_headers())
        ds.Rows = draw(st.sampled_from([4, 4, 4, 40000]))
    else:  # a plain header, with a private block and a sequence
        ds, explicit = _base_dataset(), draw(st.booleans())
        ds.add_new(0x00290010, "LO", "RADLENS")
        ds.add_new(0x00291010, "OB", b"\x01\x02" * draw(st.integers(0, 20)))
        item = Dataset()
        item.ReferencedSOPClassUID = CTImageStorage
        item.ReferencedSOPInstanceUID = "1.2.3.4"
        ds.ReferencedImageSequence = Sequence([item])
        ds.ReferencedImageSequence.is_undefined_length = draw(st.booleans())
    for kw, values in _VARIED.items():
        if kw not in ("Rows", "SpecificCharacterSet", "NumberOfFrames") and draw(st.booleans()):
            value = draw(values)
            _raw(ds, kw, value.encode("utf-8") if isinstance(value, str) else value, explicit)
    ds.PixelData = b"\x01\x00" * draw(st.sampled_from([2, 16]))
    ds["PixelData"].VR = "OW"
    runs = []
    for _ in range(draw(st.integers(1, 6))):
        change: dict[str, bytes] = {}
        for kw in draw(st.lists(st.sampled_from(sorted(_VARIED)), max_size=3, unique=True)):
            value = draw(_VARIED[kw])
            change[kw] = value.encode("utf-8") if isinstance(value, str) else value
        runs.append(change)
    return ds, explicit, runs


@SETTINGS
@given(series_runs())
def test_series_reader_matches_reading_each_file(case: tuple[Dataset, bool, list[dict[str, bytes]]]) -> None:
    ds, explicit, runs = case
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for n, change in enumerate([{}, *runs]):
            copy = Dataset(ds)
            copy.file_meta = FileMetaDataset()
            for kw, value in change.items():
                _raw(copy, kw, value, explicit)
            path = Path(tmp) / f"{n}.dcm"
            try:
                _save(copy, path, explicit)
            except Exception:
                continue  # pydicom cannot write this combination
            paths.append(path)
        reader = fast_header.SeriesHeaderReader()
        for path in paths:
            _agree(path, reader)


def test_series_reader_uses_the_layout_of_earlier_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A generated series is walked once; the other files only compare bytes, and agree.

    Positions 3, 4.25, 5.5… and instance numbers 9, 10… change the lengths of their values.
    """
    vox = np.random.default_rng(5).integers(-1024, 3000, size=(12, 8, 6), dtype=np.int16)
    paths = write_dicom_series(
        vox,
        tmp_path / "a",
        spacing=(0.7, 0.8, 1.25),
        origin=(-10.5, 20.25, 3.0),
        window_center=[40],
        window_width=[400],
    )
    other = write_dicom_series(vox[:3], tmp_path / "b", spacing=(1.0, 1.0, 2.0), series_description="second")
    walks = []
    real_read = fast_header._read

    def counting_read(*args: Any, **kwargs: Any) -> Any:
        walks.append(args[0])
        return real_read(*args, **kwargs)

    monkeypatch.setattr(fast_header, "_read", counting_read)
    reader = fast_header.SeriesHeaderReader()
    # Interleaved series: each keeps its own template.
    for path in [*paths[:6], *other, *paths[6:]]:
        got = _fd_header(path, reader)
        monkeypatch.setattr(fast_header, "_read", real_read)
        assert isinstance(got, DicomHeader)
        assert got == _pydicom_header(str(path))
        monkeypatch.setattr(fast_header, "_read", counting_read)
    # The second series differs only in values (some of other lengths): its first file is read
    # through the first series' template, then kept as a template of its own; no walk either.
    assert walks == [str(paths[0])]


def test_series_reader_in_scan_matches_pydicom(tmp_path: Path) -> None:
    """scan() of a series with per-file windows and rescale: every header as pydicom reads it."""
    for n in range(6):
        ds = _base_dataset()
        ds.SOPInstanceUID = f"1.2.3.4.{n:03d}"
        ds.SeriesInstanceUID = "1.2.3.9"
        ds.InstanceNumber = str(n + 1)
        ds.ImagePositionPatient = [0, 0, float(n) * 1.5]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [0.5, 0.5]
        ds.RescaleIntercept = str(-1024 + n)  # same length from file to file
        ds.WindowCenter = str(40 + n)
        ds.WindowWidth = "400"
        ds.PixelData = b"\x00\x01" * 16
        _save(ds, tmp_path / f"{n}.dcm", explicit=n % 2 == 0)
    result = scan(tmp_path)
    (stack,) = result.stacks()
    for h in stack.headers:
        assert h == _pydicom_header(h.path)
