"""The real CT head written as DICOM in many geometries, loaded back, and checked against dcm2niix and SimpleITK."""

from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import numpy.typing as npt
import pytest
import SimpleITK as sitk

from inference.io.dicom_loader import load_stack
from inference.io.dicom_writer import write_dicom_series
from inference.io.geometry_qa import QACode
from inference.io.scan import scan
from inference.volume import Volume

from .geometry_oracle import RAS_TO_LPS, in_other_index_order


def _rotation(ax: float, az: float) -> npt.NDArray[np.float64]:
    cx, sx, cz, sz = np.cos(ax), np.sin(ax), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ rx


def _with_normal(row: tuple[float, ...], col: tuple[float, ...], sign: float = 1.0) -> npt.NDArray[np.float64]:
    r, c = np.array(row, dtype=float), np.array(col, dtype=float)
    return np.column_stack([r, c, sign * np.cross(r, c)])


GEOMETRIES: dict[str, npt.NDArray[np.float64]] = {
    "axial-head-first": _with_normal((1, 0, 0), (0, 1, 0)),
    "axial-feet-first": _with_normal((-1, 0, 0), (0, 1, 0)),
    "axial-descending-z": _with_normal((1, 0, 0), (0, 1, 0), -1.0),
    "coronal": _with_normal((1, 0, 0), (0, 0, -1)),
    "sagittal": _with_normal((0, 1, 0), (0, 0, -1)),
    "oblique": _rotation(np.radians(20), np.radians(10)),
}


@pytest.fixture(scope="module")
def head(
    ct_head: tuple[npt.NDArray[np.int16], tuple[float, float, float]],
) -> tuple[npt.NDArray[np.int16], tuple[float, ...]]:
    voxels, spacing = ct_head
    return voxels, spacing


def _truth_affine(
    direction: npt.NDArray[np.float64], spacing: tuple[float, ...], origin: tuple[float, ...]
) -> npt.NDArray[np.float64]:
    a = np.eye(4)
    a[:3, :3] = direction * np.asarray(spacing)[None, :]
    a[:3, 3] = origin
    return a


def _load_only_stack(folder: Path) -> Volume:
    stacks = scan(folder).stacks()
    assert len(stacks) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_stack(stacks[0])


def _dcm2niix(folder: Path, out: Path) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    exe = shutil.which("dcm2niix")
    assert exe, "dcm2niix missing: apt-get install dcm2niix"
    out.mkdir()
    subprocess.run(
        [exe, "-z", "n", "-b", "n", "-o", str(out), "-f", "vol", str(folder)], check=True, capture_output=True
    )
    files = sorted(out.glob("vol*.nii"))
    assert files, "dcm2niix wrote nothing"
    img = nib.load(str(files[0]))
    data = np.asarray(img.dataobj, dtype=np.float64)  # applies scl_slope / scl_inter
    return np.transpose(data, (2, 1, 0)), RAS_TO_LPS @ img.affine


def _simpleitk(folder: Path) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    img = reader.Execute()
    a = np.eye(4)
    a[:3, :3] = np.array(img.GetDirection()).reshape(3, 3) * np.array(img.GetSpacing())[None, :]
    a[:3, 3] = img.GetOrigin()
    return sitk.GetArrayFromImage(img).astype(np.float64), a


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_head_in_every_geometry_loads_exactly_and_agrees_with_the_oracles(
    name: str, head: tuple[npt.NDArray[np.int16], tuple[float, ...]], tmp_path: Path
) -> None:
    voxels, spacing = head
    direction = GEOMETRIES[name]
    origin = (-120.5, -130.25, 40.0)
    series = tmp_path / "series"
    write_dicom_series(voxels, series, spacing=spacing, origin=origin, direction=direction, uid_seed=name)
    vol = _load_only_stack(series)
    truth = _truth_affine(direction, spacing, origin)

    assert vol.voxels.dtype == np.int16
    assert not vol.qa_warnings
    mine = in_other_index_order(voxels, truth, vol.affine, vol.shape)
    np.testing.assert_array_equal(vol.voxels, mine)

    for oracle_values, oracle_affine in (_dcm2niix(series, tmp_path / "dcm2niix"), _simpleitk(series)):
        # NIfTI keeps its affine in float32, so the oracles agree to a micrometre, not to 0.1 µm.
        expected = in_other_index_order(oracle_values, oracle_affine, vol.affine, vol.shape, atol_mm=1e-3)
        np.testing.assert_array_equal(vol.voxels.astype(np.float64), expected)


