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


def test_a_gapped_stack_keeps_its_banner_true_positions_and_resamples_on_request(
    qtbot: Any, controller: Any, tmp_path: Path
) -> None:
    from tests.inference.series4d import Geometry

    vox = contrasts(anatomy(8), [1.0])
    written = write_classic(tmp_path / "in", vox, skip=[(0, 4)])
    open_and_wait(qtbot, controller, written.folder)
    w, cur = controller.window, controller.model.current
    assert w.qa_label.isVisible() and "missing-slices" in w.qa_label.toolTip() and "off-grid" in w.qa_label.toolTip()
    assert w.resample_button.isVisible()
    # The probe above the gap: display z of source slice 5 (header slice 6) lies where its header says.
    ijk_to_display = {cur.axis_map.display_to_source((0.0, 0.0, float(z)), cur.volume.size_ijk)[2]: z for z in range(7)}
    z = ijk_to_display[5]
    np.testing.assert_allclose(cur.lps_at((0.0, 0.0, float(z))), Geometry().position(6), atol=1e-4)
    w.resample_button.click()
    qtbot.waitUntil(lambda: controller.model.current.volume.shape[0] == 8, timeout=10_000)
    settle(qtbot)
    assert controller.model.current.volume.slice_positions is None
    assert not w.resample_button.isVisible() and "resampled from 7" in w.qa_label.toolTip()
