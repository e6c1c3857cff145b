"""A folder of bad input next to one good series: the scan lists every bad file with its reason,
still finds and loads the good series, and writes nothing into the folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from inference.errors import (
    AbsurdDimensionsError,
    GeometryWarning,
    LoadError,
    MissingGeometryError,
    UnsupportedTransferSyntaxError,
)
from inference.io.dicom_header import check_pixel_length, read_header
from inference.io.dicom_loader import load_stack
from inference.io.scan import ScanResult, scan
from inference.io.stacks import Stack
from tests.inference.bad_files import (
    GOOD_N,
    GOOD_SERIES_UID,
    GOOD_STEP_MM,
    NON_UTF8_NAME,
    BadFile,
    build_corpus,
    ct_small,
    good_slice_values,
    running_as_root,
    tree_fingerprint,
    write_good_series,
)

REPO = Path(__file__).resolve().parents[2]


class Corpus:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.good, self.bad = build_corpus(root)
        self.before = tree_fingerprint(root)
        self.result: ScanResult = scan(root)
        self.good_stack = self.stack_of(GOOD_SERIES_UID)
        self.volume = load_stack(self.good_stack)
        self.load_errors: dict[str, LoadError] = {}
        for name, bad in self.bad.items():
            if bad.listed_in == "stack":
                stack = self.stack_with(bad.path)
                try:
                    load_stack(stack)
                except LoadError as exc:
                    self.load_errors[name] = exc
        self.after = tree_fingerprint(root)

    def stack_of(self, series_uid: str) -> Stack:
        found = [s for s in self.result.stacks() if s.series_uid == series_uid]
        assert len(found) == 1, f"expected one stack of series {series_uid}, got {found}"
        return found[0]

    def stack_with(self, path: str) -> Stack:
        found = [s for s in self.result.stacks() if path in s.paths]
        assert len(found) == 1, f"expected one stack holding {path}, got {[s.summary() for s in found]}"
        return found[0]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return Corpus(tmp_path_factory.mktemp("bad_input") / "scanned")


def _listed(result: ScanResult, path: str) -> list[tuple[str, str, str]]:
    """Every place a scan lists ``path``: (list name, error class, reason)."""
    out = []
    for where in ("errors", "not_dicom"):
        out += [(where, p.error, p.reason) for p in getattr(result, where) if p.path == path]
    out += [("non_image", n.modality, "") for n in result.non_image if n.path == path]
    out += [("stack", s.id, "") for s in result.stacks() if path in s.paths]
    return out


# ------------------------------------------------------------------------------------- the scan


def test_good_series_is_found_and_loads(corpus: Corpus) -> None:
    stack = corpus.good_stack
    assert stack.n_slices == GOOD_N
    assert sorted(stack.paths) == sorted(os.fspath(p) for p in corpus.good)
    assert stack.qa == ()
    vol = corpus.volume
    assert vol.shape == (GOOD_N, 128, 128)
    assert vol.spacing[2] == pytest.approx(GOOD_STEP_MM, abs=1e-4)
    for k in range(GOOD_N):
        np.testing.assert_array_equal(vol.voxels[k], good_slice_values(k))
    z0 = float(ct_small().ImagePositionPatient[2])
    assert [float(p[2]) for p in vol.index_to_lps([(0, 0, k) for k in range(GOOD_N)])] == pytest.approx(
        [z0 + GOOD_STEP_MM * k for k in range(GOOD_N)], abs=1e-4
    )


def test_expected_stacks_only(corpus: Corpus) -> None:
    """Good series, the non-UTF-8 named copy, and the two stacks that scan but cannot load."""
    expected = {os.fspath(corpus.root / NON_UTF8_NAME)} | {
        b.path for b in corpus.bad.values() if b.listed_in == "stack"
    }
    singles = {p for s in corpus.result.stacks() if s is not corpus.good_stack for p in s.paths}
    assert singles == expected
    assert len(corpus.result.stacks()) == 1 + len(expected)


@pytest.mark.parametrize(
    "name",
    [
        "empty.dcm",
        "trunc_header.dcm",
        "trunc_header_us.dcm",
        "trunc_pixels.dcm",
        "notes.txt",
        "image.dcm",
        "report_sr.dcm",
        "no_pixels.dcm",
        "no_geometry.dcm",
        "absurd.dcm",
        "mpeg2.dcm",
        "pipe.dcm",
        # root reads chmod 000 files: there test_permission_denied_file covers them instead.
        *([] if running_as_root() else ["locked.dcm"]),
        "broken_link.dcm",
        "self_loop.dcm",
        os.path.join("sub", "up"),
    ],
)
def test_bad_file_is_listed_with_its_reason(corpus: Corpus, name: str) -> None:
    bad: BadFile = corpus.bad[name]
    listed = _listed(corpus.result, bad.path)
    assert len(listed) == 1, f"{name} listed {len(listed)} times: {listed}"
    where, error, reason = listed[0]
    assert where == bad.listed_in, f"{name}: listed in {where} ({error}: {reason}), expected {bad.listed_in}"
    if where in ("errors", "not_dicom"):
        assert error == bad.error, f"{name}: {error} ({reason}), expected {bad.error}"
        assert any(w in reason.lower() for w in bad.reason_words), f"{name}: reason {reason!r}"
    if where == "stack":
        exc = corpus.load_errors.get(name)
        assert exc is not None, f"{name}: load_stack did not raise"
        assert type(exc).__name__ == bad.error, f"{name}: {type(exc).__name__}: {exc}"
        assert bad.path in str(exc) and exc.path == Path(bad.path)
        assert any(w in exc.reason.lower() for w in bad.reason_words), f"{name}: reason {exc.reason!r}"


def test_no_file_is_listed_twice_or_lost(corpus: Corpus) -> None:
    problems = [p.path for p in corpus.result.errors + corpus.result.not_dicom]
    assert len(problems) == len(set(problems))
    listed = set(problems) | {n.path for n in corpus.result.non_image}
    listed |= {p for s in corpus.result.stacks() for p in s.paths}
    expected = {b.path for b in corpus.bad.values() if b.listed_in != "none"}
    expected |= {os.fspath(p) for p in corpus.good} | {os.fspath(corpus.root / NON_UTF8_NAME)}
    if running_as_root():
        expected.discard(os.fspath(corpus.root / "locked.dcm"))
    assert listed == expected


def test_non_utf8_name_loads_and_prints(corpus: Corpus, capsys: pytest.CaptureFixture[str]) -> None:
    path = os.fspath(corpus.root / NON_UTF8_NAME)
    stack = corpus.stack_with(path)
    with pytest.warns(GeometryWarning, match="single-slice"):
        vol = load_stack(stack)
    np.testing.assert_array_equal(vol.voxels[0], good_slice_values(0))
    text = json.dumps(corpus.result.summary(), ensure_ascii=False)
    text.encode("utf-8")  # no lone surrogates left from the undecodable byte
    print(text)
    print(json.dumps(corpus.result.summary()))
    assert json.loads(capsys.readouterr().out.splitlines()[0])["root"]


def test_scan_and_load_write_nothing(corpus: Corpus) -> None:
    assert corpus.after == corpus.before


# -------------------------------------------------------------------------- read_header directly


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("empty.dcm", "EmptyFileError"),
        ("trunc_header.dcm", "TruncatedFileError"),
        ("trunc_header_us.dcm", "TruncatedFileError"),
        ("notes.txt", "NotDicomError"),
        ("image.dcm", "NotDicomError"),
        ("absurd.dcm", "AbsurdDimensionsError"),
        ("pipe.dcm", "UnreadableFileError"),
        *([] if running_as_root() else [("locked.dcm", "UnreadableFileError")]),
        ("broken_link.dcm", "UnreadableFileError"),
        ("self_loop.dcm", "UnreadableFileError"),
        ("folder.dcm", "UnreadableFileError"),
    ],
)
def test_read_header_raises_typed_error_naming_the_path(corpus: Corpus, name: str, error: str) -> None:
    path = corpus.bad[name].path
    with pytest.raises(LoadError) as info:
        read_header(path)
    assert type(info.value).__name__ == error, f"{name}: {type(info.value).__name__}: {info.value}"
    assert info.value.path == Path(path)
    assert path in str(info.value)


def test_truncated_pixels_found_by_header_check(corpus: Corpus) -> None:
    path = corpus.bad["trunc_pixels.dcm"].path
    header = read_header(path)
    assert header.is_image
    with pytest.raises(LoadError) as info:
        check_pixel_length(header)
    assert type(info.value).__name__ == "TruncatedFileError"
    assert path in str(info.value)


def test_non_image_headers(corpus: Corpus) -> None:
    sr = read_header(corpus.bad["report_sr.dcm"].path)
    assert sr.modality == "SR" and not sr.is_image
    no_pixels = read_header(corpus.bad["no_pixels.dcm"].path)
    assert no_pixels.modality == "CT" and not no_pixels.has_pixel_data and not no_pixels.is_image


def test_absurd_dimensions_allocate_nothing(corpus: Corpus, tmp_path: Path) -> None:
    path = corpus.bad["absurd.dcm"].path
    read_header(corpus.good[0])  # imports and caches warmed up outside the measurement
    folder = tmp_path / "absurd_only"
    folder.mkdir()
    (folder / "absurd.dcm").write_bytes(Path(path).read_bytes())
    tracemalloc.start()
    try:
        with pytest.raises(AbsurdDimensionsError) as info:
            read_header(path)
        result = scan(folder)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert path in str(info.value)
    assert [p.error for p in result.errors] == ["AbsurdDimensionsError"] and result.stacks() == []
    assert peak < 50 * 1024**2, f"peak {peak / 1024**2:.1f} MiB while rejecting an absurd header"


def test_absurd_object_size_within_row_limit(tmp_path: Path) -> None:
    """Rows/columns under the per-axis limit but an object of terabytes: still refused."""
    ds = ct_small()
    ds.Rows = ds.Columns = 16384
    ds.NumberOfFrames = 100000
    path = tmp_path / "huge.dcm"
    ds.save_as(path)
    with pytest.raises(AbsurdDimensionsError, match="refusing"):
        read_header(path)


def test_unsupported_transfer_syntax_when_decoders_are_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A JPEG 2000 series whose decoder plugins are unavailable: a typed error naming the file."""
    import pydicom
    from pydicom.pixels.decoders import JPEG2000LosslessDecoder
    from pydicom.uid import JPEG2000Lossless

    ds = pydicom.dcmread(os.fspath(Path(pydicom.data.get_testdata_file("MR_small_jp2klossless.dcm"))))
    assert ds.file_meta.TransferSyntaxUID == JPEG2000Lossless
    path = tmp_path / "jp2k.dcm"
    ds.save_as(path)
    monkeypatch.setattr(JPEG2000LosslessDecoder, "_available", {})
    monkeypatch.setattr(JPEG2000LosslessDecoder, "_unavailable", {"pylibjpeg": ("pylibjpeg-openjpeg",)})
    result = scan(tmp_path)
    assert len(result.stacks()) == 1
    with pytest.raises(UnsupportedTransferSyntaxError) as info:
        load_stack(result.stacks()[0])
    assert os.fspath(path) in str(info.value)


