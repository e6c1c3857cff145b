"""The viewer's rough edges a day of reading found, each as a regression test on real widgets:
per-slice file windows, head-CT and user presets, a single slice, a junk folder, a mask stored
in another axis order, readable corner text, the window's minimum size and layout reset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from inference.io.dicom_writer import write_dicom_series
from tests.inference.colin27 import read_colin27
from tests.viewer.conftest import grab_rgb, open_and_wait, open_overlay_and_wait, settle
from viewer.models.measurements import Plane


def _mr_series_with_per_slice_windows(folder: Path) -> tuple[list[Path], tuple[float, float]]:
    """Twelve axial slices of Colin27's T1 written as MR, each slice with a window fitted to that
    slice alone (as Siemens writes them): the first, an edge slice, gets a tiny W 9 / L 4."""
    t1, _brain, _vol, _spacing = read_colin27()
    slab = np.ascontiguousarray(t1[10:130:10, ::2, ::2]).astype(np.int32)
    slab = np.clip(slab * 4, 0, 4000).astype(np.int32)
    paths = write_dicom_series(slab, folder, spacing=(2.0, 2.0, 10.0), modality="MR", uid_seed="per-slice-windows")
    for k, path in enumerate(paths):
        ds = pydicom.dcmread(path)
        if k == 0:
            centre, width = 4.0, 9.0
        else:
            lo, hi = np.percentile(slab[k], [1, 99])
            centre, width = float((lo + hi) / 2), float(max(hi - lo, 1.0))
        ds.WindowCenter, ds.WindowWidth = f"{centre:.1f}", f"{width:.1f}"
        ds.save_as(path)
    middle = pydicom.dcmread(paths[len(paths) // 2])
    return paths, (float(middle.WindowCenter), float(middle.WindowWidth))


def test_per_slice_windows_open_with_the_middle_slice_or_auto(qtbot: Any, controller: Any, tmp_path: Path) -> None:
    from inference.display.window_level import auto_window

    _paths, (mid_centre, mid_width) = _mr_series_with_per_slice_windows(tmp_path / "mr")
    cur = open_and_wait(qtbot, controller, tmp_path / "mr")
    md = cur.volume.metadata
    assert md.extra["windows_vary"] is True
    assert (md.windows[0].center, md.windows[0].width) == (mid_centre, mid_width)
    wl = controller.model.window
    assert wl.width > 9.0 * 20, f"opened at W {wl.width} L {wl.center}: the first slice's window"
    auto = auto_window(cur.volume.voxels)
    assert (wl.center, wl.width) == pytest.approx((auto.center, auto.width))
    assert controller.window.wl_label.text() == f"W {wl.width:.0f} L {wl.center:.0f}"


def test_head_ct_presets_and_user_presets_are_kept(qtbot: Any, controller: Any, sample_study: Path) -> None:
    from viewer.controllers.settings import Settings

    open_and_wait(qtbot, controller, sample_study)
    actions = controller.window.actions_by_name
    actions["preset-subdural"].trigger()
    assert (controller.model.window.center, controller.model.window.width) == (75, 215)
    assert actions["preset-subdural"].shortcut().toString() == "8"
    actions["preset-temporal-bone"].trigger()
    assert (controller.model.window.center, controller.model.window.width) == (600, 2800)

    from inference.display.window_level import WindowLevel

    controller.model.set_window(WindowLevel(-450, 1234))
    controller.save_user_preset("My lung")
    menu = controller.window.user_presets_menu
    assert [a.text() for a in menu.actions()] == ["My lung: W 1234 L -450"]
    controller.model.set_window(WindowLevel(40, 400))
    menu.actions()[0].trigger()
    assert (controller.model.window.center, controller.model.window.width) == (-450, 1234)
    # Kept in the settings file: a later launch lists it too.
    again = Settings(controller.settings.path)
    assert [(n, w.center, w.width) for n, w in again.user_presets()] == [("My lung", -450, 1234)]
    controller.window.actions_by_name["preset-clear-user"].trigger()
    assert menu.actions() == [] and not menu.isEnabled()


def test_window_drag_follows_the_window_and_shift_is_finer(qtbot: Any, controller: Any, sample_study: Path) -> None:
    from inference.display.window_level import WindowLevel

    open_and_wait(qtbot, controller, sample_study)
    moved = {}
    for width in (40.0, 2000.0):
        for fine in (False, True):
            controller.model.set_window(WindowLevel(50.0, width))
            view = controller.window.mpr.views[Plane.AXIAL]
            view.window_dragged.emit(0.0, 0.0, True, False)
            view.window_dragged.emit(0.0, 100.0, False, fine)
            moved[(width, fine)] = controller.model.window.center - 50.0
    assert 0 < moved[(40.0, False)] < 20, moved  # fine at W 40: 100 px is a fraction of the window
    assert moved[(2000.0, False)] > 20 * moved[(40.0, False)], moved
    for width in (40.0, 2000.0):
        assert moved[(width, True)] == pytest.approx(moved[(width, False)] / 5), moved


def test_a_single_slice_opens_alone_and_the_next_study_gets_the_layout_back(
    qtbot: Any, controller: Any, sample_study: Path
) -> None:
    single = Path(pydicom.data.get_testdata_file("CT_small.dcm"))
    mpr = controller.window.mpr
    cur = open_and_wait(qtbot, controller, single)
    assert cur.volume.shape[0] == 1
    assert mpr.layout_name == "single"
    assert mpr.views[mpr.active].isVisible()
    shown = [p for p, v in mpr.views.items() if v.isVisible()]
    assert shown == [mpr.active]
    assert cur.shape_xyz[mpr.active.normal_axis] == 1  # the pane that shows the whole slice
    open_and_wait(qtbot, controller, sample_study)
    assert mpr.layout_name == "1x3"
    assert all(v.isVisible() for v in mpr.views.values())


def test_a_junk_folder_keeps_the_study_on_screen_and_its_series_list(
    qtbot: Any, controller: Any, sample_study: Path, tmp_path: Path
) -> None:
    open_and_wait(qtbot, controller, sample_study)
    browser = controller.window.browser
    before = [item.text(0) for item in browser.stack_items()]
    assert before
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("not an image")
    (junk / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x01" * 40)
    shown = controller.model.current
    controller.last_error = ""
    controller.open_path(junk)
    qtbot.waitUntil(lambda: bool(controller.last_error), timeout=30_000)
    assert "No image stack found" in controller.last_error
    assert controller.model.current is shown
    assert [item.text(0) for item in browser.stack_items()] == before
    assert browser.topLevelItemCount() >= 1 and "Not loaded" not in browser.topLevelItem(0).text(0)


def test_series_names_are_not_cut_to_one_letter(qtbot: Any, controller: Any, sample_study: Path) -> None:
    open_and_wait(qtbot, controller, sample_study)
    browser = controller.window.browser
    item = browser.stack_items()[0]
    rect = browser.visualItemRect(item)
    assert browser.columnWidth(0) >= 90, browser.columnWidth(0)  # a dozen characters, not "N…"
    assert rect.width() > 0


def test_a_mask_stored_flipped_or_transposed_is_the_same_grid(qtbot: Any, controller: Any, tmp_path: Path) -> None:
    """Colin27's brain mask over its T1, stored flipped along i and with i and j swapped, each with
    an affine to match (SimpleITK's Flip and PermuteAxes keep every voxel where it was)."""
    import SimpleITK as sitk

    from tests.inference.colin27 import BRAIN, T1

    cur = open_and_wait(qtbot, controller, T1)
    expected = controller.model.current.volume
    brain = sitk.ReadImage(str(BRAIN))
    reference = sitk.GetArrayFromImage(brain) > 0
    flipped = sitk.Flip(brain, [True, False, False])
    swapped = sitk.PermuteAxes(brain, [1, 0, 2])
    for name, image in (("flipped.nii.gz", flipped), ("swapped.nii.gz", swapped)):
        assert sitk.GetArrayFromImage(image).shape != reference.shape or not np.array_equal(
            sitk.GetArrayFromImage(image) > 0, reference
        )
        sitk.WriteImage(image, str(tmp_path / name))
        controller.last_error = ""
        layer = open_overlay_and_wait(qtbot, controller, tmp_path / name)
        assert layer is not None, controller.last_error
        assert layer.labels.shape == expected.shape
        assert np.array_equal(layer.labels > 0, reference)
        controller.model.layers.remove(layer)
    assert cur is controller.model.current

    shifted = sitk.Flip(brain, [True, False, False])
    shifted.SetOrigin(tuple(o + 3.0 for o in shifted.GetOrigin()))
    sitk.WriteImage(shifted, str(tmp_path / "shifted.nii.gz"))
    controller.last_error = ""
    assert open_overlay_and_wait(qtbot, controller, tmp_path / "shifted.nii.gz") is None
    assert "placed differently" in controller.last_error


def test_corner_text_has_a_dark_backing_over_a_bright_image(qtbot: Any, controller: Any, sample_study: Path) -> None:
    open_and_wait(qtbot, controller, sample_study)
    controller.window.actions_by_name["invert"].trigger()  # air outside the body turns white
    settle(qtbot)
    view = controller.window.mpr.views[Plane.AXIAL]
    vp = view.viewport()
    rgb = grab_rgb(vp)
    w = rgb.shape[1]
    grey = rgb.mean(axis=-1)
    # The top-right corner text ("Axial", "slice n/N", "z mm") sits on a dark backing, so the
    # corner is dark where the image around it is white.
    corner = grey[4:40, w - 60 : w - 8]
    assert float(np.median(corner)) < 100, float(np.median(corner))
    assert (corner > 180).any(), "the text itself is light"


def test_minimum_size_and_reset_layout(qtbot: Any, controller: Any) -> None:
    window = controller.window
    assert window.minimumSize().width() >= 960 and window.minimumSize().height() >= 600
    window.resize(400, 300)
    settle(qtbot)
    assert window.width() >= 960 and window.height() >= 600
    window.analysis_dock.setFloating(True)
    window.browser_dock.hide()
    controller.set_layout("single")
    controller.settings.save_window(window)
    window.actions_by_name["reset-layout"].trigger()
    settle(qtbot)
    assert not window.analysis_dock.isFloating()
    assert window.browser_dock.isVisible()
    assert window.mpr.layout_name == "1x3"
    assert controller.settings.value("geometry") is None and controller.settings.value("state") is None


def test_missing_xcb_libraries_are_named_before_qt_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    from viewer.app import missing_display_libraries

    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    lacking = {"xcb-cursor"}
    assert missing_display_libraries(lambda name: None if name in lacking else f"lib{name}.so") == ["libxcb-cursor0"]
    # This machine has them (scripts/system-deps.sh installs them), found by the real lookup.
    assert missing_display_libraries() == []
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert missing_display_libraries(lambda name: None) == []


def test_slices_are_numbered_from_one_as_everywhere_else(qtbot: Any, controller: Any, sample_study: Path) -> None:
    """The corner text of the pane that shows the acquired slices gives the stored slice's number
    (index + 1), the number the score plot, key image names and reports use; an empty score plot
    shows slice numbers from 1, not an axis around zero."""
    plot = controller.window.mpr.fourth
    plot.set_scores(None)
    (x0, x1), _ = plot.viewRange()
    assert 0.5 <= x0 <= 1.5 and x1 <= 3, (x0, x1)
    cur = open_and_wait(qtbot, controller, sample_study)
    for z in (0, 17, cur.shape_xyz[2] - 1):
        x, y, _ = controller.model.cursor
        controller.model.set_cursor((x, y, z))
        settle(qtbot)
        k = int(round(cur.axis_map.display_to_source(controller.model.cursor, cur.volume.size_ijk)[2]))
        shown = controller.window.mpr.views[Plane.AXIAL].annotations.top_right[1]
        assert shown == f"slice {k + 1}/{cur.shape_xyz[2]}", shown
    plot.set_scores(np.linspace(0, 1, cur.volume.shape[0]))
    (x0, x1), _ = plot.viewRange()
    assert x0 < 1.5 and x1 > cur.volume.shape[0] - 0.5


def _longest_light_run(row: np.ndarray) -> int:
    light = np.concatenate([[0], (row.min(axis=-1) > 200).astype(int), [0]])
    edges = np.flatnonzero(np.diff(light))
    return int((edges[1::2] - edges[::2]).max()) if edges.size else 0


def test_at_1024_by_640_the_scale_bar_keeps_clear_of_the_corner_text(
    qtbot: Any, controller: Any, sample_study: Path
) -> None:
    open_and_wait(qtbot, controller, sample_study)
    controller.window.resize(1024, 640)
    settle(qtbot)
    view = controller.window.mpr.views[Plane.AXIAL]
    assert view.viewport().width() >= 120  # the docks leave the panes room
    rgb = grab_rgb(view.viewport())
    h = rgb.shape[0]
    runs = [_longest_light_run(rgb[r]) for r in range(h)]
    bar = [r for r in range(h - 60, h) if runs[r] >= 20]  # the bar: one light line, 20+ px long
    assert bar, "no scale bar near the bottom"
    # The bar is drawn above both corner texts (light glyph strokes are a few pixels long).
    assert min(bar) < h - 30 and max(runs[h - 18 :]) < 20, (bar, runs[h - 18 :])
