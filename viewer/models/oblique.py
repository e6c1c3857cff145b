"""Oblique MPR: the crosshair of one pane rotated about its normal reslices the other two. No Qt.

Rotating the crosshair of a pane by an angle rotates the other two panes' planes about that pane's
normal through the cursor: each of their pixels is the point it shows without rotation, turned
about the cursor in patient millimetres (so the angle is a true angle on anisotropic voxels), and
sampled from the volume by trilinear interpolation (labels: nearest voxel).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .measurements import Plane
from .oblique_state import Oblique
from .viewer_model import OpenVolume

__all__ = ["Oblique", "reslice", "reslice_coordinates", "rotate_point", "rotation_mm", "screen_axes"]


def screen_axes(cur: OpenVolume, plane: Plane) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Unit vectors (display index space) of a pane's screen-right and screen-down."""
    o = np.asarray(cur.plane_to_display(plane, 0.0, 0.0, 0.0))
    right = np.asarray(cur.plane_to_display(plane, 1.0, 0.0, 0.0)) - o
    down = np.asarray(cur.plane_to_display(plane, 0.0, 1.0, 0.0)) - o
    return right, down


def rotation_mm(cur: OpenVolume, oblique: Oblique) -> npt.NDArray[np.float64]:
    """The 3×3 rotation in display millimetres: the source pane's screen-right turns towards its
    screen-up by the angle; its normal stays."""
    right, down = screen_axes(cur, oblique.source)
    spacing = np.asarray(cur.spacing_xyz, dtype=np.float64)
    c = right * spacing
    r = down * spacing
    c, r = c / np.linalg.norm(c), r / np.linalg.norm(r)
    n = np.cross(c, r)
    t = np.radians(oblique.angle_deg)
    return np.asarray(
        np.outer(n, n) + np.cos(t) * (np.outer(c, c) + np.outer(r, r)) - np.sin(t) * (np.outer(r, c) - np.outer(c, r)),
        dtype=np.float64,
    )


def reslice_coordinates(
    cur: OpenVolume, plane: Plane, cursor: tuple[int, int, int], oblique: Oblique
) -> npt.NDArray[np.float64]:
    """``(3, rows, cols)`` display indices ``(z, y, x)`` of the pixels of ``plane``'s resliced image."""
    index = cursor[plane.normal_axis]
    shape = cur.plane_image(plane, index).shape[:2]
    rows, cols = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    o = np.asarray(cur.plane_to_display(plane, 0.0, 0.0, float(index)))
    right, down = screen_axes(cur, plane)
    points = o[:, None, None] + right[:, None, None] * cols + down[:, None, None] * rows  # (3, r, c) x, y, z
    spacing = np.asarray(cur.spacing_xyz, dtype=np.float64)[:, None, None]
    centre = np.asarray(cursor, dtype=np.float64)[:, None, None]
    mm = (points - centre) * spacing
    turned = np.einsum("ij,jrc->irc", rotation_mm(cur, oblique), mm) / spacing + centre
    return np.asarray(turned[::-1], dtype=np.float64)  # (z, y, x): the display array's axis order


def reslice(
    array: npt.NDArray[Any], coordinates: npt.NDArray[np.float64], *, nearest: bool = False, fill: float = 0.0
) -> npt.NDArray[Any]:
    """``array[z, y, x]`` sampled at ``coordinates`` (nearest voxel for labels); ``fill`` outside."""
    from scipy.ndimage import map_coordinates

    out = map_coordinates(array, coordinates, order=0 if nearest else 1, mode="constant", cval=fill)
    return np.ascontiguousarray(out.astype(array.dtype, copy=False))


def rotate_point(
    cur: OpenVolume, oblique: Oblique, cursor: tuple[int, int, int], point: tuple[float, float, float]
) -> tuple[float, float, float]:
    """Where a point of an unrotated pane lies once the pane is resliced (display indices)."""
    spacing = np.asarray(cur.spacing_xyz, dtype=np.float64)
    centre = np.asarray(cursor, dtype=np.float64)
    turned = rotation_mm(cur, oblique) @ ((np.asarray(point, dtype=np.float64) - centre) * spacing) / spacing + centre
    return (float(turned[0]), float(turned[1]), float(turned[2]))
