"""Annotations on real widgets: every tool, select / move / resize / relabel / delete, undo and
redo, kept with the study (never in the scan folder), exported as CSV and as a DICOM SR that
dciodvfy accepts, and that SR opened again as annotations."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from inference.io.dicom_writer import write_dicom_series
from tests.inference.test_batch_writers import _dciodvfy
from tests.viewer.conftest import open_and_wait, settle
from viewer.models.measurements import Plane, Shape

SPACING = (0.7, 0.7, 2.0)


def _phantom(folder: Path) -> Path:
    """20 slices of 64×64: 0 HU, a 100 HU square at rows/columns 10..30, -500 HU at 45..55 × 40..60."""
    voxels = np.zeros((20, 64, 64), dtype=np.int16)
    voxels[:, 10:31, 10:31] = 100
    voxels[:, 45:55, 40:60] = -500
    write_dicom_series(
        voxels,
        folder,
        spacing=SPACING,
        origin=(-20.0, -20.0, 0.0),
        series_description="annotations",
        uid_seed=folder.name,
    )
    return folder


def _drag(view: Any, *points: tuple[float, float]) -> None:
    view.clicked.emit(*points[0])
    for p in points[1:]:
        view.dragged.emit(*p)
    view.released.emit(*points[-1])


def _click(view: Any, p: tuple[float, float]) -> None:
    view.clicked.emit(*p)
    view.released.emit(*p)


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def _results(controller: Any) -> dict[str, str]:
    panel = controller.window.measurements
    return {panel.item(r, 1).text(): panel.item(r, 3).text() for r in range(panel.rowCount())}


def _draw_every_tool(controller: Any, view: Any) -> None:
    a = controller.window.actions_by_name
    a["tool-distance"].trigger()
    _drag(view, (10.0, 40.0), (30.0, 40.0), (50.0, 40.0))
    a["tool-angle"].trigger()
    _drag(view, (20.0, 50.0), (20.0, 60.0))  # first arm, vertex at (20, 60)
    view.hovered.emit(35.0, 60.0)
    _click(view, (40.0, 60.0))  # the third point: a right angle
    a["tool-cobb"].trigger()
    _drag(view, (5.0, 5.0), (25.0, 5.0))
    _drag(view, (5.0, 15.0), (25.0, 35.0))  # 45° to the first
    a["tool-point"].trigger()
    _click(view, (33.0, 33.0))
    a["tool-freehand"].trigger()
    _drag(view, (12.0, 12.0), (28.0, 12.0), (28.0, 28.0), (12.0, 28.0))
    a["tool-arrow"].trigger()
    _drag(view, (45.0, 20.0), (58.0, 8.0))
    a["tool-crosshair"].trigger()


def test_every_tool_measures_in_millimetres(qtbot: Any, controller: Any, tmp_path: Path) -> None:
    open_and_wait(qtbot, controller, _phantom(tmp_path / "scan"))
    view = controller.window.mpr.views[Plane.AXIAL]
    _draw_every_tool(controller, view)
    settle(qtbot)
    shapes = [m.shape for m in controller.model.measurements]
    assert shapes == [Shape.DISTANCE, Shape.ANGLE, Shape.COBB, Shape.POINT, Shape.FREEHAND, Shape.ARROW]
    results = _results(controller)
    assert results["distance"] == "28.0 mm"
    assert results["angle"] == "90.0°"
    assert results["cobb"] == "45.0°"
    assert results["freehand"].startswith("mean 100.0 HU SD 0.0"), results["freehand"]
    assert results["freehand"].endswith(f"area {16 * 0.7 * 16 * 0.7:.1f} mm²"), results["freehand"]
    assert results["point"].startswith("LPS (")
    assert results["arrow"] == f"{np.hypot(13, 12) * 0.7:.1f} mm"
    # Compact labels: inside the view, none over another.
    boxes = view.label_boxes
    assert len(boxes) >= 4
    w, h = view.viewport().width(), view.viewport().height()
    for n, (x, y, bw, bh) in enumerate(boxes):
        assert 0 <= x <= w - bw and 0 <= y <= h - bh
        for x2, y2, bw2, bh2 in boxes[n + 1 :]:
            assert not (x < x2 + bw2 and x2 < x + bw and y < y2 + bh2 and y2 < y + bh)


def test_select_move_resize_relabel_delete_undo_redo(qtbot: Any, controller: Any, tmp_path: Path) -> None:
    open_and_wait(qtbot, controller, _phantom(tmp_path / "scan"))
    window = controller.window
    a = window.actions_by_name
    view = window.mpr.views[Plane.AXIAL]
    a["tool-distance"].trigger()
    _drag(view, (10.0, 40.0), (50.0, 40.0))
    a["tool-rectangle"].trigger()
    _drag(view, (12.0, 12.0), (28.0, 28.0))
    a["tool-crosshair"].trigger()
    ruler, roi = list(controller.model.measurements)
    cursor = controller.model.cursor
    # Press on the ruler's line: it is selected, the crosshair stays; a drag moves it whole.
    _drag(view, (30.0, 40.0), (30.0, 43.0), (30.0, 45.0))
    assert controller.annotations.selected == ruler.id
    assert controller.model.cursor == cursor
    assert [p[:2] for p in ruler.points] == [(10.0, 45.0), (50.0, 45.0)]
    assert window.measurements.selectedIndexes()[0].row() == 0
    # Press on an end: a resize.
    _drag(view, (50.0, 45.0), (40.0, 45.0))
    assert [p[:2] for p in ruler.points] == [(10.0, 45.0), (40.0, 45.0)]
    assert _results(controller)["distance"] == "21.0 mm"
    # A corner of the ROI resizes it, and its figures follow.
    _drag(view, (28.0, 28.0), (30.0, 30.0))
    assert _results(controller)["rectangle"].endswith(f"area {18 * 0.7 * 18 * 0.7:.1f} mm²")
    # Relabel, then delete the selected one with the Delete action.
    controller.annotations.relabel(roi.id, "liver ROI")
    assert window.measurements.item(1, 4).text() == "liver ROI"
    controller.annotations.select(roi.id)
    a["delete-measurement"].trigger()
    assert [m.shape for m in controller.model.measurements] == [Shape.DISTANCE]
    # Undo, step by step, back to nothing; redo, step by step, back to the end.
    assert a["undo"].isEnabled() and not a["redo"].isEnabled()
    states = []
    while a["undo"].isEnabled():
        states.append(_results(controller))
        a["undo"].trigger()
    assert len(controller.model.measurements) == 0
    assert len(states) == 7  # draw, draw, move, resize, resize, relabel, delete
    assert states[-1] == {"distance": "28.0 mm"} and states[-3]["distance"] == "28.0 mm"  # before the resize
    assert states[0] == {"distance": "21.0 mm"}
    for expected in reversed(states):
        a["redo"].trigger()
        assert _results(controller) == expected
    assert not a["redo"].isEnabled()
    # A click on empty image still moves the crosshair.
    _click(view, (5.0, 60.0))
    assert controller.model.cursor[:2] == (5, 60)
    assert controller.annotations.selected is None


def test_kept_with_the_study_and_never_in_its_folder(qtbot: Any, controller: Any, tmp_path: Path) -> None:
    scan = _phantom(tmp_path / "scan")
    other = _phantom(tmp_path / "other")
    before = _tree(scan)
    open_and_wait(qtbot, controller, scan)
    view = controller.window.mpr.views[Plane.AXIAL]
    _draw_every_tool(controller, view)
    controller.annotations.relabel(next(iter(controller.model.measurements)).id, "span")
    qtbot.waitUntil(lambda: not controller.busy, timeout=10_000)
    kept = list((controller.settings.data_folder / "annotations").glob("*.json"))
    assert len(kept) == 1
    text = kept[0].read_text()
    assert "RADLENS" not in text and "span" in text  # no patient name; the label is kept
    drawn = _results(controller)
    shapes = [(m.shape, m.label) for m in controller.model.measurements]

    open_and_wait(qtbot, controller, other)  # another series: nothing of the first
    qtbot.waitUntil(lambda: not controller.busy, timeout=10_000)
    assert len(controller.model.measurements) == 0
    open_and_wait(qtbot, controller, scan)
    qtbot.waitUntil(lambda: len(controller.model.measurements) == len(shapes), timeout=10_000)
    settle(qtbot)
    assert [(m.shape, m.label) for m in controller.model.measurements] == shapes
    assert _results(controller) == drawn
    assert not controller.window.actions_by_name["undo"].isEnabled()  # restoring is not an edit
    assert _tree(scan) == before


def test_export_csv_and_sr_then_open_the_sr_as_annotations(qtbot: Any, controller: Any, tmp_path: Path) -> None:
    import highdicom as hd

    scan = _phantom(tmp_path / "scan")
    open_and_wait(qtbot, controller, scan)
    view = controller.window.mpr.views[Plane.AXIAL]
    _draw_every_tool(controller, view)
    a = controller.window.actions_by_name
    a["tool-rectangle"].trigger()
    _drag(view, (40.0, 45.0), (59.0, 54.0))
    a["tool-ellipse"].trigger()
    _drag(view, (11.0, 11.0), (29.0, 25.0))
    a["tool-crosshair"].trigger()
    drawn = [(m.shape, m.plane, m.label) for m in controller.model.measurements]
    results = _results(controller)
    out = tmp_path / "export"
    assert controller.export_measurements(out)
    qtbot.waitUntil(lambda: not controller.busy, timeout=30_000)
    rows = list(csv.DictReader((out / "measurements.csv").open()))
    assert [r["shape"] for r in rows] == [s.value for s, _p, _l in drawn]
    assert float(rows[0]["length_mm"]) == pytest.approx(28.0)
    rect = next(r for r in rows if r["shape"] == "rectangle")
    assert float(rect["mean"]) == -500.0 and float(rect["area_mm2"]) == pytest.approx(19 * 0.7 * 9 * 0.7, rel=1e-3)

    sr_path = out / "measurements-sr.dcm"
    _dciodvfy(sr_path)
    sr = hd.sr.srread(sr_path)
    source = pydicom.dcmread(next(scan.iterdir()), stop_before_pixels=True)
    assert sr.StudyInstanceUID == source.StudyInstanceUID
    groups = sr.content.get_planar_roi_measurement_groups()
    assert len(groups) == 4  # point, freehand, rectangle, ellipse: planar ROIs (TID 1410)
    lines = sr.content.get_image_measurement_groups()  # ruler, angle, Cobb, arrow (TID 1501)
    assert sorted(m.name.meaning for g in lines for m in g.get_measurements()) == [
        "Angle",
        "Cobb angle",
        "Length",
        "Length",
    ]
    areas = [m.value for g in groups for m in g.get_measurements() if m.name.meaning == "Area"]
    assert any(v == pytest.approx(19 * 0.7 * 9 * 0.7, rel=1e-3) for v in areas)

    # A fresh open of the series has no annotations (cleared here); the SR brings them back.
    controller.model.measurements.clear()
    assert controller.open_measurements(sr_path)
    qtbot.waitUntil(lambda: len(controller.model.measurements) == len(drawn), timeout=30_000)
    settle(qtbot)
    assert [(m.shape, m.plane, m.label) for m in controller.model.measurements] == drawn
    assert _results(controller) == results

    # An SR on another frame of reference is refused with the reason.
    other = _phantom(tmp_path / "other")
    open_and_wait(qtbot, controller, other)
    controller.last_error = ""
    assert controller.open_measurements(sr_path)
    qtbot.waitUntil(lambda: bool(controller.last_error), timeout=30_000)
    assert "another frame of reference" in controller.last_error
