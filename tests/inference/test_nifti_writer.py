"""write_nifti: RAS affine, (i, j, k) order, qform/sform, types kept, atomic replace."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from inference.io.image_file import read_image_file
from inference.io.nifti_writer import NiftiWriteError, write_nifti
from inference.volume import Volume

from .nifti_oracle import write_with_nibabel

COLIN27 = Path("/usr/share/mricron/templates/ch2.nii.gz")
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def oblique(seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q


def make_volume(direction: np.ndarray, dtype: type = np.int16, shape=(6, 7, 8)) -> Volume:
    rng = np.random.default_rng(11)
    voxels = (rng.normal(size=shape) * 400).astype(dtype)
    return Volume(voxels=voxels, spacing=(0.6, 0.8, 3.0), origin=(15.0, -30.0, 102.5), direction=direction)


def sitk_affine(img: sitk.Image) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = np.asarray(img.GetDirection()).reshape(3, 3) * np.asarray(img.GetSpacing())[None, :]
    out[:3, 3] = img.GetOrigin()
    return out


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if ".tmp-" in p.name]


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_round_trip_oblique_nibabel_and_sitk(tmp_path: Path, suffix: str, seed: int) -> None:
    vol = make_volume(oblique(seed))
    out = write_nifti(vol, tmp_path / f"out{suffix}")
    assert out == tmp_path / f"out{suffix}"
    raw = out.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == (suffix == ".nii.gz")

    img = nib.load(out)
    assert img.get_data_dtype() == np.int16
    assert int(img.header["qform_code"]) == 1
    assert int(img.header["sform_code"]) == 1
    assert img.header.get_xyzt_units()[0] == "mm"
    np.testing.assert_allclose(LPS_TO_RAS @ img.get_sform(), vol.affine, atol=1e-4)
    np.testing.assert_allclose(LPS_TO_RAS @ img.get_qform(), vol.affine, atol=1e-4)
    data = np.asarray(img.dataobj)
    assert data.dtype == np.int16
    np.testing.assert_array_equal(data.transpose(2, 1, 0), vol.voxels)

    s = sitk.ReadImage(str(out))
    np.testing.assert_allclose(sitk_affine(s), vol.affine, atol=1e-4)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(s), vol.voxels)

    # The same voxel lands on the same physical point in every reader.
    ijk = np.array([3, 5, 2, 1.0])
    lps = vol.affine @ ijk
    np.testing.assert_allclose(LPS_TO_RAS @ (img.affine @ ijk), lps, atol=1e-4)
    np.testing.assert_allclose(s.TransformContinuousIndexToPhysicalPoint(ijk[:3].tolist()), lps[:3], atol=1e-4)

    back = read_image_file(out)
    np.testing.assert_array_equal(back.voxels, vol.voxels)
    np.testing.assert_allclose(back.affine, vol.affine, atol=1e-4)
    assert no_temp_files(tmp_path)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.int32, np.float32, np.float64])
def test_dtype_kept(tmp_path: Path, dtype: type) -> None:
    vol = make_volume(np.eye(3), dtype=dtype)
    out = write_nifti(vol, tmp_path / "t.nii.gz")
    img = nib.load(out)
    assert img.get_data_dtype() == dtype
    assert np.isnan(img.header["scl_slope"]) or img.header["scl_slope"] in (0, 1)
    np.testing.assert_array_equal(np.asarray(img.dataobj).transpose(2, 1, 0), vol.voxels)


def test_sheared_direction_sform_only(tmp_path: Path) -> None:
    """Gantry tilt: the k column leans; no quaternion can hold that, so only the sform is set."""
    tilt = np.deg2rad(20)
    direction = np.column_stack([[1.0, 0, 0], [0, 1.0, 0], [0, np.sin(tilt), np.cos(tilt)]])
    vol = make_volume(direction)
    out = write_nifti(vol, tmp_path / "tilt.nii.gz")
    img = nib.load(out)
    assert int(img.header["qform_code"]) == 0
    assert int(img.header["sform_code"]) == 1
    np.testing.assert_allclose(LPS_TO_RAS @ img.affine, vol.affine, atol=1e-4)
    # ITK refuses sheared NIfTI; read_image_file falls back to nibabel and keeps the shear.
    back = read_image_file(out)
    np.testing.assert_allclose(back.affine, vol.affine, atol=1e-4)
    np.testing.assert_array_equal(back.voxels, vol.voxels)
    assert back.voxels.dtype == np.int16


def test_colour_volume(tmp_path: Path) -> None:
    voxels = np.random.default_rng(3).integers(0, 255, size=(3, 4, 5, 3), dtype=np.uint8)
    vol = Volume(voxels=voxels, spacing=(1.0, 1.0, 2.0), origin=(0.0, 0.0, 0.0), direction=oblique(4))
    out = write_nifti(vol, tmp_path / "rgb.nii")
    s = sitk.ReadImage(str(out))
    assert s.GetNumberOfComponentsPerPixel() == 3
    np.testing.assert_array_equal(sitk.GetArrayFromImage(s), voxels)
    back = read_image_file(out)
    np.testing.assert_array_equal(back.voxels, voxels)
    np.testing.assert_allclose(back.affine, vol.affine, atol=1e-4)


def test_colin27_through_writer(tmp_path: Path) -> None:
    if not COLIN27.is_file():
        pytest.fail(f"{COLIN27} is missing: the Colin27 template comes from Debian; run `apt-get install mricron-data`")
    vol = read_image_file(COLIN27)
    out = write_nifti(vol, tmp_path / "colin.nii.gz")
    img = nib.load(out)
    ref = nib.load(COLIN27)
    np.testing.assert_allclose(img.affine, ref.affine, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(img.dataobj), np.asarray(ref.dataobj))


def test_multi_member_gzip_reads(tmp_path: Path) -> None:
    """A complete .nii.gz made of two gzip members has a misleading trailer; it still reads."""
    vol = make_volume(np.eye(3))
    out = write_nifti(vol, tmp_path / "one.nii")
    raw = out.read_bytes()
    two = tmp_path / "two.nii.gz"
    two.write_bytes(gzip.compress(raw[:500]) + gzip.compress(raw[500:]))
    back = read_image_file(two)
    np.testing.assert_array_equal(back.voxels, vol.voxels)


# --- refusing and atomicity ------------------------------------------------------------------


def test_missing_parent_refused(tmp_path: Path) -> None:
    with pytest.raises(NiftiWriteError, match="does not exist"):
        write_nifti(make_volume(np.eye(3)), tmp_path / "no" / "such" / "out.nii.gz")
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("name", ["out.nrrd", "out.gz", "out", ".nii"])
def test_wrong_suffix_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(NiftiWriteError, match=r"\.nii"):
        write_nifti(make_volume(np.eye(3)), tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_failure_leaves_destination_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "keep.nii.gz"
    dest.write_bytes(b"previous contents")

    from inference.io import nifti_writer

    def boom(volume: object, filename: str, *args: object) -> None:
        Path(filename).write_bytes(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(nifti_writer, "_write_direct", boom)
    with pytest.raises(NiftiWriteError, match="No space left"):
        write_nifti(make_volume(np.eye(3)), dest)
    assert dest.read_bytes() == b"previous contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.nii.gz"]


def test_interrupt_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from inference.io import nifti_writer

    def interrupted(volume: object, filename: str, *args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(nifti_writer, "_write_direct", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_nifti(make_volume(np.eye(3)), tmp_path / "x.nii")
    assert list(tmp_path.iterdir()) == []


def test_replaces_existing_keeps_mode(tmp_path: Path) -> None:
    dest = tmp_path / "v.nii"
    dest.write_bytes(b"old")
    os.chmod(dest, 0o640)
    write_nifti(make_volume(np.eye(3)), dest)
    assert nib.load(dest).shape == (8, 7, 6)
    assert dest.stat().st_mode & 0o777 == 0o640
    assert no_temp_files(tmp_path)


def test_new_file_not_private(tmp_path: Path) -> None:
    dest = write_nifti(make_volume(np.eye(3)), tmp_path / "n.nii.gz")
    assert dest.stat().st_mode & 0o044  # readable by others like any normally created file


@pytest.mark.parametrize("through_nibabel", [True, False])
def test_scaled_storage_reads_back_as_values(tmp_path: Path, through_nibabel: bool) -> None:
    """RadLens's writer and nibabel's (the oracle) store the same scaled values."""
    vol = make_volume(oblique(3), dtype=np.uint8)
    stored = (np.arange(vol.voxels.size) % 256).astype(np.uint8).reshape(vol.shape)
    write = write_with_nibabel if through_nibabel else write_nifti
    path = write(vol.with_voxels(stored), tmp_path / "scaled.nii.gz", scale=(1 / 255, 0.5))
    img = nib.load(path)
    assert img.get_data_dtype() == np.uint8
    expected = stored.transpose(2, 1, 0) / 255 + 0.5
    np.testing.assert_allclose(img.get_fdata(), expected, atol=1e-6)
    np.testing.assert_allclose(sitk.GetArrayFromImage(sitk.ReadImage(str(path))), stored / 255 + 0.5, atol=1e-6)


def test_gzip_through_isal_or_the_standard_library_holds_the_same_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """.nii.gz goes through ISA-L when python-isal is installed (it is a dependency), else zlib:
    the same NIfTI bytes inside either gzip stream, each one a plain gzip file."""
    import sys

    from isal import igzip

    from inference.io import nifti_writer

    vol = make_volume(oblique(2))
    with open(tmp_path / "probe", "wb") as fh:
        assert type(nifti_writer.gzip_writer(fh)) is igzip.GzipFile
    fast = write_nifti(vol, tmp_path / "isal.nii.gz")
    monkeypatch.setitem(sys.modules, "isal", None)  # as if it were not installed: import fails
    with open(tmp_path / "probe", "wb") as fh:
        assert type(nifti_writer.gzip_writer(fh)) is gzip.GzipFile
    plain = write_nifti(vol, tmp_path / "zlib.nii.gz")
    inside = [gzip.decompress(p.read_bytes()) for p in (fast, plain)]
    assert inside[0] == inside[1] and len(inside[0]) == 352 + vol.voxels.nbytes
    np.testing.assert_array_equal(np.asarray(nib.load(fast).dataobj), vol.voxels.transpose(2, 1, 0))
