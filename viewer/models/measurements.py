"""Distance rulers and rectangle/ellipse ROIs, in display voxel coordinates of one plane. No Qt.

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
    """A ruler (two points) or an ROI (two opposite corners) on one plane."""

    shape: Shape
    plane: Plane
    p1: tuple[float, float, float]
    p2: tuple[float, float, float]
    id: int = field(default_factory=lambda: next(_ids))

    def length_mm(self, spacing_xyz: tuple[float, float, float]) -> float:
        d = (np.asarray(self.p2) - np.asarray(self.p1)) * np.asarray(spacing_xyz)
        return float(np.linalg.norm(d))

    def lies_on(self, plane: Plane, slice_index: float) -> bool:
        """Whether every point lies within half a voxel of that plane's current slice."""
        axis = plane.normal_axis
        return abs(self.p1[axis] - slice_index) <= 0.5 and abs(self.p2[axis] - slice_index) <= 0.5

    def roi_mask(self, rows: int, cols: int) -> npt.NDArray[np.bool_]:
        """Voxels of the plane whose centres fall inside the ROI (plane array ``[row, col]``)."""
        ca, ra = self.plane.in_plane_axes
        c0, c1 = sorted((self.p1[ca], self.p2[ca]))
        r0, r1 = sorted((self.p1[ra], self.p2[ra]))
        rr, cc = np.ogrid[:rows, :cols]
        if self.shape == Shape.RECTANGLE:
            return (cc >= c0) & (cc <= c1) & (rr >= r0) & (rr <= r1)
        a, b = max((c1 - c0) / 2, 1e-9), max((r1 - r0) / 2, 1e-9)
        return ((cc - (c0 + c1) / 2) / a) ** 2 + ((rr - (r0 + r1) / 2) / b) ** 2 <= 1.0

    def area_mm2(self, spacing_xyz: tuple[float, float, float]) -> float:
        ca, ra = self.plane.in_plane_axes
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


class MeasurementList:
    def __init__(self) -> None:
        self._items: list[Measurement] = []
        self.changed: Event[[]] = Event()

    def __iter__(self) -> Any:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def add(self, m: Measurement) -> Measurement:
        self._items.append(m)
        self.changed.emit()
        return m

    def update(self, m: Measurement, p2: tuple[float, float, float]) -> None:
        m.p2 = p2
        self.changed.emit()

    def remove(self, m: Measurement) -> None:
        self._items.remove(m)
        self.changed.emit()

    def clear(self) -> None:
        self._items.clear()
        self.changed.emit()
