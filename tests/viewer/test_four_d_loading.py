"""A 4-D acquisition in the viewer: one volume at a time, a slider over the fourth axis, its
meaning in the corner annotations; never taken for a colour volume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tests.inference.series4d import anatomy, contrasts, write_classic
from viewer.models.measurements import Plane

from .conftest import open_and_wait, settle


def test_volume_slider_moves_along_time_and_keeps_the_cursor(qtbot: Any, controller: Any, tmp_path: Path) -> None:
    vox = contrasts(anatomy(4), [1.0, 1.5, 0.5])
    written = write_classic(tmp_path / "in", vox)
    open_and_wait(qtbot, controller, written.folder)
    w, model = controller.window, controller.model
    shown = model.current.volume
    assert shown.voxels.ndim == 3 and not shown.is_colour and not shown.is_4d
    np.testing.assert_array_equal(shown.voxels, vox[0])
    assert w.frame_slider.isVisible() and w.frame_slider.maximum() == 2
    assert w.frame_label.text() == "time t = 0.00 s (1/3)"
    controller.model.set_cursor((5, 6, 2))
    w.frame_slider.setValue(2)
    settle(qtbot)
    np.testing.assert_array_equal(model.current.volume.voxels, vox[2])
    assert model.cursor == (5, 6, 2)
    assert w.frame_label.text() == "time t = 4.00 s (3/3)"
    assert "time t = 4.00 s (3/3)" in w.mpr.views[Plane.AXIAL].annotations.top_right
    w.cine_button.setChecked(True)
    qtbot.waitUntil(lambda: model.frame == 0, timeout=5000)  # the cine wraps round
    w.cine_button.setChecked(False)


def test_a_3d_series_shows_no_volume_slider(qtbot: Any, controller: Any, tmp_path: Path) -> None:
    written = write_classic(tmp_path / "in", contrasts(anatomy(4), [1.0]))
    open_and_wait(qtbot, controller, written.folder)
    assert controller.model.series is None
    assert not controller.window.frame_slider.isVisible()
