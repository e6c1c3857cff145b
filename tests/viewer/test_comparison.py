"""Two studies side by side on real widgets: linked scrolling by patient position on one frame of
reference, by an offset the reader sets otherwise; linked or separate window/level."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inference.display.window_level import WindowLevel
from inference.io.dicom_writer import write_dicom_series
from tests.viewer.conftest import open_and_wait, settle
from viewer.models.measurements import Plane

FRAME = "1.2.826.0.1.3680043.8.498.777000111"
STUDY = "1.2.826.0.1.3680043.8.498.777000222"


def _series(folder: Path, ct_head: Any, step: int, *, frame: str, origin_z: float, seed: str) -> Path:
    voxels, (si, sj, sk) = ct_head
    part = np.ascontiguousarray(voxels[20:80:step, ::2, ::2])
    write_dicom_series(
        part,
        folder,
        spacing=(si * 2, sj * 2, sk * step),
        origin=(-120.0, -120.0, origin_z),
        study_uid=STUDY,
        frame_of_reference_uid=frame,
        uid_seed=seed,
        series_description=f"every {step}",
    )
    return folder


def _open_comparison(qtbot: Any, controller: Any, path: Path) -> Any:
    controller.comparison.open_path(path)
    qtbot.waitUntil(lambda: controller.comparison.comparison is not None, timeout=60_000)
    qtbot.waitUntil(lambda: not controller.busy, timeout=60_000)
    settle(qtbot)
    return controller.comparison


def test_same_frame_of_reference_scrolls_by_patient_position(
    qtbot: Any, controller: Any, tmp_path: Path, ct_head: Any
) -> None:
    main = _series(tmp_path / "thin", ct_head, 1, frame=FRAME, origin_z=0.0, seed="thin")
    thick = _series(tmp_path / "thick", ct_head, 3, frame=FRAME, origin_z=0.0, seed="thick")
    cur = open_and_wait(qtbot, controller, main)
    comp = _open_comparison(qtbot, controller, thick)
    assert controller.window.mpr.layout_name == "compare"
    assert comp.comparison.same_frame
    view = controller.window.mpr.compare_view
    other = comp.comparison.other
    for z in (3, 17, 31, 58):
        x, y, _ = controller.model.cursor
        controller.model.set_cursor((x, y, z))
        settle(qtbot)
        k = comp.other_index()
        here = cur.lps_at((x, y, z))[2]
        there = other.lps_at((x, y, k))[2]
        assert abs(here - there) <= other.spacing_xyz[2] / 2 + 1e-6, (z, k, here, there)
        assert np.array_equal(view.image.image, other.plane_image(Plane.AXIAL, k))
        assert f"slice {k + 1}/{other.shape_xyz[2]}" in view.annotations.top_right
        assert view.h_line.isVisible()  # the shared crosshair
    assert view.annotations.bottom_right == ["same frame of reference"]
    controller.window.actions_by_name["compare-close"].trigger()
    assert controller.window.mpr.layout_name == "1x3"


def test_other_frame_of_reference_follows_an_offset_the_reader_sets(
    qtbot: Any, controller: Any, tmp_path: Path, ct_head: Any
) -> None:
    main = _series(tmp_path / "now", ct_head, 1, frame=FRAME, origin_z=0.0, seed="now")
    prior = _series(tmp_path / "prior", ct_head, 2, frame=FRAME + ".9", origin_z=400.0, seed="prior")
    open_and_wait(qtbot, controller, main)
    comp = _open_comparison(qtbot, controller, prior)
    assert not comp.comparison.same_frame
    other = comp.comparison.other
    start = comp.other_index()
    assert start == other.shape_xyz[2] // 2  # not aligned yet: its middle slice
    view = controller.window.mpr.compare_view
    assert not view.h_line.isVisible()
    # The reader scrolls the prior alone to the matching slice: that sets the offset ...
    view.scrolled.emit(4)
    settle(qtbot)
    assert comp.other_index() == start + 4
    assert view.annotations.bottom_right[0].startswith("offset ")
    # ... and from then on both move in step: 6 slices of 1.5 mm = 3 slices of 3 mm.
    x, y, z = controller.model.cursor
    controller.model.set_cursor((x, y, z + 6))
    settle(qtbot)
    assert comp.other_index() == start + 4 + 3


def test_window_level_linked_or_separate(qtbot: Any, controller: Any, tmp_path: Path, ct_head: Any) -> None:
    main = _series(tmp_path / "a", ct_head, 1, frame=FRAME, origin_z=0.0, seed="a")
    other = _series(tmp_path / "b", ct_head, 2, frame=FRAME, origin_z=0.0, seed="b")
    open_and_wait(qtbot, controller, main)
    comp = _open_comparison(qtbot, controller, other)
    view = controller.window.mpr.compare_view
    controller.model.set_window(WindowLevel(40, 80))
    settle(qtbot)
    assert view.image.levels == pytest.approx((0, 80))
    controller.window.actions_by_name["compare-link-window"].trigger()  # unlink
    settle(qtbot)
    own = comp.window_level
    assert tuple(view.image.levels) == pytest.approx(own.levels)
    view.window_dragged.emit(0.0, 0.0, True, False)
    view.window_dragged.emit(0.0, 50.0, False, False)
    settle(qtbot)
    assert comp.window_level.center > own.center
    assert (controller.model.window.center, controller.model.window.width) == (40, 80)  # the main one stays


def test_the_comparison_pane_is_only_in_the_comparison_layout(qtbot: Any, controller: Any) -> None:
    """The 2×2 layout holds the three panes and the score plot, each a quarter of the panel."""
    mpr = controller.window.mpr
    for name in ("1x3", "2x2", "single"):
        mpr.set_layout(name)
        settle(qtbot)
        assert not mpr.compare_view.isVisible(), name
    mpr.set_layout("2x2")
    settle(qtbot)
    heights = [v.height() for v in mpr.views.values()] + [mpr.fourth.height()]
    assert min(heights) > 0.4 * mpr.height(), (heights, mpr.height())
