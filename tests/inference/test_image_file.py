"""read_image_file: NIfTI/NRRD/MetaImage through SimpleITK, geometry in LPS, types kept, typed errors."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from inference.errors import EmptyFileError, LoadError, TruncatedFileError, UnreadableFileError
from inference.io.image_file import IMAGE_SUFFIXES, is_image_file, read_image_file

COLIN27 = Path("/usr/share/mricron/templates/ch2.nii.gz")
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
SUFFIXES = [".nii", ".nii.gz", ".nrrd", ".mha", ".mhd", ".nhdr"]


def oblique_direction(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def sitk_image(voxels: np.ndarray, direction: np.ndarray, spacing=(0.7, 0.9, 2.5), origin=(-12.5, 40.0, 7.25)):
    img = sitk.GetImageFromArray(voxels, isVector=voxels.ndim == 4)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    img.SetDirection(direction.ravel().tolist())
    return img


def expected_affine(direction: np.ndarray, spacing, origin) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = direction * np.asarray(spacing)[None, :]
    out[:3, 3] = origin
    return out


def test_suffixes() -> None:
    assert set(IMAGE_SUFFIXES) == {".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd"}
    assert is_image_file("a/b/brain.nii.gz")
    assert is_image_file("SCAN.NRRD")
    assert is_image_file(Path("x.mha"))
    assert not is_image_file("x.gz")
    assert not is_image_file("IM0001.dcm")
    assert not is_image_file(".nii")


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float32])
def test_round_trip_oblique(tmp_path: Path, suffix: str, dtype: type) -> None:
    rng = np.random.default_rng(1)
    voxels = (rng.normal(size=(7, 9, 11)) * 500).astype(dtype)
    direction = oblique_direction(2)
    path = tmp_path / f"vol{suffix}"
    sitk.WriteImage(sitk_image(voxels, direction), str(path))
    vol = read_image_file(path)
    assert vol.voxels.dtype == dtype
    assert vol.shape == (7, 9, 11)
    np.testing.assert_array_equal(vol.voxels, voxels)
    np.testing.assert_allclose(vol.affine, expected_affine(direction, (0.7, 0.9, 2.5), (-12.5, 40.0, 7.25)), atol=1e-4)
    assert vol.metadata.source == str(path)
    assert vol.metadata.modality == ""
    assert vol.qa_warnings == ()


def test_nifti_affine_matches_nibabel(tmp_path: Path) -> None:
    voxels = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    direction = oblique_direction(3)
    path = tmp_path / "v.nii.gz"
    sitk.WriteImage(sitk_image(voxels, direction), str(path))
    vol = read_image_file(path)
    img = nib.load(path)
    np.testing.assert_allclose(vol.affine, LPS_TO_RAS @ img.affine, atol=1e-4)
    # voxel (i, j, k) in nibabel is voxels[k, j, i] here
    np.testing.assert_array_equal(np.asarray(img.dataobj).transpose(2, 1, 0), vol.voxels)


def test_float64_becomes_float32(tmp_path: Path) -> None:
    voxels = np.linspace(0, 1, 60).reshape(3, 4, 5)
    path = tmp_path / "f.mha"
    sitk.WriteImage(sitk_image(voxels, np.eye(3)), str(path))
    vol = read_image_file(path)
    assert vol.voxels.dtype == np.float32
    assert vol.metadata.extra["converted_from"] == "float64"
    np.testing.assert_allclose(vol.voxels, voxels, rtol=1e-6)


def test_rgb_is_4d_colour_last(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    voxels = rng.integers(0, 255, size=(3, 4, 5, 3), dtype=np.uint8)
    path = tmp_path / "rgb.nrrd"
    sitk.WriteImage(sitk_image(voxels, np.eye(3)), str(path))
    vol = read_image_file(path)
    assert vol.voxels.shape == (3, 4, 5, 3)
    assert vol.shape == (3, 4, 5)
    np.testing.assert_array_equal(vol.voxels, voxels)


def test_4d_series_keeps_first_volume(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    series = rng.integers(-100, 100, size=(3, 4, 5, 6), dtype=np.int16)  # (t, k, j, i)
    img = sitk.JoinSeries([sitk.GetImageFromArray(v) for v in series])
    path = tmp_path / "fmri.nii.gz"
    sitk.WriteImage(img, str(path))
    vol = read_image_file(path)
    assert vol.shape == (4, 5, 6)
    np.testing.assert_array_equal(vol.voxels, series[0])
    assert any("3 volumes" in w for w in vol.qa_warnings)


def test_2d_image_is_one_slice(tmp_path: Path) -> None:
    img = sitk.GetImageFromArray(np.arange(12, dtype=np.int16).reshape(3, 4))
    img.SetSpacing((0.5, 0.25))
    path = tmp_path / "flat.mha"
    sitk.WriteImage(img, str(path))
    vol = read_image_file(path)
    assert vol.shape == (1, 3, 4)
    assert vol.spacing == (0.5, 0.25, 1.0)


def test_colin27() -> None:
    if not COLIN27.is_file():
        pytest.fail(f"{COLIN27} is missing: the Colin27 template comes from Debian; run `apt-get install mricron-data`")
    vol = read_image_file(COLIN27)
    img = nib.load(COLIN27)
    assert img.shape == (181, 217, 181)
    assert vol.shape == (181, 217, 181)  # (k, j, i) of an (i, j, k) = (181, 217, 181) image
    assert vol.voxels.dtype == img.get_data_dtype() == np.uint8
    np.testing.assert_allclose(vol.affine, LPS_TO_RAS @ img.affine, atol=1e-4)
    np.testing.assert_array_equal(vol.voxels, np.asarray(img.dataobj).transpose(2, 1, 0))


# --- bad files -------------------------------------------------------------------------------


def _good_bytes(tmp_path: Path, suffix: str) -> bytes:
    voxels = (np.random.default_rng(6).normal(size=(8, 16, 16)) * 300).astype(np.int16)
    path = tmp_path / f"good{suffix}"
    sitk.WriteImage(sitk.GetImageFromArray(voxels), str(path))
    return path.read_bytes()


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.nii.gz"
    with pytest.raises(UnreadableFileError) as info:
        read_image_file(path)
    assert info.value.path == path


def test_folder(tmp_path: Path) -> None:
    path = tmp_path / "dir.nii"
    path.mkdir()
    with pytest.raises(UnreadableFileError):
        read_image_file(path)


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "pipe.nii"
    os.mkfifo(path)
    with pytest.raises(UnreadableFileError, match="regular"):
        read_image_file(path)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_empty_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"empty{suffix}"
    path.write_bytes(b"")
    with pytest.raises(EmptyFileError) as info:
        read_image_file(path)
    assert info.value.path == path


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".mha"])
def test_garbage(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"garbage{suffix}"
    path.write_bytes(bytes(np.random.default_rng(7).integers(0, 256, 5000, dtype=np.uint8)))
    with pytest.raises(LoadError) as info:
        read_image_file(path)
    assert info.value.path == path
    assert str(path) in str(info.value)
    assert len(info.value.reason) < 300


def test_gzip_of_garbage(tmp_path: Path) -> None:
    path = tmp_path / "garbage.nii.gz"
    path.write_bytes(gzip.compress(b"not a nifti header at all" * 40))
    with pytest.raises(LoadError) as info:
        read_image_file(path)
    assert info.value.path == path


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".mha"])
@pytest.mark.parametrize("keep", [0.5, 0.9, 100])
def test_truncated(tmp_path: Path, suffix: str, keep: float) -> None:
    data = _good_bytes(tmp_path, suffix)
    cut = data[: int(len(data) * keep)] if keep < 1 else data[: int(keep)]
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(cut)
    with pytest.raises(LoadError) as info:
        read_image_file(path)
    assert info.value.path == path


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_truncated_nifti_is_not_zero_filled(tmp_path: Path, suffix: str) -> None:
    """ITK's NIfTI reader zero-fills a short file without complaint; RadLens must refuse it."""
    data = _good_bytes(tmp_path, suffix)
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(data[: len(data) - 200])
    with pytest.raises(TruncatedFileError) as info:
        read_image_file(path)
    assert info.value.path == path
