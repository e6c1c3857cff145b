"""Thick-slab MIP / MinIP / average: the pixels shown are numpy's projection over the slab."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.viewer.conftest import open_and_wait, settle
from viewer.models.measurements import Plane
from viewer.models.slab import Slab, SlabMode, slab_range


def test_slab_range_takes_the_slices_whose_centres_lie_in_the_slab() -> None:
    assert slab_range(50, 300, 15.0, 1.0) == (43, 58)  # 15 slices at 1 mm
    assert slab_range(50, 300, 10.0, 2.5) == (48, 53)  # centres at -5 .. +5 mm
    assert slab_range(50, 300, 0.5, 1.0) == (50, 51)  # thinner than a slice: the slice itself
    assert slab_range(2, 10, 20.0, 1.0) == (0, 10)  # cut at the volume's ends
    with pytest.raises(ValueError, match="positive"):
        Slab(SlabMode.MIP, 0.0)


def _expected(display: np.ndarray, plane: Plane, lo: int, hi: int, mode: SlabMode) -> np.ndarray:
    take = {Plane.AXIAL: display[lo:hi], Plane.CORONAL: np.moveaxis(display[:, lo:hi], 1, 0)}.get(
        plane, np.moveaxis(display[:, :, lo:hi], 2, 0)
    )
    out = {SlabMode.MIP: take.max(0), SlabMode.MINIP: take.min(0), SlabMode.AVERAGE: take.mean(0)}[mode]
    return out if plane == Plane.AXIAL else out[::-1]


@pytest.mark.parametrize("mode", [SlabMode.MIP, SlabMode.MINIP, SlabMode.AVERAGE])
def test_every_plane_shows_the_projection_of_its_slab(
    qtbot: Any, controller: Any, sample_study: Path, mode: SlabMode
) -> None:
    cur = open_and_wait(qtbot, controller, sample_study)
    controller.set_slab(mode, 12.0)
    assert controller.window.actions_by_name[f"slab-{mode.value}"].isChecked()
    for planes_built in (False, True):
        if planes_built:
            cur.cache.build()  # the per-plane contiguous copies give the same pixels
            controller.set_slab(SlabMode.OFF)
            controller.set_slab(mode, 12.0)
        settle(qtbot)
        for plane, view in controller.window.mpr.views.items():
            axis = plane.normal_axis
            index = controller.model.cursor[axis]
            lo, hi = slab_range(index, cur.shape_xyz[axis], 12.0, cur.spacing_xyz[axis])
            assert hi - lo >= 3
            shown = view.image.image
            expected = _expected(cur.display, plane, lo, hi, mode)
            np.testing.assert_allclose(shown, expected, rtol=1e-6)
            single = cur.plane_image(plane, index)
            assert not np.array_equal(shown, single)
            assert f"{mode.label} 12 mm" in view.annotations.top_right
    controller.set_slab(SlabMode.OFF)
    settle(qtbot)
    view = controller.window.mpr.views[Plane.AXIAL]
    assert np.array_equal(view.image.image, cur.plane_image(Plane.AXIAL, controller.model.cursor[2]))
    assert not any("mm" in t and "MIP" in t for t in view.annotations.top_right)


def test_a_mip_shows_a_nodule_from_a_nearby_slice(qtbot: Any, controller: Any, sample_study: Path) -> None:
    """The sample's nodules are bright blobs: a slab MIP a few mm away from one still shows it."""
    from inference.sample_study import sample_nodules

    cur = open_and_wait(qtbot, controller, sample_study)
    nodule = sample_nodules()[0]
    ijk = cur.volume.lps_to_index(nodule.center_lps)
    x, y, z = (int(round(v)) for v in cur.axis_map.source_to_display(ijk, cur.volume.size_ijk))
    offset = int(np.ceil((nodule.radius_mm + 3.0) / cur.spacing_xyz[2]))
    controller.model.set_cursor((x, y, z + offset))
    settle(qtbot)
    view = controller.window.mpr.views[Plane.AXIAL]
    plain = view.image.image[y, x]
    controller.set_slab(SlabMode.MIP, 2 * (offset + 2) * cur.spacing_xyz[2])
    settle(qtbot)
    assert view.image.image[y, x] > plain + 200, (plain, view.image.image[y, x])
