"""The DICOM series writer: files readable by pydicom and by SimpleITK with the requested geometry."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage

from inference.io.dicom_writer import write_dicom_series


def _rotation(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _read_sitk(folder: Path) -> tuple[np.ndarray, tuple[float, ...], tuple[float, ...], np.ndarray]:
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    names = reader.GetGDCMSeriesFileNames(str(folder))
    reader.SetFileNames(names)
    image = reader.Execute()
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    return sitk.GetArrayFromImage(image), image.GetOrigin(), image.GetSpacing(), direction


def _random_hu(shape: tuple[int, int, int], seed: int = 0, lo: int = -1024, hi: int = 3000) -> np.ndarray:
    return np.random.default_rng(seed).integers(lo, hi, size=shape).astype(np.int16)


def test_ct_series_matches_requested_geometry_in_simpleitk(tmp_path: Path) -> None:
    voxels = _random_hu((7, 20, 31))
    spacing = (0.7, 0.9, 2.0)
    origin = (-100.5, 42.25, 310.0)
    direction = _rotation(0.3, -0.2, 0.5)
    paths = write_dicom_series(voxels, tmp_path, spacing=spacing, origin=origin, direction=direction)
    assert len(paths) == 7 and all(p.is_file() for p in paths)
    array, got_origin, got_spacing, got_direction = _read_sitk(tmp_path)
    np.testing.assert_allclose(got_origin, origin, atol=1e-4)
    np.testing.assert_allclose(got_spacing, spacing, atol=1e-4)
    np.testing.assert_allclose(got_direction, direction, atol=1e-4)
    assert array.shape == voxels.shape
    np.testing.assert_array_equal(array, voxels)


def test_ct_files_are_valid_per_slice_dicom(tmp_path: Path) -> None:
    voxels = _random_hu((4, 10, 12), seed=1)
    spacing = (0.5, 0.8, 3.0)
    origin = (1.0, 2.0, 3.0)
    paths = write_dicom_series(
        voxels,
        tmp_path,
        spacing=spacing,
        origin=origin,
        patient_name="DOE^JANE",
        patient_id="P123",
        series_description="Axial",
        study_description="Chest",
        window_center=-600,
        window_width=1500,
    )
    sop_uids = set()
    for k, path in enumerate(paths):
        raw = path.read_bytes()
        assert raw[128:132] == b"DICM"
        ds = pydicom.dcmread(path)  # no force: a proper file with preamble and meta
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert ds.SOPClassUID == CTImageStorage == ds.file_meta.MediaStorageSOPClassUID
        assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
        sop_uids.add(ds.SOPInstanceUID)
        assert ds.Modality == "CT"
        assert str(ds.PatientName) == "DOE^JANE" and ds.PatientID == "P123"
        assert ds.SeriesDescription == "Axial" and ds.StudyDescription == "Chest"
        assert (ds.Rows, ds.Columns) == (10, 12)
        # DICOM order: row spacing (along j) first.
        assert [float(v) for v in ds.PixelSpacing] == [0.8, 0.5]
        assert float(ds.SliceThickness) == 3.0
        assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient], [1.0, 2.0, 3.0 + 3.0 * k])
        assert float(ds.RescaleIntercept) == -1024 and float(ds.RescaleSlope) == 1
        assert float(ds.WindowCenter) == -600 and float(ds.WindowWidth) == 1500
        assert ds.InstanceNumber == k + 1
        assert ds.FrameOfReferenceUID
        hu = ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
        np.testing.assert_array_equal(hu, voxels[k])
    assert len(sop_uids) == 4
    assert not [p for p in tmp_path.iterdir() if p not in paths], "temporary files left behind"


def test_uids_are_deterministic_and_shared_within_series(tmp_path: Path) -> None:
    voxels = _random_hu((3, 8, 8))
    a = write_dicom_series(voxels, tmp_path / "a", spacing=(1, 1, 1), uid_seed="seed-1")
    b = write_dicom_series(voxels, tmp_path / "b", spacing=(1, 1, 1), uid_seed="seed-1")
    c = write_dicom_series(voxels, tmp_path / "c", spacing=(1, 1, 1), uid_seed="seed-2")
    for pa, pb in zip(a, b, strict=True):
        assert pa.read_bytes() == pb.read_bytes()
    ds_a = [pydicom.dcmread(p) for p in a]
    assert len({d.SeriesInstanceUID for d in ds_a}) == 1
    assert len({d.StudyInstanceUID for d in ds_a}) == 1
    assert pydicom.dcmread(c[0]).SeriesInstanceUID != ds_a[0].SeriesInstanceUID
    given = write_dicom_series(voxels, tmp_path / "d", spacing=(1, 1, 1), study_uid="1.2.3", series_uid="1.2.3.4")
    ds = pydicom.dcmread(given[0])
    assert (ds.StudyInstanceUID, ds.SeriesInstanceUID) == ("1.2.3", "1.2.3.4")


def test_mr_series(tmp_path: Path) -> None:
    voxels = _random_hu((5, 16, 9), seed=3, lo=-200, hi=4000)
    spacing = (1.1, 1.3, 4.0)
    paths = write_dicom_series(voxels, tmp_path, spacing=spacing, modality="MR", origin=(5, 6, 7))
    ds = pydicom.dcmread(paths[0])
    assert ds.SOPClassUID == MRImageStorage and ds.Modality == "MR"
    assert ds.PixelRepresentation == 1  # negative values need signed storage with intercept 0
    assert "RescaleIntercept" not in ds
    np.testing.assert_array_equal(ds.pixel_array, voxels[0])
    array, origin, got_spacing, _ = _read_sitk(tmp_path)
    np.testing.assert_allclose(origin, (5, 6, 7), atol=1e-4)
    np.testing.assert_allclose(got_spacing, spacing, atol=1e-4)
    np.testing.assert_array_equal(array, voxels)


def test_ct_values_below_intercept_use_signed_storage(tmp_path: Path) -> None:
    voxels = _random_hu((2, 6, 6), lo=-3000, hi=3000)
    paths = write_dicom_series(voxels, tmp_path, spacing=(1, 1, 1))
    ds = pydicom.dcmread(paths[0])
    assert ds.PixelRepresentation == 1
    np.testing.assert_array_equal(ds.pixel_array.astype(np.int32) - 1024, voxels[0])
    array, *_ = _read_sitk(tmp_path)
    np.testing.assert_array_equal(array, voxels)


def test_shuffled_names_and_scrambled_instance_numbers_still_sort_by_position(tmp_path: Path) -> None:
    voxels = _random_hu((9, 8, 10), seed=4)
    names = [f"{n:03d}.dcm" for n in np.random.default_rng(5).permutation(9)]
    paths = write_dicom_series(voxels, tmp_path, spacing=(1, 1, 2), file_names=names, scramble_instance_numbers=True)
    assert [p.name for p in paths] == names
    numbers = [pydicom.dcmread(p).InstanceNumber for p in paths]
    assert sorted(numbers) == list(range(1, 10)) and numbers != list(range(1, 10))
    array, *_ = _read_sitk(tmp_path)
    np.testing.assert_array_equal(array, voxels)


def test_slice_positions_override(tmp_path: Path) -> None:
    voxels = _random_hu((4, 6, 6))
    tilt = np.tan(np.radians(15))
    positions = [(0.0, 3.0 * k * tilt, 3.0 * k) for k in range(4)]
    paths = write_dicom_series(voxels, tmp_path, spacing=(1, 1, 3), slice_positions=positions)
    for path, expected in zip(paths, positions, strict=True):
        np.testing.assert_allclose([float(v) for v in pydicom.dcmread(path).ImagePositionPatient], expected)


def test_rejects_bad_input(tmp_path: Path) -> None:
    voxels = _random_hu((2, 4, 4))
    with pytest.raises(ValueError, match="orthonormal"):
        write_dicom_series(voxels, tmp_path, spacing=(1, 1, 1), direction=np.diag([2.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="file names"):
        write_dicom_series(voxels, tmp_path, spacing=(1, 1, 1), file_names=["a.dcm"])
    with pytest.raises(ValueError, match="slice positions"):
        write_dicom_series(voxels, tmp_path, spacing=(1, 1, 1), slice_positions=[(0, 0, 0)])
    with pytest.raises(TypeError):
        write_dicom_series(voxels.astype(np.float32), tmp_path, spacing=(1, 1, 1))
    with pytest.raises(ValueError, match="modality"):
        write_dicom_series(voxels, tmp_path, spacing=(1, 1, 1), modality="US")
    assert list(tmp_path.iterdir()) == []


def test_ct_head_loads_with_plausible_hu(ct_head: tuple[np.ndarray, tuple[float, float, float]]) -> None:
    voxels, spacing = ct_head
    assert voxels.shape == (108, 256, 256) and voxels.dtype == np.int16
    np.testing.assert_allclose(spacing, (0.9570312, 0.9570312, 1.5), atol=1e-6)
    assert voxels.min() == -1024 and 2000 < voxels.max() < 3100
    corner = voxels[:, :20, :20]
    assert abs(float(np.median(corner)) + 1000) < 50  # air
    assert (voxels > 1000).mean() > 0.005  # skull
    centre = voxels[54, 96:160, 96:160]
    assert -50 < float(np.median(centre)) < 100  # brain


def test_ct_head_round_trips_through_dicom(
    tmp_path: Path,
    ct_head: tuple[np.ndarray, tuple[float, float, float]],
    write_series: Callable[..., list[Path]],
) -> None:
    voxels, spacing = ct_head
    sub = voxels[40:60]
    write_series(sub, tmp_path, spacing=spacing, origin=(-120.0, -130.0, 50.0))
    array, origin, got_spacing, _ = _read_sitk(tmp_path)
    np.testing.assert_array_equal(array, sub)
    np.testing.assert_allclose(got_spacing, spacing, atol=1e-4)
    np.testing.assert_allclose(origin, (-120.0, -130.0, 50.0), atol=1e-4)
