"""Rulers, angles, ROIs, arrows and markers, in display voxel coordinates of one plane. No Qt.

Coordinates are continuous display indices ``(x, y, z)`` (voxel centres at integers), the
same for the volume and every overlay; conversion to millimetres uses the display spacing.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from .events import Event

_ids = itertools.count(1)


class Plane(StrEnum):
    AXIAL = "axial"
    CORONAL = "coronal"
    SAGITTAL = "sagittal"

    @property
    def normal_axis(self) -> int:
        """Display axis (x=0, y=1, z=2) across the plane."""
        return {Plane.AXIAL: 2, Plane.CORONAL: 1, Plane.SAGITTAL: 0}[self]

    @property
    def in_plane_axes(self) -> tuple[int, int]:
        """(column axis, row axis) shown on screen."""
        return {Plane.AXIAL: (0, 1), Plane.CORONAL: (0, 2), Plane.SAGITTAL: (1, 2)}[self]


class Shape(StrEnum):
    DISTANCE = "distance"
    RECTANGLE = "rectangle"
    ELLIPSE = "ellipse"
    ANGLE = "angle"
    COBB = "cobb"
    ARROW = "arrow"
    POINT = "point"
    FREEHAND = "freehand"

    @property
    def n_points(self) -> int | None:
        """Points a finished measurement of this shape has (None: as many as drawn)."""
        return {"angle": 3, "cobb": 4, "point": 1, "freehand": None}.get(self.value, 2)

    @property
    def is_roi(self) -> bool:
        """An area with statistics of the voxels inside."""
        return self in (Shape.RECTANGLE, Shape.ELLIPSE, Shape.FREEHAND)


Point = tuple[float, float, float]


@dataclass(frozen=True)
class RoiStats:
    mean: float
    sd: float
    minimum: float
    maximum: float
    area_mm2: float
    count: int


@dataclass(eq=False)
class Measurement:
    """A ruler, angle, ROI, arrow or marker on one plane, in display voxel coordinates.

    ``points``: a ruler's and an arrow's two ends (the arrow points at the first); a rectangle's
    or ellipse's opposite corners; an angle's three points (the vertex in the middle); a Cobb
    angle's two lines (four points); a marker's one point; a freehand ROI's outline.
    ``label`` is the user's text (an arrow's caption).
    """

    shape: Shape
    plane: Plane
    points: list[Point]
    label: str = ""
    id: int = field(default_factory=lambda: next(_ids))

    @property
    def p1(self) -> Point:
        return self.points[0]

    @property
    def p2(self) -> Point:
        return self.points[-1]

    @property
    def complete(self) -> bool:
        n = self.shape.n_points
        return len(self.points) >= 3 if n is None else len(self.points) == n

    def centre(self) -> Point:
        c = np.asarray(self.points, dtype=np.float64).mean(axis=0)
        return (float(c[0]), float(c[1]), float(c[2]))

    def length_mm(self, spacing_xyz: tuple[float, float, float]) -> float:
        d = (np.asarray(self.p2) - np.asarray(self.p1)) * np.asarray(spacing_xyz)
        return float(np.linalg.norm(d))

    def angle_deg(self, spacing_xyz: tuple[float, float, float]) -> float:
        """An angle's opening at its vertex; a Cobb angle between its two lines (0–90°)."""
        pts = np.asarray(self.points, dtype=np.float64) * np.asarray(spacing_xyz)
        if self.shape == Shape.ANGLE and len(pts) == 3:
            a, b = pts[0] - pts[1], pts[2] - pts[1]
            return _angle_between(a, b)
        if self.shape == Shape.COBB and len(pts) == 4:
            angle = _angle_between(pts[1] - pts[0], pts[3] - pts[2])
            return min(angle, 180.0 - angle)
        raise ValueError(f"a {self.shape.value} has no angle")

    def lies_on(self, plane: Plane, slice_index: float) -> bool:
        """Whether every point lies within half a voxel of that plane's current slice."""
        axis = plane.normal_axis
        return all(abs(p[axis] - slice_index) <= 0.5 for p in self.points)

    def roi_mask(self, rows: int, cols: int) -> npt.NDArray[np.bool_]:
        """Voxels of the plane whose centres fall inside the ROI (plane array ``[row, col]``)."""
        ca, ra = self.plane.in_plane_axes
        rr, cc = np.ogrid[:rows, :cols]
        if self.shape == Shape.FREEHAND:
            return _inside_polygon([(p[ca], p[ra]) for p in self.points], rows, cols)
        c0, c1 = sorted((self.p1[ca], self.p2[ca]))
        r0, r1 = sorted((self.p1[ra], self.p2[ra]))
        if self.shape == Shape.RECTANGLE:
            return (cc >= c0) & (cc <= c1) & (rr >= r0) & (rr <= r1)
        a, b = max((c1 - c0) / 2, 1e-9), max((r1 - r0) / 2, 1e-9)
        return ((cc - (c0 + c1) / 2) / a) ** 2 + ((rr - (r0 + r1) / 2) / b) ** 2 <= 1.0

    def area_mm2(self, spacing_xyz: tuple[float, float, float]) -> float:
        ca, ra = self.plane.in_plane_axes
        if self.shape == Shape.FREEHAND:
            xs = np.array([p[ca] for p in self.points]) * spacing_xyz[ca]
            ys = np.array([p[ra] for p in self.points]) * spacing_xyz[ra]
            return float(abs(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1))) / 2)  # shoelace
        w = abs(self.p2[ca] - self.p1[ca]) * spacing_xyz[ca]
        h = abs(self.p2[ra] - self.p1[ra]) * spacing_xyz[ra]
        return float(w * h if self.shape == Shape.RECTANGLE else np.pi * w * h / 4)

    def stats(self, plane_values: npt.NDArray[Any], spacing_xyz: tuple[float, float, float]) -> RoiStats:
        """Statistics of ``plane_values[row, col]`` (the ROI's slice) inside the ROI."""
        mask = self.roi_mask(*plane_values.shape[:2])
        inside = plane_values[mask].astype(np.float64)
        if inside.size == 0:
            nan = float("nan")
            return RoiStats(nan, nan, nan, nan, self.area_mm2(spacing_xyz), 0)
        return RoiStats(
            float(inside.mean()),
            float(inside.std()),
            float(inside.min()),
            float(inside.max()),
            self.area_mm2(spacing_xyz),
            int(inside.size),
        )

    def copy(self) -> Measurement:
        return Measurement(self.shape, self.plane, list(self.points), self.label, self.id)


