"""Loading without keeping the volume: `stream_stack` into a `NiftiStream`, and the prefault helper.

`radlens convert` streams greyscale DICOM stacks slice by slice into the NIfTI file. The file must
be byte for byte what `write_nifti(load_stack(stack))` writes, the returned volume must describe
the same grid, and a failure must leave nothing behind (or the old file untouched).
"""

from __future__ import annotations

import gzip
import os
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from inference.errors import LoadError, TruncatedFileError
from inference.io import dicom_loader, nifti_writer
from inference.io.dicom_loader import can_stream, load_stack, stream_stack
from inference.io.dicom_writer import write_dicom_series
from inference.io.nifti_writer import NiftiStream, write_nifti
from inference.io.scan import scan
from inference.io.stacks import Stack

PYDICOM_FILES = [
    "CT_small.dcm",  # int16 CT with rescale
    "MR_small.dcm",
    "MR_small_RLE.dcm",  # decoded by pydicom
    "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_bigendian.dcm",
    "emri_small.dcm",  # multi-frame
    "rtdose.dcm",  # float: dose grid scaling
    "JPEG2000.dcm",
    "MR2_UNCR.dcm",
    "RG1_UNCR.dcm",  # MONOCHROME1: inverted
    "MR_small_implicit.dcm",
    "MR-SIEMENS-DICOM-WithOverlays.dcm",
]


def _stacks(path: str | Path) -> list[Stack]:
    return [s for s in scan(path).stacks() if can_stream(s)]


def _nifti_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    return gzip.decompress(data) if path.name.endswith(".gz") else data


def _load(stack: Stack) -> object:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        volume = load_stack(stack, allow_missing_geometry=True)
    return volume, [str(w.message) for w in caught]


def _stream(stack: Stack, out: Path) -> object:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        volume = stream_stack(stack, lambda geometry: NiftiStream(geometry, out), allow_missing_geometry=True)
    return volume, [str(w.message) for w in caught]


def _check_same(stack: Stack, tmp_path: Path, suffix: str) -> None:
    ref, ref_warnings = _load(stack)
    write_nifti(ref, tmp_path / f"ref{suffix}")  # type: ignore[arg-type]
    got, got_warnings = _stream(stack, tmp_path / f"got{suffix}")
    assert _nifti_bytes(tmp_path / f"got{suffix}") == _nifti_bytes(tmp_path / f"ref{suffix}")
    assert got_warnings == ref_warnings
    assert got.shape == ref.shape and got.voxels.dtype == ref.voxels.dtype  # type: ignore[attr-defined]
    assert got.spacing == ref.spacing and got.origin == ref.origin and got.qa_warnings == ref.qa_warnings  # type: ignore[attr-defined]
    np.testing.assert_array_equal(got.direction, ref.direction)  # type: ignore[attr-defined]
    assert got.metadata == ref.metadata  # type: ignore[attr-defined]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"ref{suffix}", f"got{suffix}"])


@pytest.mark.parametrize("name", PYDICOM_FILES)
def test_streamed_file_is_what_load_and_write_give(name: str, tmp_path: Path) -> None:
    path = get_testdata_file(name)
    assert path is not None, "install pydicom-data"
    (stack,) = _stacks(path)
    _check_same(stack, tmp_path, ".nii")


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize(
    ("stored", "intercept"),
    [
        ((0, 4095), -1024),  # uint16 stored, fits int16 without a check
        ((0, 40000), -1024),  # uint16, checked: fits
        ((0, 65535), -1024),  # uint16, checked: overflows, so float32 (the sink restarts)
        ((-2000, 3000), 0),  # int16 as stored
    ],
)
def test_streamed_series_is_what_load_and_write_give(
    tmp_path: Path, suffix: str, stored: tuple[int, int], intercept: int
) -> None:
    rng = np.random.default_rng(4)
    values = rng.integers(stored[0], stored[1] + 1, size=(7, 12, 10), dtype=np.int64)
    values[3, 0, 0], values[5, 1, 1] = stored  # the extremes, late in the stack
    write_dicom_series(
        values + intercept,
        tmp_path / "series",
        spacing=(0.6, 0.7, 1.5),
        origin=(3.0, -2.0, 10.0),
        direction=np.array([[0.0, 1, 0], [1, 0, 0], [0, 0, -1]]),
    )
    (stack,) = _stacks(tmp_path / "series")
    out = tmp_path / "out"
    out.mkdir()
    _check_same(stack, out, suffix)