def test_missing_geometry_names_the_missing_attributes(corpus: Corpus) -> None:
    exc = corpus.load_errors["no_geometry.dcm"]
    assert isinstance(exc, MissingGeometryError)
    for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
        assert keyword in exc.reason


# ------------------------------------------------------------------- real permission denied


_DROP_DAC_AND_SCAN = textwrap.dedent(
    """
    import ctypes, json, os, sys
    if os.geteuid() == 0:
        # Root bypasses file modes through CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH: drop both.
        libc = ctypes.CDLL(None, use_errno=True)
        class Header(ctypes.Structure):
            _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]
        class Data(ctypes.Structure):
            _fields_ = [(n, ctypes.c_uint32) for n in ("effective", "permitted", "inheritable")]
        header, data = Header(0x20080522, 0), (Data * 2)()
        if libc.capget(ctypes.byref(header), data) != 0:
            sys.exit(f"capget failed: errno {ctypes.get_errno()}")
        keep = ~((1 << 1) | (1 << 2)) & 0xFFFFFFFF
        data[0].effective &= keep
        data[0].permitted &= keep
        if libc.capset(ctypes.byref(header), data) != 0:
            sys.exit(f"capset failed: errno {ctypes.get_errno()}")
    locked = sys.argv[2]
    try:
        open(locked, "rb").close()
        sys.exit("the chmod 000 file is still readable")
    except PermissionError:
        pass
    from inference.errors import LoadError
    from inference.io.dicom_header import read_header
    from inference.io.scan import scan
    out = {}
    try:
        read_header(locked)
        out["read_header"] = None
    except LoadError as exc:
        out["read_header"] = [type(exc).__name__, str(exc)]
    result = scan(sys.argv[1])
    out["errors"] = [[p.path, p.error, p.reason] for p in result.errors]
    out["not_dicom"] = [[p.path, p.error, p.reason] for p in result.not_dicom]
    out["stacks"] = [s.n_slices for s in result.stacks()]
    print(json.dumps(out))
    """
)


def test_permission_denied_file(tmp_path: Path) -> None:
    """A chmod 000 DICOM file, with file permissions really enforced (root drops its DAC capabilities)."""
    folder = tmp_path / "perm"
    write_good_series(folder)
    locked = folder / "locked.dcm"
    ds = ct_small()
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.22222"
    ds.save_as(locked)
    locked.chmod(0)
    try:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.fspath(REPO), os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.run(
            [sys.executable, "-c", _DROP_DAC_AND_SCAN, os.fspath(folder), os.fspath(locked)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
    finally:
        locked.chmod(0o644)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["read_header"] is not None and out["read_header"][0] == "UnreadableFileError"
    assert os.fspath(locked) in out["read_header"][1]
    assert out["errors"] == [[os.fspath(locked), "UnreadableFileError", out["errors"][0][2]]]
    assert "permission" in out["errors"][0][2].lower()
    assert out["not_dicom"] == [] and out["stacks"] == [GOOD_N]
