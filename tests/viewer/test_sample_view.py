"""The viewer on the sample chest phantom: painting, scrolling, window/level, crosshair, layouts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from inference.sample_study import LUNG_CENTERS
from viewer.models.measurements import Plane

from .conftest import grab_rgb, is_crosshair, open_and_wait, screen_point, settle, widget_point

N_SLICES = 80  # the sample phantom's axial slices


def _wheel(view: Any, delta: int, modifiers: Any = QtCore.Qt.KeyboardModifier.NoModifier) -> None:
    vp = view.viewport()
    pos = QtCore.QPointF(vp.width() / 2, vp.height() / 2)
    ev = QtGui.QWheelEvent(
        pos,
        QtCore.QPointF(vp.mapToGlobal(pos.toPoint())),
        QtCore.QPoint(0, 0),
        QtCore.QPoint(0, delta),
        QtCore.Qt.MouseButton.NoButton,
        modifiers,
        QtCore.Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QtWidgets.QApplication.sendEvent(vp, ev)


def _patch_mean(view: Any, col: float, row: float, half: int = 3) -> float:
    x, y = widget_point(view, col, row)
    rgb = grab_rgb(view)
    return float(rgb[y - half : y + half + 1, x - half : x + half + 1].mean())


def _lung_image_point(controller: Any) -> tuple[float, float]:
    """Axial image (column, row) inside the right lung, away from the crosshair."""
    cur = controller.model.current
    cx, cy, _cz = LUNG_CENTERS[0]
    z_lps = cur.lps_at(controller.model.cursor)[2]
    ijk = cur.volume.lps_to_index((cx, cy - 30.0, z_lps))
    x, y, _z = cur.axis_map.source_to_display(ijk, cur.volume.size_ijk)
    return float(x), float(y)


def test_sample_opens_in_three_painted_panes(qtbot: Any, controller: Any, sample_study: Path) -> None:
    cur = open_and_wait(qtbot, controller, sample_study)
    assert cur.shape_xyz == (192, 192, N_SLICES)
    views = controller.window.mpr.views
    for plane, view in views.items():
        assert view.isVisible(), plane
        rgb = grab_rgb(view)
        h, w, _ = rgb.shape
        assert w > 200 and h > 200, (plane, w, h)
        lit = (rgb.max(axis=-1) > 30).mean()
        assert lit > 0.08, f"{plane}: only {lit:.1%} of the pane is painted"
        yellow = is_crosshair(rgb).sum()
        assert yellow > 100, f"{plane}: crosshair colour on {yellow} pixels"
        assert view.annotations.top_right[0] == plane.value.capitalize()
    # The crosshair lies where the cursor is: on the axial pane's centre column.
    axial = views[Plane.AXIAL]
    x, y = cur.display_to_plane(Plane.AXIAL, tuple(float(v) for v in controller.model.cursor))
    px, py = widget_point(axial, x, y - 20)  # on the vertical line, above the horizontal one
    rgb = grab_rgb(axial)
    assert is_crosshair(rgb[py, px - 1 : px + 2]).any(), rgb[py, px - 3 : px + 4]
    # The series browser lists the one stack with a thumbnail.
    browser = controller.window.browser
    qtbot.waitUntil(lambda: len(browser.stack_items()) == 1 and not browser.stack_items()[0].icon(0).isNull())
    item = browser.stack_items()[0]
    assert item.text(2) == str(N_SLICES)
    assert "Chest phantom" in item.text(0)
    assert controller.window.windowTitle() == "RadLens — Chest phantom"


def test_wait_idle_returns_only_when_every_pane_of_a_new_volume_is_drawn(
    qtbot: Any, controller: Any, sample_study: Path
) -> None:
    # Headless screenshots wait on wait_idle(): a new volume's panes, drawn one per event-loop
    # turn, must all be up by then (CI once grabbed a window whose other panes were still empty).
    volume = open_and_wait(qtbot, controller, sample_study).volume
    controller.model.close()
    controller.model.open(volume)  # as the loader does; nothing else is running now
    assert controller.drawing and controller.busy, "the panes still to be drawn do not count as work in progress"
    assert controller.wait_idle(timeout_s=60)
    cursor = controller.model.cursor
    drawn = {plane: controller._shown_index[plane] for plane in Plane}
    assert drawn == {plane: cursor[plane.normal_axis] for plane in Plane}


def test_wheel_and_keys_step_axial_slices(qtbot: Any, controller: Any, sample_study: Path) -> None:
    open_and_wait(qtbot, controller, sample_study)
    model = controller.model
    view = controller.window.mpr.views[Plane.AXIAL]
    z0 = model.cursor[2]
    assert view.annotations.top_right[1] == f"slice {z0 + 1}/{N_SLICES}"
    before = grab_rgb(view)

    _wheel(view, 120)
    assert model.cursor[2] == z0 + 1
    _wheel(view, -240)
    assert model.cursor[2] == z0 - 1
    assert view.annotations.top_right[1] == f"slice {z0}/{N_SLICES}"

    view.setFocus()
    qtbot.keyClick(view, QtCore.Qt.Key.Key_PageUp)
    assert model.cursor[2] == z0 + 9
    qtbot.keyClick(view, QtCore.Qt.Key.Key_Up)
    assert model.cursor[2] == z0 + 10
    qtbot.keyClick(view, QtCore.Qt.Key.Key_Down)
    assert model.cursor[2] == z0 + 9
    assert view.annotations.top_right[1] == f"slice {z0 + 10}/{N_SLICES}"
    settle(qtbot)
    assert not np.array_equal(grab_rgb(view), before), "the axial pane did not change with the slice"
    # The other panes keep their slices; x and y are untouched.
    assert model.cursor[:2] == (96, 96)
    assert controller.window.mpr.views[Plane.CORONAL].annotations.top_right[1] == "slice 97/192"

    # Scrolling stops at the last slice.
    for _ in range(10):
        qtbot.keyClick(view, QtCore.Qt.Key.Key_PageUp)
    assert model.cursor[2] == N_SLICES - 1
    assert view.annotations.top_right[1] == f"slice {N_SLICES}/{N_SLICES}"


def test_window_presets_drag_and_invert(qtbot: Any, controller: Any, sample_study: Path) -> None:
    open_and_wait(qtbot, controller, sample_study)
    model = controller.model
    actions = controller.window.actions_by_name
    view = controller.window.mpr.views[Plane.AXIAL]
    lung = _lung_image_point(controller)

    actions["preset-mediastinum"].trigger()
    settle(qtbot)
    assert (model.window.center, model.window.width) == (40, 400)
    dark_lung = _patch_mean(view, *lung)
    assert view.annotations.bottom_left == ["W 400 L 40"]

    actions["preset-lung"].trigger()
    settle(qtbot)
    assert (model.window.center, model.window.width) == (-600, 1500)
    assert view.annotations.bottom_left == ["W 1500 L -600"]
    assert controller.window.wl_label.text() == "W 1500 L -600"
    lung_bright = _patch_mean(view, *lung)
    # -850 HU: black in a 40/400 window, (−850 + 1350) / 1500 ≈ 33 % grey in the lung window.
    assert dark_lung < 10, dark_lung
    assert 60 < lung_bright < 110, lung_bright

    # Right-drag to the right widens the window.
    vp = view.viewport()
    start = QtCore.QPoint(vp.width() // 2, vp.height() // 2)
    width0 = model.window.width
    qtbot.mousePress(vp, QtCore.Qt.MouseButton.RightButton, pos=start)
    qtbot.mouseMove(vp, start + QtCore.QPoint(50, 0))
    qtbot.mouseMove(vp, start + QtCore.QPoint(100, 0))
    qtbot.mouseRelease(vp, QtCore.Qt.MouseButton.RightButton, pos=start + QtCore.QPoint(100, 0))
    settle(qtbot)
    assert model.window.width > width0 + 100, (width0, model.window)
    assert model.window.center == -600
    assert view.annotations.bottom_left == [f"W {model.window.width:.0f} L -600"]
    assert model.cursor == (96, 96, 40), "a right-drag must not move the crosshair"

    # Invert: the air in the image corner turns from black to white (soft-tissue window).
    actions["preset-mediastinum"].trigger()
    settle(qtbot)
    cx, cy = widget_point(view, 8, 8)
    assert grab_rgb(view)[cy, cx].max() < 10
    actions["invert"].trigger()
    settle(qtbot)
    assert model.invert
    assert grab_rgb(view)[cy, cx].min() > 245
    assert controller.window.wl_label.text() == "W 400 L 40 inv"
    # A preset keeps the inversion: the lung goes from light grey to darker grey.
    actions["preset-lung"].trigger()
    settle(qtbot)
    assert model.invert
    assert abs(_patch_mean(view, *lung) - (255 - lung_bright)) < 3
    actions["invert"].trigger()
    settle(qtbot)
    assert not model.invert
    assert abs(_patch_mean(view, *lung) - lung_bright) < 1


def test_click_moves_crosshair_and_other_planes(qtbot: Any, controller: Any, sample_study: Path) -> None:
    open_and_wait(qtbot, controller, sample_study)
    model = controller.model
    views = controller.window.mpr.views
    axial = views[Plane.AXIAL]
    z0 = model.cursor[2]
    qtbot.mouseClick(axial.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=screen_point(axial, 60, 130))
    settle(qtbot)
    x, y, z = model.cursor
    assert (x, y, z) == (60, 130, z0)
    assert views[Plane.CORONAL].annotations.top_right[1] == f"slice {y + 1}/192"
    assert views[Plane.SAGITTAL].annotations.top_right[1] == f"slice {x + 1}/192"
    assert axial.annotations.top_right[1] == f"slice {z0 + 1}/{N_SLICES}"
    # The axial crosshair is drawn through the clicked pixel.
    rgb = grab_rgb(axial)
    px, py = widget_point(axial, 60, 100)
    assert is_crosshair(rgb[py, px - 2 : px + 3]).any()
    px, py = widget_point(axial, 30, 130)
    assert is_crosshair(rgb[py - 2 : py + 3, px]).any()
    # Dragging with the left button keeps moving it.
    qtbot.mousePress(axial.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=screen_point(axial, 60, 130))
    qtbot.mouseMove(axial.viewport(), screen_point(axial, 100, 40))
    qtbot.mouseRelease(axial.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=screen_point(axial, 100, 40))
    assert model.cursor == (100, 40, z0)
    # Hovering reports the voxel and its value in the status bar.
    qtbot.mouseMove(axial.viewport(), screen_point(axial, 2, 2))
    probe = controller.window.probe_label.text()
    assert probe.startswith("voxel (2, 2, ") and probe.endswith("value -1000 HU"), probe


def test_layout_actions(qtbot: Any, controller: Any, sample_study: Path) -> None:
    open_and_wait(qtbot, controller, sample_study)
    mpr = controller.window.mpr
    actions = controller.window.actions_by_name
    assert not mpr.fourth.isVisible()

    actions["layout-2x2"].trigger()
    settle(qtbot)
    assert mpr.fourth.isVisible()
    assert all(v.isVisible() for v in mpr.views.values())
    axial = mpr.views[Plane.AXIAL]
    assert axial.width() < mpr.width() * 0.6 and axial.height() < mpr.height() * 0.6

    actions["layout-single"].trigger()
    settle(qtbot)
    shown = [p for p, v in mpr.views.items() if v.isVisible()]
    assert shown == [Plane.AXIAL]
    assert not mpr.fourth.isVisible()
    assert axial.width() > mpr.width() * 0.9
    assert (grab_rgb(axial).max(axis=-1) > 30).mean() > 0.1

    actions["layout-1x3"].trigger()
    settle(qtbot)
    assert all(v.isVisible() for v in mpr.views.values())
    assert not mpr.fourth.isVisible()
    assert controller.settings.value("layout") == "1x3"

    # The single layout shows the pane last clicked.
    coronal = mpr.views[Plane.CORONAL]
    qtbot.mouseClick(coronal.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=screen_point(coronal, 96, 40))
    actions["layout-single"].trigger()
    settle(qtbot)
    assert [p for p, v in mpr.views.items() if v.isVisible()] == [Plane.CORONAL]
    assert (grab_rgb(coronal).max(axis=-1) > 30).mean() > 0.1


def test_ctrl_wheel_zooms_and_the_zoom_text_follows(qtbot: Any, controller: Any, sample_study: Path) -> None:
    open_and_wait(qtbot, controller, sample_study)
    view = controller.window.mpr.views[Plane.AXIAL]
    zoom0 = view.zoom_factor()
    assert view.annotations.bottom_right == [f"zoom {zoom0:.2f}×"]
    _wheel(view, 120, QtCore.Qt.KeyboardModifier.ControlModifier)
    settle(qtbot)
    assert controller.model.cursor[2] == N_SLICES // 2, "Ctrl+wheel zooms, it does not scroll"
    assert abs(view.zoom_factor() / zoom0 - 1.25) < 0.01
    assert view.annotations.bottom_right == [f"zoom {view.zoom_factor():.2f}×"], "zoom text is stale"
    controller.window.actions_by_name["reset-view"].trigger()
    settle(qtbot)
    assert abs(view.zoom_factor() - zoom0) < 0.01
    assert view.annotations.bottom_right == [f"zoom {zoom0:.2f}×"]
    # Making the window smaller shrinks the image, and the text says so.
    controller.window.resize(1100, 700)
    settle(qtbot)
    assert view.zoom_factor() < zoom0 - 0.1
    assert view.annotations.bottom_right == [f"zoom {view.zoom_factor():.2f}×"], "zoom text is stale"


def test_cine_plays_the_active_plane(qtbot: Any, controller: Any, sample_study: Path) -> None:
    open_and_wait(qtbot, controller, sample_study)
    view = controller.window.mpr.views[Plane.AXIAL]
    cine = controller.window.actions_by_name["cine"]
    z0 = controller.model.cursor[2]
    cine.trigger()
    qtbot.waitUntil(lambda: controller.model.cursor[2] >= z0 + 3, timeout=5000)
    cine.trigger()
    settle(qtbot)
    z1 = controller.model.cursor[2]
    qtbot.wait(300)
    assert controller.model.cursor[2] == z1, "cine kept playing after it was switched off"
    assert view.annotations.top_right[1] == f"slice {z1 + 1}/{N_SLICES}"


def test_folder_without_images_reports_and_recovers(
    qtbot: Any, controller: Any, sample_study: Path, tmp_path: Path
) -> None:
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "garbage.bin").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    controller.open_path(junk)
    qtbot.waitUntil(lambda: bool(controller.last_error), timeout=60_000)
    assert "No image stack" in controller.last_error
    assert "No image stack" in controller.window.statusBar().currentMessage()
    assert controller.model.current is None
    assert controller.window.isVisible()
    qtbot.waitUntil(lambda: not controller.loader.busy)

    controller.last_error = ""
    cur = open_and_wait(qtbot, controller, sample_study)
    assert cur.shape_xyz == (192, 192, N_SLICES)
    assert controller.last_error == ""
    view = controller.window.mpr.views[Plane.AXIAL]
    assert (grab_rgb(view).max(axis=-1) > 30).mean() > 0.08
