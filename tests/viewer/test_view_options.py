"""Cine speed, smooth display and linked zoom on real widgets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.viewer.conftest import grab_rgb, open_and_wait, settle
from viewer.models.measurements import Plane


def test_cine_speed_is_chosen_and_kept(qtbot: Any, controller: Any, sample_study: Path) -> None:
    from viewer.controllers.settings import Settings

    open_and_wait(qtbot, controller, sample_study)
    a = controller.window.actions_by_name
    a["cine-20"].trigger()
    assert controller.cine_timer.interval() == 50
    assert controller.view_options.cine_fps == 20
    assert Settings(controller.settings.path).value("cine_fps") in (20, "20")
    z0 = controller.model.cursor[2]
    a["cine"].trigger()
    qtbot.waitUntil(lambda: controller.model.cursor[2] != z0, timeout=2000)
    a["cine"].trigger()
    assert not controller.cine_timer.isActive()


def test_smooth_display_interpolates_a_zoomed_image(qtbot: Any, controller: Any, sample_study: Path) -> None:
    open_and_wait(qtbot, controller, sample_study)
    view = controller.window.mpr.views[Plane.AXIAL]
    view.vb.scaleBy((0.15, 0.15))  # about 6× magnified: every voxel is a block of screen pixels
    settle(qtbot)
    blocky = grab_rgb(view.viewport())
    controller.window.actions_by_name["smooth"].trigger()
    settle(qtbot)
    smooth = grab_rgb(view.viewport())
    assert not np.array_equal(blocky, smooth)
    # Interpolation makes grey levels the blocks never had.
    assert len(np.unique(smooth[..., 0])) > len(np.unique(blocky[..., 0]))
    controller.window.actions_by_name["smooth"].trigger()
    settle(qtbot)
    assert np.array_equal(grab_rgb(view.viewport()), blocky)


def test_linked_zoom_gives_every_pane_the_same_scale(qtbot: Any, controller: Any, sample_study: Path) -> None:
    open_and_wait(qtbot, controller, sample_study)
    views = controller.window.mpr.views
    controller.window.actions_by_name["link-zoom"].trigger()
    views[Plane.AXIAL].vb.scaleBy((0.5, 0.5))
    settle(qtbot)
    scale = views[Plane.AXIAL].mm_per_screen_pixel()
    for plane in (Plane.CORONAL, Plane.SAGITTAL):
        assert views[plane].mm_per_screen_pixel() == pytest.approx(scale, rel=0.02)
    controller.window.actions_by_name["link-zoom"].trigger()  # off: zooms stay apart
    views[Plane.AXIAL].vb.scaleBy((0.5, 0.5))
    settle(qtbot)
    assert views[Plane.CORONAL].mm_per_screen_pixel() == pytest.approx(scale, rel=0.02)
    assert views[Plane.AXIAL].mm_per_screen_pixel() == pytest.approx(scale / 2, rel=0.02)
