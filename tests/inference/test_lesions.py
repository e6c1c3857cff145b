"""Simulated lesions: placed in the region, realistic HU, mask where the voxels changed, blurred edges, reproducible."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from inference.sample_study import lung_mask, make_chest_phantom
from inference.training.lesions import (
    LesionPlacementError,
    LesionSpec,
    default_region,
    insert_lesions,
)
from inference.volume import Volume

PHANTOM_NOISE_SD = float(np.sqrt((13**2 - 1) / 12))  # the phantom's integer noise, uniform on -6..6


@pytest.fixture(scope="module")
def phantom() -> Volume:
    volume, _ = make_chest_phantom(shape=(48, 128, 128), spacing=(2.5, 2.5, 2.5))
    return volume


@pytest.fixture(scope="module")
def head(ct_head: tuple[np.ndarray, tuple[float, float, float]]) -> Volume:
    voxels, spacing = ct_head
    return Volume(voxels, spacing, (0.0, 0.0, 0.0), np.eye(3))


@pytest.fixture(scope="module")
def solid_in_lungs(phantom: Volume) -> tuple[Volume, np.ndarray, list[LesionSpec], np.ndarray]:
    lungs = lung_mask(phantom)
    out, mask, specs = insert_lesions(phantom, np.random.default_rng(7), 3, "solid", lungs)
    return out, mask, specs, lungs


def test_solid_lesions_lie_in_the_lungs_with_solid_attenuation(solid_in_lungs) -> None:
    out, mask, specs, lungs = solid_in_lungs
    assert mask.dtype == np.uint8 and mask.shape == out.shape
    assert len(specs) == 3 and sorted(np.unique(mask[mask > 0]).tolist()) == [1, 2, 3]
    for spec in specs:
        i, j, k = (round(c) for c in spec.centre_ijk)
        assert lungs[k, j, i], f"centre {spec.centre_ijk} outside the lungs"
        assert spec.kind == "solid"
        assert 3.0 * 0.8 <= float(np.cbrt(np.prod(spec.radii_mm))) <= 12.0 * 1.2
        # 0–80 HU plus texture and noise, measured away from the partial-volume rim.
        assert -15.0 <= spec.mean_hu <= 95.0, spec
        assert spec.voxels == int((mask == spec.label).sum()) > 0
    assert (lungs[mask > 0]).mean() > 0.9  # lobulated edges may touch the pleura, but hardly cross it


def test_mask_matches_where_the_voxels_changed(phantom: Volume, solid_in_lungs) -> None:
    out, mask, _specs, _ = solid_in_lungs
    diff = np.abs(out.voxels.astype(np.int32) - phantom.voxels.astype(np.int32))
    lesion = mask > 0
    # Solid tissue (≥ -100 HU at half occupancy and above) replacing lung (-850 HU): every mask voxel changed a lot.
    assert (diff[lesion] > 200).mean() > 0.99
    # Nothing changed beyond the blurred rim; the rest of the scan is untouched.
    near = ndimage.binary_dilation(lesion, iterations=3)
    assert not diff[~near].any()
    assert out.voxels.dtype == phantom.voxels.dtype
    assert out.metadata.extra["simulated_lesions"][0]["kind"] == "solid"


def test_edges_are_blurred(phantom: Volume, solid_in_lungs) -> None:
    out, mask, _specs, _ = solid_in_lungs
    lesion = mask > 0
    rim = ndimage.binary_dilation(lesion, iterations=1) & ~ndimage.binary_erosion(lesion, iterations=1)
    values = out.voxels[rim].astype(np.float64)
    # Partial volume: a good share of the rim lies between lung (-850) and solid tissue (≥ 0 HU).
    intermediate = (values > -700) & (values < -100)
    assert intermediate.mean() > 0.2, f"only {intermediate.mean():.2f} of the rim is intermediate"
    # The interior is solid tissue, not a blend.
    core = ndimage.binary_erosion(lesion, iterations=2)
    if core.any():
        assert np.median(out.voxels[core]) > -100


def test_noise_matches_the_background(solid_in_lungs) -> None:
    _out, _mask, specs, _ = solid_in_lungs
    for spec in specs:
        assert 0.6 * PHANTOM_NOISE_SD <= spec.background_sd <= 1.6 * PHANTOM_NOISE_SD, spec.background_sd


def test_insertion_is_deterministic(phantom: Volume) -> None:
    lungs = lung_mask(phantom)
    a, ma, sa = insert_lesions(phantom, np.random.default_rng(3), 2, "part-solid", lungs)
    b, mb, sb = insert_lesions(phantom, np.random.default_rng(3), 2, "part-solid", lungs)
    c, _, _ = insert_lesions(phantom, np.random.default_rng(4), 2, "part-solid", lungs)
    assert np.array_equal(a.voxels, b.voxels) and np.array_equal(ma, mb) and sa == sb
    assert not np.array_equal(a.voxels, c.voxels)
    assert np.array_equal(phantom.voxels, make_chest_phantom(shape=(48, 128, 128), spacing=(2.5, 2.5, 2.5))[0].voxels)


def test_part_solid_has_ground_glass_rim_and_solid_core(phantom: Volume) -> None:
    out, mask, specs = insert_lesions(phantom, np.random.default_rng(11), 2, "part-solid", lung_mask(phantom))
    for spec in specs:
        values = out.voxels[mask == spec.label].astype(np.float64)
        assert ((values > -650) & (values < -250)).mean() > 0.25  # ground glass
        assert (values > -150).any()  # the solid core
        assert (values < 150).all()


def test_mass_is_large(phantom: Volume) -> None:
    _out, _mask, specs = insert_lesions(phantom, np.random.default_rng(5), 1, "mass", lung_mask(phantom))
    (spec,) = specs
    assert float(np.cbrt(np.prod(spec.radii_mm))) >= 12.0 * 0.5  # may shrink to fit, never below half
    assert spec.voxels * np.prod(phantom.spacing) > 4 / 3 * np.pi * 6.0**3 * 0.5
    assert 10.0 <= spec.mean_hu <= 70.0


def test_head_ct_lesions_go_into_soft_tissue(head: Volume) -> None:
    name, region = default_region(head)
    assert name == "soft-tissue"  # a head has no lungs
    out, mask, specs = insert_lesions(head, np.random.default_rng(1), 2, "solid")
    original = head.voxels.astype(np.float64)
    smooth = ndimage.gaussian_filter(original, 1.0)
    for spec in specs:
        i, j, k = (round(c) for c in spec.centre_ijk)
        assert region[k, j, i]
        assert 0 <= smooth[k, j, i] <= 100  # brain / soft tissue, not bone nor air
        lesion = mask == spec.label
        assert (original[lesion] < 300).mean() > 0.95  # not in the skull
        assert -15.0 <= spec.mean_hu <= 95.0
        # The brain's own noise level (~5 HU on this scan) is measured and reproduced.
        assert 1.0 <= spec.background_sd <= 20.0
    far = ~ndimage.binary_dilation(mask > 0, iterations=3)
    assert np.array_equal(out.voxels[far], head.voxels[far])


def test_no_room_is_a_clear_error(phantom: Volume) -> None:
    tiny = np.zeros(phantom.shape, dtype=bool)
    tiny[20, 60, 60] = True
    with pytest.raises(LesionPlacementError, match="no room"):
        insert_lesions(phantom, np.random.default_rng(0), 1, "mass", tiny)
    with pytest.raises(ValueError, match="unknown lesion kind"):
        insert_lesions(phantom, np.random.default_rng(0), 1, "cyst")
