"""The loader on pydicom's and pydicom-data's real files: every codec, multi-frame, tiny series."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from inference.errors import LoadError, MissingGeometryError
from inference.io.dicom_loader import load_stack
from inference.io.geometry_qa import QACode
from inference.io.scan import scan
from inference.volume import Volume

TEST_FILES = Path(os.path.dirname(get_testdata_file("CT_small.dcm")))
DICOMDIR_TESTS = TEST_FILES / "dicomdirtests"


def _load_file(path: str | Path, **kw: object) -> Volume:
    result = scan(path)
    stacks = result.stacks()
    assert len(stacks) == 1, (path, result.errors)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_stack(stacks[0], **kw)  # type: ignore[arg-type]


def _data(name: str) -> str:
    path = get_testdata_file(name)
    assert path is not None, f"{name} missing: install pydicom-data"
    return str(path)


# (uncompressed twin, compressed or re-encoded variant): lossless pairs must match exactly.
LOSSLESS_TWINS = [
    ("MR_small.dcm", "MR_small_RLE.dcm"),
    ("MR_small.dcm", "MR_small_bigendian.dcm"),
    ("MR_small.dcm", "MR_small_expb.dcm"),
    ("MR_small.dcm", "MR_small_implicit.dcm"),
    ("MR_small.dcm", "MR_small_jp2klossless.dcm"),
    ("MR_small.dcm", "MR_small_jpeg_ls_lossless.dcm"),
    ("emri_small.dcm", "emri_small_RLE.dcm"),
    ("emri_small.dcm", "emri_small_big_endian.dcm"),
    ("emri_small.dcm", "emri_small_jpeg_2k_lossless.dcm"),
    ("emri_small.dcm", "emri_small_jpeg_ls_lossless.dcm"),
    ("rtdose.dcm", "rtdose_rle.dcm"),
    ("rtdose.dcm", "rtdose_expb.dcm"),
    ("MR2_UNCR.dcm", "MR2_J2KR.dcm"),
    ("RG1_UNCR.dcm", "RG1_J2KR.dcm"),
    ("US1_UNCR.dcm", "US1_J2KR.dcm"),
    ("SC_rgb.dcm", "SC_rgb_rle.dcm"),
    ("SC_rgb.dcm", "SC_rgb_expb.dcm"),
    ("OBXXXX1A.dcm", "OBXXXX1A_rle.dcm"),
    ("OBXXXX1A.dcm", "OBXXXX1A_expb.dcm"),
]


@pytest.mark.parametrize(("plain", "variant"), LOSSLESS_TWINS, ids=[v for _, v in LOSSLESS_TWINS])
def test_lossless_variants_decode_identical_to_their_uncompressed_twin(plain: str, variant: str) -> None:
    a = _load_file(_data(plain), allow_missing_geometry=True)
    b = _load_file(_data(variant), allow_missing_geometry=True)
    assert a.voxels.shape == b.voxels.shape
    assert a.voxels.dtype == b.voxels.dtype
    np.testing.assert_array_equal(a.voxels, b.voxels)
    np.testing.assert_allclose(a.affine, b.affine, atol=1e-6)


LOSSY_TWINS = [("MR2_UNCR.dcm", "MR2_J2KI.dcm"), ("RG1_UNCR.dcm", "RG1_J2KI.dcm"), ("US1_UNCR.dcm", "US1_J2KI.dcm")]


@pytest.mark.parametrize(("plain", "lossy"), LOSSY_TWINS, ids=[v for _, v in LOSSY_TWINS])
def test_lossy_variants_stay_close_to_their_twin(plain: str, lossy: str) -> None:
    a = _load_file(_data(plain), allow_missing_geometry=True).voxels.astype(np.float64)
    b = _load_file(_data(lossy), allow_missing_geometry=True).voxels.astype(np.float64)
    assert a.shape == b.shape
    value_range = float(a.max() - a.min())
    assert np.mean(np.abs(a - b)) < 0.01 * value_range
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.99


def test_jpeg_baseline_and_lossless_and_deflate_decode() -> None:
    names = ("JPEG-LL.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm", "image_dfl.dcm", "JPGExtended.dcm")
    for name in names:
        vol = _load_file(_data(name), allow_missing_geometry=True)
        assert vol.voxels.size > 0
        assert float(vol.voxels.std()) > 0, name


def test_data_no_installed_decoder_handles_is_a_typed_error_naming_the_file() -> None:
    # 12-bit extended JPEG with a malformed scan header: pylibjpeg, GDCM and Pillow all refuse it.
    path = _data("JPEG-lossy.dcm")
    with pytest.raises(LoadError) as info:
        _load_file(path)
    assert "JPEG-lossy.dcm" in str(info.value)
    assert info.value.path == Path(path)


def test_ct_small_is_rescaled_to_hu_in_int16() -> None:
    path = _data("CT_small.dcm")
    vol = _load_file(path)
    ds = pydicom.dcmread(path)
    expected = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert vol.voxels.dtype == np.int16
    np.testing.assert_array_equal(vol.voxels[0], expected)
    assert vol.metadata.units == "HU"
    np.testing.assert_allclose(vol.origin, [float(v) for v in ds.ImagePositionPatient])


def test_enhanced_ct_frames_land_at_their_per_frame_positions() -> None:
    path = _data("eCT_Supplemental.dcm")
    vol = _load_file(path)
    ds = pydicom.dcmread(path)
    frames = ds.PerFrameFunctionalGroupsSequence
    positions = sorted(
        (np.array([float(v) for v in f.PlanePositionSequence[0].ImagePositionPatient]) for f in frames),
        key=lambda p: float(p @ vol.direction[:, 2]),
    )
    assert vol.shape[0] == int(ds.NumberOfFrames)
    for k, pos in enumerate(positions):
        np.testing.assert_allclose(vol.index_to_lps([0, 0, k]), pos, atol=1e-4)


def test_rt_dose_grid_uses_frame_offsets_and_dose_scaling() -> None:
    path = _data("rtdose.dcm")
    vol = _load_file(path)
    ds = pydicom.dcmread(path)
    offsets = [float(v) for v in ds.GridFrameOffsetVector]
    assert vol.shape[0] == len(offsets)
    assert vol.spacing[2] == pytest.approx(abs(offsets[1] - offsets[0]))
    scaled = ds.pixel_array.astype(np.float64) * float(ds.DoseGridScaling)
    order = np.argsort(offsets) if vol.direction[2, 2] > 0 else np.argsort(offsets)[::-1]
    np.testing.assert_allclose(vol.voxels, scaled[order], rtol=1e-6)


def test_enhanced_mr_without_geometry_is_refused_unless_allowed() -> None:
    stack = scan(_data("emri_small.dcm")).stacks()[0]
    with pytest.raises(MissingGeometryError) as info:
        load_stack(stack)
    assert "emri_small.dcm" in str(info.value)
    with pytest.warns(UserWarning):
        vol = load_stack(stack, allow_missing_geometry=True)
    assert vol.shape == (10, 64, 64)
    assert any("no-geometry" in q for q in vol.qa_warnings)


def test_tiny_real_ct_series_loads_with_spacing_from_positions() -> None:
    folder = DICOMDIR_TESTS / "98892001" / "CT5N"
    vol = _load_file(folder)
    files = [pydicom.dcmread(p) for p in sorted(folder.iterdir())]
    z = sorted(float(ds.ImagePositionPatient[2]) for ds in files)
    assert vol.shape[0] == 5
    assert vol.spacing[2] == pytest.approx(float(np.median(np.diff(z))))
    np.testing.assert_allclose(vol.origin[2], z[0])


def test_series_with_outlying_slice_is_flagged_not_fixed() -> None:
    result = scan(DICOMDIR_TESTS / "77654033" / "CT2")
    (stack,) = result.stacks()
    assert stack.n_slices == 4
    assert QACode.MISSING_SLICES in {q.code for q in stack.qa}


def test_localizer_style_series_splits_into_one_stack_per_orientation() -> None:
    result = scan(DICOMDIR_TESTS / "98892003" / "MR700")
    stacks = result.stacks()
    assert len(stacks) == 7
    normals = {tuple(np.round(_load_file(s.paths[0]).direction[:, 2], 3)) for s in stacks}
    assert len(normals) == 7


def test_non_image_objects_are_listed_apart(tmp_path: Path) -> None:
    for name in ("rtstruct.dcm", "rtplan.dcm", "test-SR.dcm", "liver.dcm", "CT_small.dcm"):
        (tmp_path / name).write_bytes(Path(_data(name)).read_bytes())
    result = scan(tmp_path)
    assert len(result.stacks()) == 1
    listed = {Path(n.path).name for n in result.non_image}
    assert listed == {"rtstruct.dcm", "rtplan.dcm", "test-SR.dcm", "liver.dcm"}


def test_monochrome1_is_inverted_for_display(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_data("CT_small.dcm"))
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(tmp_path / "m1.dcm")
    plain = _load_file(_data("CT_small.dcm")).voxels.astype(np.int64)
    inverted = _load_file(tmp_path / "m1.dcm").voxels.astype(np.int64)
    # Inversion reverses the order of every pair of values.
    a, b = np.unravel_index(np.argmax(plain), plain.shape), np.unravel_index(np.argmin(plain), plain.shape)
    assert inverted[a] < inverted[b]
    np.testing.assert_array_equal(plain + inverted, np.full_like(plain, plain[a] + inverted[a]))


def test_colour_images_are_displayable_rgb() -> None:
    for name in ("SC_rgb.dcm", "US1_UNCR.dcm", "OT-PAL-8-face.dcm", "SC_rgb_jpeg_gdcm.dcm"):
        vol = _load_file(_data(name), allow_missing_geometry=True)
        assert vol.voxels.ndim == 4 and vol.voxels.shape[-1] == 3, name
