"""Slices off a regular grid (a gap, uneven spacing) keep their header positions everywhere."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from inference.errors import IrregularSlicesError
from inference.io.dicom_loader import load_stack
from inference.io.nifti_writer import write_nifti
from inference.io.resample import regular_grid
from inference.io.scan import scan
from inference.volume import Volume

from .series4d import Geometry, anatomy, contrasts, write_classic


def _load(folder: Path) -> Volume:
    (stack,) = scan(folder).stacks()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_stack(stack)


def _header_positions(folder: Path) -> dict[int, list[float]]:
    out = {}
    for f in folder.iterdir():
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        out[int(ds.InstanceNumber)] = [float(v) for v in ds.ImagePositionPatient]
    return out


@pytest.fixture(scope="module")
def gapped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    vox = contrasts(anatomy(8), [1.0])
    folder = tmp_path_factory.mktemp("gap") / "in"
    write_classic(folder, vox, skip=[(0, 4)], geometry=Geometry())
    return folder, vox


def test_slices_above_a_gap_are_placed_at_their_header_positions(gapped: tuple[Path, np.ndarray]) -> None:
    folder, vox = gapped
    volume = _load(folder)
    assert volume.shape[0] == 7 and volume.slice_positions is not None
    assert any("off-grid" in q for q in volume.qa_warnings)
    headers = _header_positions(folder)
    order = [n for n in sorted(headers) if n != 5]  # instance 5 (slice 4) is missing
    for k, instance in enumerate(order):
        np.testing.assert_allclose(volume.index_to_lps([0, 0, k]), headers[instance], atol=1e-5)
        # A voxel inside the plane, and back.
        point = volume.index_to_lps([3.5, 7.25, k])
        np.testing.assert_allclose(volume.lps_to_index(point), [3.5, 7.25, k], atol=1e-6)
    np.testing.assert_array_equal(volume.voxels, vox[0, [0, 1, 2, 3, 5, 6, 7]])
    # Halfway across the gap lies the missing slice's position.
    np.testing.assert_allclose(volume.index_to_lps([0, 0, 3.5]), Geometry().position(4), atol=1e-5)


def test_an_affine_for_a_gapped_stack_is_refused_and_resampling_is_explicit(
    gapped: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    folder, vox = gapped
    volume = _load(folder)
    with pytest.raises(IrregularSlicesError, match="not on a regular grid"):
        write_nifti(volume, tmp_path / "x.nii")
    assert not list(tmp_path.iterdir())
    proc = subprocess.run(
        [sys.executable, "-m", "inference.cli.main", "convert", str(folder), str(tmp_path / "out.nii")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0 and "--resample" in proc.stderr
    assert not (tmp_path / "out.nii").exists()
    proc = subprocess.run(
        [sys.executable, "-m", "inference.cli.main", "convert", str(folder), str(tmp_path / "out.nii"), "--resample"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "resampled from 7 irregularly spaced slices to 8 slices" in proc.stdout
    img = nib.load(str(tmp_path / "out.nii"))
    data = np.transpose(np.asarray(img.dataobj), (2, 1, 0))
    assert data.shape[0] == 8
    # Every slice that was there is where its header says; the missing one is the mean of its neighbours.
    for k in (0, 3, 5, 7):
        np.testing.assert_array_equal(data[k], vox[0, k])
        lps = np.diag([-1, -1, 1]) @ (img.affine @ [0, 0, k, 1])[:3]
        np.testing.assert_allclose(lps, Geometry().position(k), atol=1e-3)
    halfway = (vox[0, 3].astype(np.float64) + vox[0, 5]) / 2
    np.testing.assert_allclose(data[4], halfway, atol=0.5 + 1e-3)  # rounded back to int16
    resampled = regular_grid(volume)
    assert resampled.slice_positions is None and resampled.shape[0] == 8


def test_a_regular_stack_keeps_no_slice_positions(tmp_path: Path) -> None:
    vox = contrasts(anatomy(6), [1.0])
    write_classic(tmp_path / "in", vox)
    volume = _load(tmp_path / "in")
    assert volume.slice_positions is None and volume.regular
