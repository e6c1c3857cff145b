"""Oblique MPR on real widgets: the axial crosshair rotated reslices the coronal and sagittal panes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inference.io.dicom_writer import write_dicom_series
from tests.viewer.conftest import open_and_wait, settle
from viewer.models.measurements import Plane
from viewer.models.oblique import Oblique


def _ramp(folder: Path) -> Path:
    """Values that grow 10 per millimetre from patient right to left: a rotation's oracle."""
    i = np.arange(64)
    voxels = np.broadcast_to((i * 10)[None, None, :], (20, 64, 64)).astype(np.int16)
    write_dicom_series(np.ascontiguousarray(voxels), folder, spacing=(1.0, 1.0, 2.0), uid_seed="ramp")
    return folder


def _slope(image: np.ndarray, row: int, cols: slice) -> float:
    values = image[row, cols].astype(np.float64)
    return float(np.polyfit(np.arange(len(values)), values, 1)[0])


@pytest.mark.parametrize("angle", [30.0, -45.0])
def test_rotated_axial_crosshair_reslices_the_other_panes(
    qtbot: Any, controller: Any, tmp_path: Path, angle: float
) -> None:
    cur = open_and_wait(qtbot, controller, _ramp(tmp_path / "ramp"))
    assert cur.spacing_xyz[:2] == (1.0, 1.0)
    views = controller.window.mpr.views
    row = cur.shape_xyz[2] - 1 - controller.model.cursor[2]  # the cursor's row in a coronal/sagittal image
    before = {p: views[p].image.image.copy() for p in (Plane.CORONAL, Plane.SAGITTAL)}
    assert _slope(before[Plane.CORONAL], row, slice(20, 44)) == pytest.approx(10.0)
    assert _slope(before[Plane.SAGITTAL], row, slice(20, 44)) == pytest.approx(0.0)
    controller.model.set_oblique(Oblique(Plane.AXIAL, angle))
    settle(qtbot)
    t = np.radians(angle)
    # The coronal pane's columns now run along the turned line: x changes by cos(angle) per mm.
    assert _slope(views[Plane.CORONAL].image.image, row, slice(24, 40)) == pytest.approx(10 * np.cos(t), abs=0.05)
    # The sagittal pane's columns (screen-down of the axial pane) turn towards screen-right.
    assert _slope(views[Plane.SAGITTAL].image.image, row, slice(24, 40)) == pytest.approx(10 * np.sin(t), abs=0.05)
    assert views[Plane.AXIAL].h_line.angle == pytest.approx(-angle)
    assert f"oblique {angle:+.0f}°" in views[Plane.CORONAL].annotations.top_right
    # The axial pane itself is not resliced.
    assert np.array_equal(views[Plane.AXIAL].image.image, cur.plane_image(Plane.AXIAL, controller.model.cursor[2]))
    # A click in a resliced pane moves the cursor to the point it shows.
    x0, y0, z0 = controller.model.cursor
    views[Plane.CORONAL].clicked.emit(float(x0 + 10), float(row))
    views[Plane.CORONAL].released.emit(float(x0 + 10), float(row))
    x, y, z = controller.model.cursor
    assert (x, y, z) == (round(x0 + 10 * np.cos(t)), round(y0 - 10 * np.sin(t)), z0)
    controller.window.actions_by_name["reset-oblique"].trigger()
    settle(qtbot)
    assert controller.model.oblique is None
    assert views[Plane.AXIAL].h_line.angle == pytest.approx(0.0)
    assert _slope(views[Plane.CORONAL].image.image, row, slice(20, 44)) == pytest.approx(10.0)


def test_a_right_angle_turns_the_coronal_pane_into_the_sagittal_one(
    qtbot: Any, controller: Any, sample_study: Path
) -> None:
    cur = open_and_wait(qtbot, controller, sample_study)
    nx, ny, _nz = cur.shape_xyz
    assert nx == ny and cur.spacing_xyz[0] == cur.spacing_xyz[1]
    views = controller.window.mpr.views
    controller.model.set_cursor((nx // 2, ny // 2, controller.model.cursor[2]))
    settle(qtbot)
    sagittal = views[Plane.SAGITTAL].image.image.astype(int)
    controller.model.set_oblique(Oblique(Plane.AXIAL, 90.0))
    settle(qtbot)
    coronal = views[Plane.CORONAL].image.image.astype(int)
    # Turned by 90° counter-clockwise, the coronal pane's columns run towards screen-up of the
    # axial pane: the sagittal image read from right to left.
    np.testing.assert_allclose(coronal[:, 1:], sagittal[:, ::-1][:, :-1], atol=1)


def test_the_rotate_tool_turns_the_crosshair_by_the_drag(qtbot: Any, controller: Any, sample_study: Path) -> None:
    cur = open_and_wait(qtbot, controller, sample_study)
    views = controller.window.mpr.views
    controller.window.actions_by_name["tool-rotate"].trigger()
    x, y, _z = controller.model.cursor
    col, row = cur.display_to_plane(Plane.AXIAL, (float(x), float(y), 0.0))
    views[Plane.AXIAL].clicked.emit(col + 20.0, row)  # pointer to the right of the cursor: 0°
    views[Plane.AXIAL].dragged.emit(col, row - 20.0)  # straight above: +90° counter-clockwise
    views[Plane.AXIAL].released.emit(col, row - 20.0)
    assert controller.model.oblique == Oblique(Plane.AXIAL, pytest.approx(90.0))
    controller.window.actions_by_name["tool-crosshair"].trigger()
    views[Plane.AXIAL].clicked.emit(col + 1.0, row)
    views[Plane.AXIAL].released.emit(col + 1.0, row)
    assert controller.model.oblique is not None  # the crosshair tool moves the cursor, not the angle
