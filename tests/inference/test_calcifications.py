"""Physiological calcifications of pseudo-CT heads: their sites on Colin27, how they are drawn and drawn in."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from inference.errors import RadLensError
from inference.training.calcifications import (
    SITES,
    Calcification,
    add_calcifications,
    check_mni,
    draw_calcifications,
    mni_to_index,
)
from inference.training.pseudo_ct import PseudoCtParams, make_pseudo_ct, tissue_hu

from .colin27 import read_colin27


@pytest.fixture(scope="module")
def colin():
    t1, brain, vol, spacing = read_colin27()
    p = PseudoCtParams.draw(np.random.default_rng(2))
    hu = tissue_hu(t1, brain, spacing, p)
    csf = brain & (hu < (p.csf + p.white) / 2)
    return t1, brain, vol, spacing, p, hu, csf


def test_mni_coordinates_land_on_colin27s_grid(colin) -> None:
    _, brain, vol, *_ = colin
    to_index = mni_to_index(vol)
    for xyz in [(0.0, 0.0, 0.0), (26.0, -40.0, 15.0), (-30.5, 12.0, -8.0)]:
        k, j, i = to_index(xyz)
        lps = vol.index_to_lps([i, j, k])  # the volume's own geometry: back to LPS, then RAS
        assert np.allclose([-lps[0], -lps[1], lps[2]], xyz)
    k, j, i = (round(v) for v in to_index((0.0, 0.0, 0.0)))
    assert brain[k, j, i]  # MNI's origin (the anterior commissure) is inside the brain
    # Left and right sit either side of the mid-sagittal plane.
    assert to_index((20.0, 0.0, 0.0))[2] > to_index((0.0, 0.0, 0.0))[2] > to_index((-20.0, 0.0, 0.0))[2]


def test_a_head_not_in_mni_space_is_refused(colin) -> None:
    _, brain, vol, *_ = colin
    assert check_mni(vol, brain)((0.0, 0.0, 0.0)) == mni_to_index(vol)((0.0, 0.0, 0.0))
    shifted = dataclasses.replace(vol, origin=(vol.origin[0], vol.origin[1], vol.origin[2] + 60.0))
    with pytest.raises(RadLensError, match="not in MNI space"):
        check_mni(shifted, brain)
    far = dataclasses.replace(vol, origin=(1000.0, 0.0, 0.0))  # MNI's origin off the grid altogether
    with pytest.raises(RadLensError, match="not in MNI space"):
        check_mni(far, brain)


def test_sites_are_drawn_as_often_as_set_and_the_choroid_plexus_lies_in_csf(colin) -> None:
    *_, vol, spacing, _, _, csf = colin
    to_index = mni_to_index(vol)
    draws = [draw_calcifications(to_index, csf, spacing, np.random.default_rng(s)) for s in range(300)]
    again = draw_calcifications(to_index, csf, spacing, np.random.default_rng(7))
    assert again == draws[7]  # reproducible from its seed
    for site in SITES:
        seen = np.mean([any(c.site == site.name for c in d) for d in draws])
        assert abs(seen - site.probability) < 0.12, (site.name, seen)
    clumps = [c for d in draws for c in d]
    for c in clumps:
        lo, hi = next(s.hu for s in SITES if s.name == c.site)
        assert lo <= c.hu <= hi
    choroid = [c for c in clumps if c.site == "choroid plexus"]
    assert all(csf[tuple(int(v) for v in c.centre_kji)] for c in choroid)  # snapped into the ventricle
    middle = to_index((0.0, 0.0, 0.0))[2]
    sides = {np.sign(c.centre_kji[2] - middle) for c in choroid}
    assert sides == {-1.0, 1.0}  # a pair: both atria
    pineal = [c for c in clumps if c.site == "pineal"]
    assert all(abs(c.centre_kji[2] - middle) < 3 for c in pineal)  # on the midline


def test_drawing_in_a_clump_only_makes_its_ellipsoid_denser() -> None:
    hu = np.full((30, 30, 30), 30.0, dtype=np.float32)
    hu[:, :, :5] = 900.0  # bone denser than the clump stays bone
    clump = Calcification("pineal", (15.0, 15.0, 15.0), (3.0, 5.0, 2.0), 400.0)
    out = add_calcifications(hu, (1.0, 1.0, 1.0), (clump,))
    assert out is not hu and np.array_equal(hu[:, :, :5], np.full((30, 30, 5), 900.0))
    assert (out >= hu).all()
    assert out[15, 15, 15] == pytest.approx(400.0)
    changed = np.argwhere(out > hu + 1e-3)
    reach = np.abs(changed - 15).max(axis=0)
    assert (reach <= np.array([3, 5, 2]) + 1).all(), reach  # its radii and the soft edge
    assert 0.6 * (4 / 3 * np.pi * 3 * 5 * 2) < (out - hu).sum() / (400 - 30) < 1.4 * (4 / 3 * np.pi * 3 * 5 * 2)


def test_calcified_heads_differ_only_by_the_clumps(colin) -> None:
    t1, brain, vol, spacing, *_ = colin
    plain, p0 = make_pseudo_ct(t1, brain, spacing, np.random.default_rng(11), deform_mm=3.0, atrophy_mm=2.0)
    calc, p1 = make_pseudo_ct(
        t1, brain, spacing, np.random.default_rng(11), deform_mm=3.0, atrophy_mm=2.0, mni_to_kji=mni_to_index(vol)
    )
    assert p1.calcifications and dataclasses.replace(p1, calcifications=()) == p0  # every other draw the same
    diff = calc.voxels.astype(np.int32) - plain.voxels
    assert diff.max() > 60  # a dense clump shows through blur and resampling
    assert (diff < -5).mean() < 1e-4  # nothing got less dense
    assert 0 < (diff > 5).mean() < 0.002  # a few small clumps, nothing more


def test_a_thin_long_plaque_fades_out_without_a_step_and_clumps_off_the_grid_are_ignored() -> None:
    hu = np.full((12, 50, 12), 30.0, dtype=np.float32)
    plaque = Calcification("falx", (6.0, 25.0, 6.0), (1.0, 10.0, 0.5), 630.0)  # 1 mm thick, 20 mm long
    out = add_calcifications(hu, (1.0, 1.0, 1.0), (plaque,))
    assert out[6, 25, 6] == pytest.approx(630.0)  # the centre at full density
    profile = (out[6, :, 6] - 30.0) / 600.0  # along the plaque's length
    assert profile[0] == 0.0 and profile[-1] == 0.0  # it ends inside the grid ...
    assert np.abs(np.diff(profile)).max() < 0.2  # ... fading out, with no step where its box ends
    off = Calcification("pineal", (-30.0, 60.0, 5.0), (2.0, 2.0, 2.0), 300.0)  # wholly outside the grid
    assert np.array_equal(add_calcifications(hu, (1.0, 1.0, 1.0), (off,)), hu)


def test_clumps_follow_a_bent_brain() -> None:
    from scipy import ndimage

    from inference.training.pseudo_ct import deform, follow

    shift = np.zeros((3, 20, 20, 20), dtype=np.float32)
    shift[0] = 2.0  # every voxel samples the unbent head 2 voxels further along k
    assert follow(shift, (10.0, 8.0, 9.0)) == pytest.approx((8.0, 8.0, 9.0))
    g = np.random.default_rng(0)
    smooth = np.stack([ndimage.gaussian_filter(g.standard_normal((20, 20, 20)), 5) for _ in range(3)])
    smooth = (smooth * 3.0 / smooth.std()).astype(np.float32)  # about 3 voxels, varying over the volume
    dot = np.zeros((20, 20, 20), dtype=np.float32)
    dot[10, 10, 10] = 1.0
    bent = deform(ndimage.gaussian_filter(dot, 1.5), smooth, 0.0)
    peak = np.unravel_index(int(np.argmax(bent)), bent.shape)
    assert np.linalg.norm(np.subtract(follow(smooth, (10.0, 10.0, 10.0)), peak)) <= 1.0  # where the dot went


def test_a_head_not_aligned_with_mni_axes_is_refused_before_any_head_is_built(colin, tmp_path) -> None:
    import SimpleITK as sitk

    from inference.training.build_dataset import build_dataset
    from inference.training.dataset_format import DatasetError
    from inference.training.dataset_spec import DatasetSpec, PseudoCtHeads

    from .colin27 import BRAIN, T1

    _, brain, vol, *_ = colin
    tilted = dataclasses.replace(vol, direction=np.array([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))
    with pytest.raises(RadLensError, match="voxel axes"):
        check_mni(tilted, brain)
    moved = sitk.ReadImage(str(T1))
    moved.SetOrigin((moved.GetOrigin()[0], moved.GetOrigin()[1], moved.GetOrigin()[2] + 60.0))
    sitk.WriteImage(moved, str(tmp_path / "moved.nii.gz"))
    with pytest.raises(DatasetError, match=r"moved\.nii\.gz: the head is not in MNI space"):
        build_dataset(
            DatasetSpec([], pseudo_ct=PseudoCtHeads(str(tmp_path / "moved.nii.gz"), str(BRAIN), 3, calcify=True)),
            tmp_path / "out",
        )
    assert not (tmp_path / "out").exists()
