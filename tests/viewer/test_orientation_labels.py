"""Orientation letters and display re-indexing for series written in different orientations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from inference.io.dicom_writer import write_dicom_series
from viewer.models.measurements import Plane

from .conftest import grab_rgb, open_and_wait, settle, widget_point

_C, _S = np.cos(np.radians(20.0)), np.sin(np.radians(20.0))

#: Direction matrices (columns: LPS unit vectors of i, j, k).
ORIENTATIONS: dict[str, npt.NDArray[np.float64]] = {
    "head-first axial": np.eye(3),
    # Feet-first supine: rows run to patient right, slices are stacked towards the feet.
    "feet-first axial": np.column_stack([(-1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, -1.0)]),
    # Coronal: rows to the left, columns downwards (towards the feet), slices to posterior.
    "coronal": np.column_stack([(1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0)]),
    # Axial rotated 20° about the patient's long axis.
    "oblique": np.array([[_C, -_S, 0.0], [_S, _C, 0.0], [0.0, 0.0, 1.0]]),
}

EXPECTED_EDGES = {
    Plane.AXIAL: ("R", "L", "A", "P"),
    Plane.CORONAL: ("R", "L", "S", "I"),
    Plane.SAGITTAL: ("A", "P", "S", "I"),
}

SHAPE = (16, 24, 32)  # (k, j, i), all different so a wrong axis shows
SPACING = (1.0, 1.2, 1.5)
MARKER = 1000


def _write(folder: Path, direction: npt.NDArray[np.float64]) -> Path:
    """A series whose bright voxels lie left, anterior and superior of its centre."""
    nk, nj, ni = SHAPE
    k, j, i = np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing="ij")
    steps = np.stack([i, j, k], axis=-1) - (np.array([ni, nj, nk]) - 1) / 2
    lps = (steps * np.asarray(SPACING)) @ direction.T  # relative to the centre
    marker = (lps[..., 0] > 2.0) & (lps[..., 1] < -2.0) & (lps[..., 2] > 2.0)
    voxels = np.where(marker, MARKER, -MARKER).astype(np.int16)
    origin = -(direction @ ((np.array([ni, nj, nk]) - 1) / 2 * np.asarray(SPACING)))
    write_dicom_series(voxels, folder, spacing=SPACING, origin=tuple(origin), direction=direction, modality="CT")
    return folder


@pytest.mark.parametrize("name", list(ORIENTATIONS))
def test_edge_letters_and_display_axes(qtbot: Any, controller: Any, tmp_path: Path, name: str) -> None:
    direction = ORIENTATIONS[name]
    cur = open_and_wait(qtbot, controller, _write(tmp_path / "series", direction))
    np.testing.assert_allclose(cur.volume.direction, direction, atol=1e-4)
    views = controller.window.mpr.views
    edges = {plane: view.annotations.edges for plane, view in views.items()}
    if name == "oblique":
        left, right, top, bottom = edges[Plane.AXIAL]
        assert right == "LP" and left == "RA", edges[Plane.AXIAL]
        assert top == "AL" and bottom == "PR", edges[Plane.AXIAL]
        assert edges[Plane.CORONAL][2:] == ("S", "I")
    else:
        assert edges == EXPECTED_EDGES, name

    # The marker (left, anterior, superior) is drawn where the letters say: in the axial pane's
    # top right quarter on the highest slice, and in the coronal pane's top right quarter.
    controller.window.actions_by_name["crosshair"].trigger()
    nx, _ny, nz = cur.shape_xyz
    controller.model.set_cursor((nx - 1, 0, nz - 1))
    settle(qtbot)
    controller.window.actions_by_name["preset-mediastinum"].trigger()
    settle(qtbot)
    for plane in (Plane.AXIAL, Plane.CORONAL):
        view = views[plane]
        rows, cols = view.image_shape
        rgb = grab_rgb(view)
        quarters = {}
        for qname, fc, fr in (
            ("top-right", 0.8, 0.2),
            ("top-left", 0.2, 0.2),
            ("bottom-right", 0.8, 0.8),
            ("bottom-left", 0.2, 0.8),
        ):
            x, y = widget_point(view, fc * (cols - 1), fr * (rows - 1))
            quarters[qname] = int(rgb[y, x].max())
        assert quarters["top-right"] > 240, (name, plane, quarters)
        assert max(v for q, v in quarters.items() if q != "top-right") < 15, (name, plane, quarters)