def _angle_between(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0 or nb == 0:
        return float("nan")
    return float(np.degrees(np.arccos(np.clip(np.dot(a, b) / (na * nb), -1.0, 1.0))))


def _inside_polygon(vertices: list[tuple[float, float]], rows: int, cols: int) -> npt.NDArray[np.bool_]:
    """Voxel centres inside a closed polygon of (column, row) vertices (even-odd rule)."""
    rr, cc = np.mgrid[:rows, :cols].astype(np.float64)
    inside = np.zeros((rows, cols), dtype=bool)
    n = len(vertices)
    for m in range(n):
        (x1, y1), (x2, y2) = vertices[m], vertices[(m + 1) % n]
        if y1 == y2:
            continue
        crosses = (y1 > rr) != (y2 > rr)
        x_at = x1 + (rr - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (cc < x_at)
    return inside


def hit_test(
    measurements: Any, plane: Plane, slice_index: int, point: Point, tolerance: float
) -> tuple[Measurement, int | None] | None:
    """The measurement under ``point`` on this plane's slice, and the index of the handle (one of
    its points) under it, or None for its body; None when nothing is within ``tolerance``
    (display voxels). Handles win over bodies, the newest measurement over older ones."""
    ca, ra = plane.in_plane_axes
    here = np.array([point[ca], point[ra]])
    shown = [m for m in measurements if m.plane == plane and m.lies_on(plane, slice_index)]
    for m in reversed(shown):
        for n, p in enumerate(m.points):
            if np.hypot(p[ca] - here[0], p[ra] - here[1]) <= tolerance:
                return m, n
    for m in reversed(shown):
        pts = np.array([[p[ca], p[ra]] for p in m.points])
        if m.shape.is_roi:
            if m.shape == Shape.FREEHAND:
                inside = _point_in_polygon(pts, here)
            else:
                lo, hi = pts.min(axis=0) - tolerance, pts.max(axis=0) + tolerance
                inside = bool(np.all(here >= lo) and np.all(here <= hi))
            if inside:
                return m, None
        elif len(pts) >= 2 and min(_segment_distance(here, a, b) for a, b in _segments(m, pts)) <= tolerance:
            return m, None
    return None


def _segments(m: Measurement, pts: npt.NDArray[np.float64]) -> list[tuple[Any, Any]]:
    if m.shape == Shape.COBB and len(pts) == 4:
        return [(pts[0], pts[1]), (pts[2], pts[3])]
    return [(pts[n], pts[n + 1]) for n in range(len(pts) - 1)]


def _segment_distance(p: npt.NDArray[np.float64], a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> float:
    ab = b - a
    t = 0.0 if not ab.any() else float(np.clip(np.dot(p - a, ab) / np.dot(ab, ab), 0.0, 1.0))
    return float(np.linalg.norm(p - (a + t * ab)))


def _point_in_polygon(vertices: npt.NDArray[np.float64], p: npt.NDArray[np.float64]) -> bool:
    inside = False
    n = len(vertices)
    for m in range(n):
        (x1, y1), (x2, y2) = vertices[m], vertices[(m + 1) % n]
        if (y1 > p[1]) != (y2 > p[1]) and p[0] < x1 + (p[1] - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


class MeasurementList:
    """The open volume's measurements; ``changed`` fires after every edit (the edit history and
    the autosave listen to it)."""

    def __init__(self) -> None:
        self._items: list[Measurement] = []
        self.changed: Event[[]] = Event()

    def __iter__(self) -> Any:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def get(self, mid: int) -> Measurement | None:
        return next((m for m in self._items if m.id == mid), None)

    def add(self, m: Measurement) -> Measurement:
        self._items.append(m)
        self.changed.emit()
        return m

    def update(self, m: Measurement, p2: Point) -> None:
        """Move the last point (while a shape is drawn)."""
        m.points[-1] = p2
        self.changed.emit()

    def set_point(self, m: Measurement, index: int, p: Point) -> None:
        m.points[index] = p
        self.changed.emit()

    def append_point(self, m: Measurement, p: Point) -> None:
        m.points.append(p)
        self.changed.emit()

    def move(self, m: Measurement, points: list[Point]) -> None:
        """Give ``m`` new points (a move or a resize)."""
        m.points = list(points)
        self.changed.emit()

    def relabel(self, m: Measurement, label: str) -> None:
        m.label = label
        self.changed.emit()

    def remove(self, m: Measurement) -> None:
        self._items.remove(m)
        self.changed.emit()

    def replace_all(self, items: list[Measurement]) -> None:
        """Every measurement at once (undo, redo, a restored study): one ``changed``."""
        self._items = list(items)
        self.changed.emit()

    def clear(self) -> None:
        self._items.clear()
        self.changed.emit()
