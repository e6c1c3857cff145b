"""Pulmonary vessel trees in the training phantoms: inside the lungs only, away from the nodules,
branching from the hilum and thinning outwards, reproducible, and switched on by the dataset build."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from inference.sample_study import lung_mask, make_chest_phantom
from inference.training.build_dataset import build_dataset
from inference.training.dataset_format import read_dataset
from inference.training.dataset_spec import DatasetSpec
from inference.training.lung_vessels import VESSEL_HU, add_lung_vessels, vessel_balls
from inference.training.phantom_sources import phantom_nodule_mask

SHAPE, SPACING = (30, 112, 112), (2.5, 2.5, 5.0)


@pytest.fixture(scope="module")
def phantom():
    volume, _ = make_chest_phantom(SHAPE, SPACING)
    lungs = lung_mask(volume)
    keep_out = ndimage.binary_dilation(phantom_nodule_mask(volume) > 0, iterations=2)
    return volume, lungs, keep_out


def test_vessels_lie_in_the_lungs_away_from_the_nodules(phantom) -> None:
    volume, lungs, keep_out = phantom
    with_vessels = add_lung_vessels(volume, lungs, np.random.default_rng(7), keep_out=keep_out)
    changed = with_vessels.voxels != volume.voxels
    assert changed.sum() > 500
    assert not (changed & ~lungs).any() and not (changed & keep_out).any()
    values = with_vessels.voxels[changed]
    assert values.min() >= VESSEL_HU[0] - 1 and values.max() <= VESSEL_HU[1] + 1
    assert np.array_equal(with_vessels.voxels[~changed], volume.voxels[~changed])
    # Each lung gets vessels, and an axial slice through the lungs shows them cut across: several
    # separate bright spots, most of them small (a few mm²), like the cross-sections of real vessels.
    for side in (slice(0, SHAPE[2] // 2), slice(SHAPE[2] // 2, None)):
        assert changed[:, :, side].sum() > 100
    spots, n = ndimage.label(changed[SHAPE[0] // 2])
    assert n >= 5
    areas_mm2 = np.bincount(spots.ravel())[1:] * SPACING[0] * SPACING[1]
    assert np.median(areas_mm2) < 40.0
    # The same seed draws the same trees; another seed other ones.
    again = add_lung_vessels(volume, lungs, np.random.default_rng(7), keep_out=keep_out)
    other = add_lung_vessels(volume, lungs, np.random.default_rng(8), keep_out=keep_out)
    assert np.array_equal(again.voxels, with_vessels.voxels)
    assert not np.array_equal(other.voxels, with_vessels.voxels)


def test_trees_thin_out_from_the_hilum(phantom) -> None:
    _, lungs, _ = phantom
    balls = vessel_balls(lungs, SPACING, np.random.default_rng(3))
    centres = np.array([c for c, _ in balls])
    radii = np.array([r for _, r in balls])
    middle_mm = SHAPE[2] / 2 * SPACING[0]
    medial = np.abs(centres[:, 0] - middle_mm)
    # The thickest branches sit nearer the middle than the thinnest ones.
    thick, thin = radii >= np.quantile(radii, 0.9), radii <= np.quantile(radii, 0.1)
    assert medial[thick].mean() < medial[thin].mean()
    assert radii.max() > 3.0 and radii.min() < 1.0


def test_dataset_build_draws_vessels_only_when_asked(tmp_path: Path) -> None:
    plain = read_dataset(build_dataset(DatasetSpec([], phantoms=2, size=(64, 64), seed=5), tmp_path / "plain"))
    vessels = read_dataset(
        build_dataset(DatasetSpec([], phantoms=2, phantom_vessels=True, size=(64, 64), seed=5), tmp_path / "vessels")
    )
    assert all("vessel_seed" not in s["phantom"] for s in plain.manifest["sources"])
    assert all("vessel_seed" in s["phantom"] for s in vessels.manifest["sources"])
    # The first phantom is drawn alike (the vessel seed is drawn after its own parameters).
    first = [
        {k: v for k, v in ds.manifest["sources"][0]["phantom"].items() if k != "vessel_seed"} for ds in (plain, vessels)
    ]
    assert first[0] == first[1]
    assert not np.array_equal(plain.images, vessels.images)