def test_shuffled_file_names_and_instance_numbers_do_not_change_the_order(
    head: tuple[npt.NDArray[np.int16], tuple[float, ...]], tmp_path: Path
) -> None:
    voxels, spacing = head
    n = voxels.shape[0]
    names = [f"IMG{(k * 37) % n:05d}.dcm" for k in range(n)]
    write_dicom_series(voxels, tmp_path, spacing=spacing, file_names=names, scramble_instance_numbers=True)
    vol = _load_only_stack(tmp_path)
    np.testing.assert_array_equal(vol.voxels, voxels)
    assert vol.spacing == pytest.approx(spacing, abs=1e-4)


def test_slice_spacing_comes_from_positions_not_slice_thickness(
    head: tuple[npt.NDArray[np.int16], tuple[float, ...]], tmp_path: Path
) -> None:
    import pydicom

    voxels, spacing = head
    files = write_dicom_series(voxels[:10], tmp_path, spacing=spacing)
    for f in files:
        ds = pydicom.dcmread(f)
        ds.SliceThickness = 5.0
        ds.save_as(f)
    assert _load_only_stack(tmp_path).spacing[2] == pytest.approx(spacing[2], abs=1e-4)


def test_missing_slice_is_flagged_and_the_rest_placed_exactly(
    head: tuple[npt.NDArray[np.int16], tuple[float, ...]], tmp_path: Path
) -> None:
    voxels, spacing = head
    files = write_dicom_series(voxels[:30], tmp_path, spacing=spacing)
    files[12].unlink()
    stack = scan(tmp_path).stacks()[0]
    assert QACode.MISSING_SLICES in {q.code for q in stack.qa}
    with pytest.warns(UserWarning, match="missing-slices"):
        vol = load_stack(stack)
    assert vol.shape[0] == 29
    np.testing.assert_array_equal(vol.voxels[:12], voxels[:12])
    np.testing.assert_allclose(vol.index_to_lps([0, 0, 11]), [0, 0, 11 * spacing[2]], atol=1e-4)


def test_gantry_tilt_is_flagged_and_each_slice_placed_where_the_file_says(
    head: tuple[npt.NDArray[np.int16], tuple[float, ...]], tmp_path: Path
) -> None:
    voxels, spacing = head
    tilt = np.radians(15)
    n = 40
    positions = [(0.0, k * spacing[2] * np.tan(tilt), k * spacing[2]) for k in range(n)]
    write_dicom_series(voxels[:n], tmp_path, spacing=spacing, slice_positions=positions)
    stack = scan(tmp_path).stacks()[0]
    assert QACode.GANTRY_TILT in {q.code for q in stack.qa}
    with pytest.warns(UserWarning, match="gantry-tilt"):
        vol = load_stack(stack)
    np.testing.assert_array_equal(vol.voxels, voxels[:n])
    for k in (0, 17, n - 1):
        np.testing.assert_allclose(vol.index_to_lps([0, 0, k]), positions[k], atol=1e-4)
        np.testing.assert_allclose(
            vol.index_to_lps([5, 7, k]), np.add(positions[k], (5 * spacing[0], 7 * spacing[1], 0)), atol=1e-4
        )


def test_two_series_in_one_folder_become_two_stacks(
    head: tuple[npt.NDArray[np.int16], tuple[float, ...]], tmp_path: Path
) -> None:
    voxels, spacing = head
    write_dicom_series(
        voxels[:20],
        tmp_path,
        spacing=spacing,
        uid_seed="a",
        study_uid="1.2.826.0.1.3680043.8.498.77",
        series_number=1,
        file_names=[f"a{k:03d}.dcm" for k in range(20)],
    )
    write_dicom_series(
        voxels[40:52, ::2, ::2],
        tmp_path,
        spacing=(2 * spacing[0], 2 * spacing[1], spacing[2]),
        direction=GEOMETRIES["coronal"],
        uid_seed="b",
        study_uid="1.2.826.0.1.3680043.8.498.77",
        series_number=2,
        file_names=[f"b{k:03d}.dcm" for k in range(12)],
    )
    stacks = scan(tmp_path).stacks()
    assert [s.n_slices for s in stacks] == [20, 12]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_array_equal(load_stack(stacks[0]).voxels, voxels[:20])
        second = load_stack(stacks[1])
    truth = _truth_affine(GEOMETRIES["coronal"], (2 * spacing[0], 2 * spacing[1], spacing[2]), (0, 0, 0))
    np.testing.assert_array_equal(
        second.voxels, in_other_index_order(voxels[40:52, ::2, ::2], truth, second.affine, second.shape)
    )