def test_overflow_restart_aborts_the_first_file(tmp_path: Path) -> None:
    values = np.zeros((4, 6, 6), dtype=np.int64)
    values[2, 0, 0] = 65535
    write_dicom_series(values - 1024, tmp_path / "series", spacing=(1, 1, 1))
    (stack,) = _stacks(tmp_path / "series")
    opened: list[str] = []

    def open_sink(geometry: object) -> NiftiStream:
        opened.append(str(geometry.voxels.dtype))  # type: ignore[attr-defined]
        return NiftiStream(geometry, tmp_path / "out.nii")  # type: ignore[arg-type]

    volume = stream_stack(stack, open_sink)
    assert opened == ["int16", "float32"] and volume.voxels.dtype == np.float32
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nii", "series"]


def test_failure_midway_leaves_no_file_and_the_old_one_untouched(tmp_path: Path) -> None:
    values = np.arange(6 * 8 * 8, dtype=np.int64).reshape(6, 8, 8)
    paths = write_dicom_series(values, tmp_path / "series", spacing=(1, 1, 1))
    (stack,) = _stacks(tmp_path / "series")
    data = paths[4].read_bytes()
    paths[4].write_bytes(data[: len(data) - 20])  # cut short after the scan
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.nii").write_bytes(b"old")
    for name in ("new.nii", "old.nii", "new.nii.gz"):
        with pytest.raises(TruncatedFileError, match="truncated"):
            stream_stack(stack, lambda geometry, name=name: NiftiStream(geometry, out / name))  # type: ignore[misc]
    assert sorted(p.name for p in out.iterdir()) == ["old.nii"]
    assert (out / "old.nii").read_bytes() == b"old"


def test_bad_destination_is_refused_before_reading(tmp_path: Path) -> None:
    write_dicom_series(np.zeros((2, 4, 4), dtype=np.int64), tmp_path / "series", spacing=(1, 1, 1))
    (stack,) = _stacks(tmp_path / "series")
    with pytest.raises(nifti_writer.NiftiWriteError, match="does not exist"):
        stream_stack(stack, lambda geometry: NiftiStream(geometry, tmp_path / "missing" / "x.nii"))


def test_colour_and_image_files_are_not_streamed() -> None:
    path = get_testdata_file("SC_rgb.dcm")
    assert path is not None
    (stack,) = scan(path).stacks()
    assert not can_stream(stack)
    with pytest.raises(ValueError, match="load it whole"):
        stream_stack(stack, lambda geometry: pytest.fail("no sink for colour"))  # type: ignore[arg-type,return-value]


@pytest.mark.parametrize("threaded", [False, True])
@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_stream_writer_chunks_and_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threaded: bool, suffix: str
) -> None:
    """Chunks of a few slices (the last one partial), written in this thread or the writer's."""
    values = np.random.default_rng(2).integers(-1000, 3000, size=(11, 9, 7), dtype=np.int64)
    write_dicom_series(values, tmp_path / "series", spacing=(1, 1, 1))
    (stack,) = _stacks(tmp_path / "series")
    monkeypatch.setattr(NiftiStream, "CHUNK", 9 * 7 * 2 * 3)  # three slices a chunk
    write_nifti(load_stack(stack), tmp_path / f"ref{suffix}")
    stream_stack(stack, lambda geometry: NiftiStream(geometry, tmp_path / f"got{suffix}", threaded=threaded))
    assert _nifti_bytes(tmp_path / f"got{suffix}") == _nifti_bytes(tmp_path / f"ref{suffix}")


