"""Folder scan: how series split into stacks, QA on the stack, progress and cancellation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from inference.errors import OperationCancelled
from inference.io.dicom_writer import write_dicom_series
from inference.io.geometry_qa import QACode
from inference.io.scan import scan
from inference.progress import CancelToken

VOXELS = (np.arange(6 * 16 * 16, dtype=np.int16).reshape(6, 16, 16) % 300) - 100


def _series(folder: Path, prefix: str, **kw: object) -> list[Path]:
    return write_dicom_series(
        VOXELS,
        folder,
        spacing=(0.8, 0.8, 2.0),
        uid_seed="same-series",
        file_names=[f"{prefix}{k:02d}.dcm" for k in range(len(VOXELS))],
        **kw,  # type: ignore[arg-type]
    )


def _edit(files: list[Path], **attrs: object) -> None:
    for f in files:
        ds = pydicom.dcmread(f)
        for key, value in attrs.items():
            setattr(ds, key, value)
        ds.save_as(f)


def test_multi_echo_series_splits_into_one_stack_per_echo(tmp_path: Path) -> None:
    _edit(_series(tmp_path, "e1_"), EchoNumbers=1)
    files = _series(tmp_path, "e2_")
    for f in files:
        ds = pydicom.dcmread(f)
        ds.EchoNumbers = 2
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(f)
    result = scan(tmp_path)
    assert len(result.studies[0].series) == 1
    stacks = result.stacks()
    assert [s.n_slices for s in stacks] == [6, 6]
    assert not any(s.qa for s in stacks)


def test_localizer_and_different_pixel_size_are_separate_stacks(tmp_path: Path) -> None:
    _series(tmp_path, "ax_")
    loc = _series(tmp_path, "loc_")
    for n, f in enumerate(loc):
        ds = pydicom.dcmread(f)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        if n >= 3:
            ds.PixelSpacing = [1.5, 1.5]
        ds.save_as(f)
    stacks = scan(tmp_path).stacks()
    assert sorted(s.n_slices for s in stacks) == [3, 3, 6]


def test_mixed_rescale_and_inconsistent_orientation_are_reported(tmp_path: Path) -> None:
    files = _series(tmp_path, "s")
    ds = pydicom.dcmread(files[2])
    ds.RescaleSlope = 2
    ds.ImageOrientationPatient = [1, 0, 0.001, 0, 1, 0]
    ds.save_as(files[2])
    (stack,) = scan(tmp_path).stacks()
    codes = {q.code for q in stack.qa}
    assert {QACode.MIXED_RESCALE, QACode.INCONSISTENT_ORIENTATION} <= codes


def test_progress_reaches_one_and_cancel_stops_the_scan(tmp_path: Path) -> None:
    _series(tmp_path, "p")
    seen: list[float] = []
    scan(tmp_path, on_progress=lambda f, m: seen.append(f))
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)
    token = CancelToken()
    token.cancel()
    with pytest.raises(OperationCancelled):
        scan(tmp_path, cancel=token)


def test_large_folder_parses_in_worker_processes_with_the_same_result(tmp_path: Path) -> None:
    voxels = np.zeros((450, 8, 8), dtype=np.int16)
    write_dicom_series(voxels, tmp_path, spacing=(1.0, 1.0, 1.0))
    serial = scan(tmp_path, jobs=1).stacks()
    pooled = scan(tmp_path, jobs=2).stacks()
    assert [s.n_slices for s in serial] == [s.n_slices for s in pooled] == [450]
    assert [h.path for h in serial[0].headers] == [h.path for h in pooled[0].headers]
