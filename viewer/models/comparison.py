"""A second study beside the first: which of its slices matches the slice on screen. No Qt.

Slices are matched by their position along the plane's normal in patient space (mm). Two series
on one frame of reference share patient coordinates, so the matching slice is the one at the
same position. Otherwise their coordinates are unrelated: the reader scrolls the second pane to
the slice that matches once, which sets an offset, and from then on both move in step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from .measurements import Plane
from .viewer_model import OpenVolume

__all__ = ["Comparison", "slice_positions"]


def slice_positions(cur: OpenVolume, plane: Plane, normal: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Every slice's position (mm) along ``normal`` (an LPS unit vector), at the plane's centre."""
    axis = plane.normal_axis
    n = cur.shape_xyz[axis]
    centre = np.asarray(cur.shape_xyz, dtype=np.float64) / 2
    points = np.repeat(centre[None, :], n, axis=0)
    points[:, axis] = np.arange(n)
    ijk = np.array([cur.axis_map.display_to_source(p, cur.volume.size_ijk) for p in points])
    return np.asarray(cur.volume.index_to_lps(ijk) @ normal, dtype=np.float64)


@dataclass
class Comparison:
    """The second study of a comparison and how its slices follow the first's."""

    other: OpenVolume
    same_frame: bool
    offset_mm: dict[Plane, float] = field(default_factory=dict)  # other's position − main's, per plane
    _positions: dict[tuple[int, Plane], npt.NDArray[np.float64]] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, main: OpenVolume, other: OpenVolume) -> Comparison:
        a, b = main.volume.metadata.frame_of_reference_uid, other.volume.metadata.frame_of_reference_uid
        return cls(other, bool(a) and a == b)

    def _normal(self, main: OpenVolume, plane: Plane) -> npt.NDArray[np.float64]:
        return np.asarray(main.directions_xyz[:, plane.normal_axis], dtype=np.float64)

    def positions(self, cur: OpenVolume, main: OpenVolume, plane: Plane) -> npt.NDArray[np.float64]:
        """``cur``'s slice positions along ``main``'s plane normal (computed once per volume)."""
        key = (id(cur), plane)
        if key not in self._positions:
            self._positions[key] = slice_positions(cur, plane, self._normal(main, plane))
        return self._positions[key]

    def main_position(self, main: OpenVolume, plane: Plane, index: int) -> float:
        return float(self.positions(main, main, plane)[index])

    def index_for(self, main: OpenVolume, plane: Plane, index: int) -> int:
        """The second study's slice that matches the first's slice ``index`` on ``plane``.

        Without a shared frame of reference and before the reader aligned them, the second
        study's middle slice matches the first's slice shown when they were put side by side.
        """
        here = self.main_position(main, plane, index)
        theirs = self.positions(self.other, main, plane)
        if plane not in self.offset_mm:
            self.offset_mm[plane] = 0.0 if self.same_frame else float(theirs[len(theirs) // 2] - here)
        return int(np.argmin(np.abs(theirs - (here + self.offset_mm[plane]))))

    def align(self, main: OpenVolume, plane: Plane, index: int, other_index: int) -> None:
        """The reader says the first's slice ``index`` matches the second's ``other_index``."""
        theirs = self.positions(self.other, main, plane)
        other_index = int(np.clip(other_index, 0, len(theirs) - 1))
        self.offset_mm[plane] = float(theirs[other_index] - self.main_position(main, plane, index))