@pytest.mark.parametrize("threaded", [False, True])
def test_write_error_is_reported_and_cleaned_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threaded: bool
) -> None:
    write_dicom_series(np.zeros((12, 8, 8), dtype=np.int64), tmp_path / "series", spacing=(1, 1, 1))
    (stack,) = _stacks(tmp_path / "series")
    out = tmp_path / "out"
    out.mkdir()
    (out / "x.nii").write_bytes(b"old")
    monkeypatch.setattr(NiftiStream, "CHUNK", 8 * 8 * 2 * 2)
    real_put = NiftiStream._put_chunk
    calls = []

    def failing(self: NiftiStream, chunk: np.ndarray, count: int) -> None:
        calls.append(count)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real_put(self, chunk, count)

    monkeypatch.setattr(NiftiStream, "_put_chunk", failing)
    threads = threading.active_count()
    with pytest.raises(nifti_writer.NiftiWriteError, match="No space left"):
        stream_stack(stack, lambda geometry: NiftiStream(geometry, out / "x.nii", threaded=threaded))
    assert sorted(p.name for p in out.iterdir()) == ["x.nii"]
    assert (out / "x.nii").read_bytes() == b"old"
    assert threading.active_count() == threads


# ------------------------------------------------------------------------------ prefault helper


def test_prefaulted_load_is_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(9)
    values = rng.integers(0, 65536, size=(9, 40, 30), dtype=np.int64)
    values[8] = rng.integers(0, 4000, size=(40, 30))
    write_dicom_series(values - 1024, tmp_path / "a", spacing=(1, 1, 1))  # checked int16: overflows, float32
    write_dicom_series(values[5:] % 4000 - 1024, tmp_path / "b", spacing=(1, 1, 1))  # checked int16: fits
    for folder in ("a", "b"):
        (stack,) = scan(tmp_path / folder).stacks()
        monkeypatch.setattr(dicom_loader, "PREFAULT_MIN_BYTES", 1 << 62)
        ref = load_stack(stack).voxels
        monkeypatch.setattr(dicom_loader, "PREFAULT_MIN_BYTES", 0)
        monkeypatch.setattr(dicom_loader, "spare_cpu", lambda: True)
        monkeypatch.setattr(dicom_loader._Prefault, "CHUNK", 4096 * 3)  # many steps
        threads = threading.active_count()
        got = load_stack(stack).voxels
        assert got.dtype == ref.dtype
        np.testing.assert_array_equal(got, ref)
        assert threading.active_count() == threads  # the helper is joined


def test_prefaulted_load_failure_raises_and_joins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = write_dicom_series(np.zeros((5, 30, 30), dtype=np.int64), tmp_path, spacing=(1, 1, 1))
    (stack,) = scan(tmp_path).stacks()
    monkeypatch.setattr(dicom_loader, "PREFAULT_MIN_BYTES", 0)
    monkeypatch.setattr(dicom_loader, "spare_cpu", lambda: True)
    threads = threading.active_count()
    # One cut file is left out (the series still loads, and says so); every prefault thread joined.
    os.truncate(paths[2], os.path.getsize(paths[2]) - 50)
    with pytest.warns(UserWarning, match="left out"):
        assert load_stack(stack).shape[0] == 4
    assert threading.active_count() == threads
    # Every file cut: the load fails, and still leaves no thread behind.
    for path in paths:
        os.truncate(path, os.path.getsize(path) - 50)
    with pytest.raises(LoadError):
        load_stack(stack)
    assert threading.active_count() == threads


# ------------------------------------------------------------------------------ the command


def test_convert_imports_only_its_own_command(tmp_path: Path) -> None:
    """`radlens convert` imports no other subcommand's modules, and numpy with one BLAS thread."""
    import subprocess
    import sys

    write_dicom_series(np.zeros((3, 8, 8), dtype=np.int64), tmp_path / "series", spacing=(1, 1, 2))
    code = (
        "import os, sys\n"
        "from inference.cli.main import main\n"
        f"rc = main(['convert', {str(tmp_path / 'series')!r}, {str(tmp_path / 'out.nii')!r}])\n"
        "print(sorted(m for m in sys.modules if m.startswith(('inference.cli.', 'inference.batch', 'viewer'))))\n"
        "print(os.environ.get('OPENBLAS_NUM_THREADS'))\n"
        "sys.exit(rc)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    modules, threads = done.stdout.strip().splitlines()[-2:]
    assert modules == str(["inference.cli.convert_command", "inference.cli.main", "inference.cli.progress_bar"])
    assert threads == "1"
    assert (tmp_path / "out.nii").exists()


def test_spare_cpu_answers() -> None:
    from inference.io import cpus

    assert cpus.usable_cpus() >= 1
    assert cpus.spare_cpu() in (True, False)
