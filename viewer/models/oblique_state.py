"""Which pane's crosshair is rotated, and by how much: the state of an oblique MPR. No Qt."""

from __future__ import annotations

from dataclasses import dataclass

from .measurements import Plane

__all__ = ["Oblique"]


@dataclass(frozen=True)
class Oblique:
    """The pane whose crosshair is rotated, and by how much (degrees, counter-clockwise on screen)."""

    source: Plane
    angle_deg: float

    def affects(self, plane: Plane) -> bool:
        return plane != self.source and abs(self.angle_deg) > 1e-9
