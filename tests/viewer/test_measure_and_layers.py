"""Rulers and ROIs on a phantom of known geometry; label, mask and heatmap layers on the sample."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PySide6 import QtCore

from inference.io.dicom_writer import write_dicom_series
from inference.sample_study import sample_nodules
from viewer.models.measurements import Plane, Shape

from .conftest import grab_rgb, open_and_wait, open_overlay_and_wait, settle, widget_point

SPACING = (0.7, 0.7, 2.0)
ROI_VALUE = 100


def _measure_phantom(folder: Path) -> Path:
    """20 slices of 64×64: 0 HU with a uniform 100 HU square at rows/columns 10..30."""
    voxels = np.zeros((20, 64, 64), dtype=np.int16)
    voxels[:, 10:31, 10:31] = ROI_VALUE
    voxels[:, 45:55, 40:60] = -500
    write_dicom_series(voxels, folder, spacing=SPACING, origin=(-20.0, -20.0, 0.0), series_description="ruler phantom")
    return folder


def _drag(view: Any, start: tuple[float, float], end: tuple[float, float]) -> None:
    """A left-button drag in image coordinates, through the view's signals."""
    view.clicked.emit(*start)
    mid = ((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
    view.dragged.emit(*mid)
    view.dragged.emit(*end)
    view.released.emit(*end)


def _result(controller: Any, row: int) -> str:
    item = controller.window.measurements.item(row, 3)
    assert item is not None
    return str(item.text())


def _measure_colour(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    r, g, b = (rgb[..., c].astype(int) for c in range(3))
    return (abs(r - 80) < 30) & (abs(g - 220) < 30) & (abs(b - 255) < 30)


def test_distance_and_roi_on_known_phantom(qtbot: Any, controller: Any, tmp_path: Path) -> None:
    cur = open_and_wait(qtbot, controller, _measure_phantom(tmp_path / "ruler"))
    assert cur.shape_xyz == (64, 64, 20)
    assert cur.spacing_xyz == SPACING
    window = controller.window
    view = window.mpr.views[Plane.AXIAL]
    before = _measure_colour(grab_rgb(view)).sum()

    window.actions_by_name["tool-distance"].trigger()
    assert controller.tool == Shape.DISTANCE
    _drag(view, (10.0, 40.0), (50.0, 40.0))
    settle(qtbot)
    assert len(controller.model.measurements) == 1
    assert window.measurements.rowCount() == 1
    assert _result(controller, 0) == "28.0 mm"  # 40 columns × 0.7 mm
    assert window.measurements.item(0, 1).text() == "distance"
    assert window.measurements.item(0, 2).text() == "axial"
    # The ruler is drawn in the measurement colour along row 40.
    rgb = grab_rgb(view)
    assert _measure_colour(rgb).sum() > before + 50
    x, y = widget_point(view, 30, 40)
    assert _measure_colour(rgb[y - 2 : y + 3, x]).any()
    # A ruler is shown only on its own slice.
    controller.model.step_slice(Plane.AXIAL, 3)
    settle(qtbot)
    assert _measure_colour(grab_rgb(view)).sum() <= before
    controller.model.step_slice(Plane.AXIAL, -3)

    # A click without a drag measures nothing.
    view.clicked.emit(20.0, 20.0)
    view.released.emit(20.0, 20.0)
    assert window.measurements.rowCount() == 1

    window.actions_by_name["tool-rectangle"].trigger()
    assert controller.tool == Shape.RECTANGLE
    _drag(view, (12.0, 12.0), (28.0, 28.0))
    settle(qtbot)
    assert window.measurements.rowCount() == 2
    roi = _result(controller, 1)
    side = 16 * 0.7
    assert roi.startswith(f"mean {ROI_VALUE:.1f} HU SD 0.0 min {ROI_VALUE} max {ROI_VALUE} "), roi
    assert roi.endswith(f"area {side * side:.1f} mm²"), roi

    window.actions_by_name["tool-ellipse"].trigger()
    _drag(view, (40.0, 45.0), (59.0, 54.0))
    settle(qtbot)
    ellipse = _result(controller, 2)
    assert ellipse.startswith("mean -500.0 HU SD 0.0"), ellipse
    assert ellipse.endswith(f"area {np.pi * (19 * 0.7) * (9 * 0.7) / 4:.1f} mm²"), ellipse

    # Delete removes the selected row and its shape.
    panel = window.measurements
    panel.setFocus()
    panel.selectRow(1)
    qtbot.keyClick(panel, QtCore.Qt.Key.Key_Delete)
    settle(qtbot)
    assert panel.rowCount() == 2
    assert [m.shape for m in controller.model.measurements] == [Shape.DISTANCE, Shape.ELLIPSE]
    assert [_result(controller, r) for r in range(2)] == ["28.0 mm", ellipse]

    # On the coronal pane a vertical ruler crosses slices: 10 rows × 2.0 mm.
    window.actions_by_name["tool-distance"].trigger()
    coronal = window.mpr.views[Plane.CORONAL]
    assert coronal.pixel_mm == (0.7, 2.0)
    _drag(coronal, (20.0, 4.0), (20.0, 14.0))
    settle(qtbot)
    assert panel.rowCount() == 3
    assert [panel.item(2, c).text() for c in (1, 2, 3)] == ["distance", "coronal", "20.0 mm"]

    # Back to the crosshair: a click moves the cursor and measures nothing.
    window.actions_by_name["tool-crosshair"].trigger()
    assert controller.tool is None
    view.clicked.emit(5.0, 6.0)
    view.released.emit(5.0, 6.0)
    assert controller.model.cursor[:2] == (5, 6)
    assert panel.rowCount() == 3


def _label_colour(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """Pixels tinted by the first label colour (230, 25, 75) over grey."""
    r, g, b = (rgb[..., c].astype(int) for c in range(3))
    return (r - g > 50) & (r - b > 30)


def _nodule_display(cur: Any, n: int = 0) -> tuple[int, int, int]:
    ijk = cur.volume.lps_to_index(sample_nodules()[n].center_lps)
    x, y, z = np.round(cur.axis_map.source_to_display(ijk, cur.volume.size_ijk)).astype(int)
    return int(x), int(y), int(z)


def _sphere_labels(cur: Any, center_lps: tuple[float, float, float], radius_mm: float) -> npt.NDArray[np.uint8]:
    nk, nj, ni = cur.volume.shape
    k, j, i = np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing="ij")
    lps = cur.volume.index_to_lps(np.stack([i.ravel(), j.ravel(), k.ravel()], axis=1))
    inside = np.linalg.norm(lps - np.asarray(center_lps), axis=1) <= radius_mm
    return inside.reshape(nk, nj, ni).astype(np.uint8)


def _count_near(mask: npt.NDArray[np.bool_], x: int, y: int, r: int) -> tuple[int, int]:
    """(pixels set within ``r`` of (x, y), pixels set elsewhere)."""
    near = np.zeros_like(mask)
    near[max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1] = True
    return int((mask & near).sum()), int((mask & ~near).sum())


def test_label_layer_shows_at_the_nodule_only(qtbot: Any, controller: Any, sample_study: Path) -> None:
    from viewer.models.layers import LabelLayer

    cur = open_and_wait(qtbot, controller, sample_study)
    window = controller.window
    window.actions_by_name["crosshair"].trigger()  # hide the crosshair: only the overlay is coloured
    view = window.mpr.views[Plane.AXIAL]
    nodule = sample_nodules()[0]
    x, y, z = _nodule_display(cur)
    layer = LabelLayer(name="nodules", labels=_sphere_labels(cur, nodule.center_lps, nodule.radius_mm + 1.5))
    controller.model.layers.add(layer)
    controller.model.set_cursor((x, y, z))
    settle(qtbot)

    rgb = grab_rgb(view)
    px, py = widget_point(view, x, y)
    assert _label_colour(rgb[py - 1 : py + 2, px - 1 : px + 2]).all(), rgb[py, px]
    radius_px = int(np.ceil((nodule.radius_mm + 3) / cur.spacing_xyz[0] * view.zoom_factor()))
    near, elsewhere = _count_near(_label_colour(rgb), px, py, radius_px)
    assert near > 20 and elsewhere == 0, (near, elsewhere)
    # Coronal and sagittal panes show the same sphere at the cursor.
    for plane in (Plane.CORONAL, Plane.SAGITTAL):
        other = window.mpr.views[plane]
        c, r = cur.display_to_plane(plane, (x, y, z))
        ox, oy = widget_point(other, c, r)
        assert _label_colour(grab_rgb(other)[oy, ox]).all(), plane

    # Far from the nodule in z: no overlay colour anywhere.
    controller.model.set_cursor((x, y, (z + 30) % cur.shape_xyz[2]))
    settle(qtbot)
    assert not _label_colour(grab_rgb(view)).any()
    controller.model.set_cursor((x, y, z))

    # The layer panel's checkbox hides it.
    assert window.layer_panel.list.count() == 1
    item = window.layer_panel.list.item(0)
    assert item.text() == "nodules"
    item.setCheckState(QtCore.Qt.CheckState.Unchecked)
    settle(qtbot)
    assert not layer.visible
    assert not _label_colour(grab_rgb(view)).any()
    item = window.layer_panel.list.item(0)
    assert item.checkState() == QtCore.Qt.CheckState.Unchecked
    item.setCheckState(QtCore.Qt.CheckState.Checked)
    settle(qtbot)
    assert layer.visible
    assert _label_colour(grab_rgb(view)).any()
    assert "label 1" in window.layer_panel.legend.text()


def _write_nifti(path: Path, labels: npt.NDArray[Any], cur: Any) -> Path:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(labels)
    image.SetSpacing(cur.volume.spacing)
    image.SetOrigin(cur.volume.origin)
    image.SetDirection(tuple(float(v) for v in cur.volume.direction.ravel()))
    sitk.WriteImage(image, str(path))
    return path


def test_mask_files_on_and_off_the_grid(qtbot: Any, controller: Any, sample_study: Path, tmp_path: Path) -> None:
    cur = open_and_wait(qtbot, controller, sample_study)
    window = controller.window
    nodule = sample_nodules()[0]
    labels = _sphere_labels(cur, nodule.center_lps, nodule.radius_mm + 1.5) * 3

    wrong = _write_nifti(tmp_path / "wrong.nii.gz", labels[:, :100, :], cur)
    assert open_overlay_and_wait(qtbot, controller, wrong) is None
    assert "wrong.nii.gz" in controller.last_error
    assert "voxels" in controller.last_error and "(192, 192, 80)" in controller.last_error, controller.last_error
    assert "Cannot open wrong.nii.gz" in window.statusBar().currentMessage()
    assert len(controller.model.layers) == 0
    assert window.layer_panel.list.count() == 0

    import SimpleITK as sitk

    shifted = sitk.GetImageFromArray(labels)
    shifted.SetSpacing(cur.volume.spacing)
    shifted.SetOrigin(tuple(o + 5.0 for o in cur.volume.origin))
    sitk.WriteImage(shifted, str(tmp_path / "shifted.nii.gz"))
    controller.last_error = ""
    assert open_overlay_and_wait(qtbot, controller, tmp_path / "shifted.nii.gz") is None
    assert "placed differently" in controller.last_error
    assert len(controller.model.layers) == 0

    good = _write_nifti(tmp_path / "good.nii.gz", labels, cur)
    layer = open_overlay_and_wait(qtbot, controller, good)
    assert layer is not None
    assert len(controller.model.layers) == 1
    assert window.layer_panel.list.item(0).text() == "good.nii.gz"
    assert np.array_equal(layer.labels, labels)
    window.actions_by_name["crosshair"].trigger()
    x, y, z = _nodule_display(cur)
    controller.model.set_cursor((x, y, z))
    settle(qtbot)
    view = window.mpr.views[Plane.AXIAL]
    px, py = widget_point(view, x, y)
    rgb = grab_rgb(view)
    assert _label_colour(rgb[py - 1 : py + 2, px - 1 : px + 2]).all()


def _coloured(view: Any, rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """Clearly non-grey pixels, away from the pane's edges (the orientation letters are amber)."""
    spread = rgb.max(axis=-1).astype(int) - rgb.min(axis=-1)
    keep = np.zeros(spread.shape, dtype=bool)
    keep[70:-70, 30:-30] = True
    return (spread > 60) & keep


def test_heatmap_layer_shows_colour(qtbot: Any, controller: Any, sample_study: Path) -> None:
    cur = open_and_wait(qtbot, controller, sample_study)
    window = controller.window
    window.actions_by_name["crosshair"].trigger()
    view = window.mpr.views[Plane.AXIAL]
    nodule = sample_nodules()[1]
    x, y, z = _nodule_display(cur, 1)
    controller.model.set_cursor((x, y, z))
    settle(qtbot)
    assert not _coloured(view, grab_rgb(view)).any(), "the plain image should be grey"

    nk, nj, ni = cur.volume.shape
    k, j, i = np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing="ij")
    lps = cur.volume.index_to_lps(np.stack([i.ravel(), j.ravel(), k.ravel()], axis=1))
    dist = np.linalg.norm(lps - np.asarray(nodule.center_lps), axis=1).reshape(nk, nj, ni)
    values = np.exp(-((dist / 15.0) ** 2)).astype(np.float32)
    layer = controller.add_heatmap("probability", values, colormap="jet", threshold=0.1, opacity=0.8)
    settle(qtbot)
    assert window.layer_panel.list.item(0).text() == "probability"
    assert "probability: jet" in window.layer_panel.legend.text()

    rgb = grab_rgb(view)
    coloured = _coloured(view, rgb)
    px, py = widget_point(view, x, y)
    assert coloured[py - 1 : py + 2, px - 1 : px + 2].all(), rgb[py, px]
    radius_px = int(np.ceil(35.0 / cur.spacing_xyz[0] * view.zoom_factor()))
    near, elsewhere = _count_near(coloured, px, py, radius_px)
    assert near > 200 and elsewhere == 0, (near, elsewhere)
    # The peak is drawn red (jet's top) and the rim blue-green: the colours follow the values.
    r, g, b = (int(v) for v in rgb[py, px])
    assert r > g and r > b, (r, g, b)

    layer.set(visible=False)
    settle(qtbot)
    assert not _coloured(view, grab_rgb(view)).any()
