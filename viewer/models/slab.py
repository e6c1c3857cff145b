"""Thick-slab projections: MIP, MinIP or the average over a slab of slices around the cursor. No Qt.

A CT-lung reader searches for nodules on a 10–20 mm axial MIP, where a vessel stays a line and
a nodule a blob; MinIP shows airways and emphysema; the average is a thick, low-noise slice.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Slab", "SlabMode", "project", "slab_range"]


class SlabMode(StrEnum):
    OFF = "off"
    MIP = "mip"
    MINIP = "minip"
    AVERAGE = "average"

    @property
    def label(self) -> str:
        return {"off": "", "mip": "MIP", "minip": "MinIP", "average": "Average"}[self.value]


@dataclass(frozen=True)
class Slab:
    """How each plane is drawn: one slice (``OFF``) or a projection over ``thickness_mm``."""

    mode: SlabMode = SlabMode.OFF
    thickness_mm: float = 15.0

    def __post_init__(self) -> None:
        if not np.isfinite(self.thickness_mm) or self.thickness_mm <= 0:
            raise ValueError(f"a slab's thickness must be a positive number of mm, got {self.thickness_mm}")

    @property
    def active(self) -> bool:
        return self.mode is not SlabMode.OFF


def slab_range(index: int, n: int, thickness_mm: float, spacing_mm: float) -> tuple[int, int]:
    """The slices ``[lo, hi)`` of a slab of ``thickness_mm`` centred on slice ``index``: those whose
    centres lie within half the thickness of its centre (at least the slice itself; cut at the
    volume's ends)."""
    half = int(np.floor(thickness_mm / spacing_mm / 2 + 1e-9))
    return max(0, index - half), min(n, index + half + 1)


def project(stack: npt.NDArray[Any], mode: SlabMode, axis: int = 0) -> npt.NDArray[Any]:
    """Project ``stack`` along ``axis`` (its slices' axis); the result is C-contiguous.

    MIP and MinIP keep the stored type (exact values, as a reader expects from a MIP); the
    average is float32.
    """
    if mode is SlabMode.MIP:
        out = stack.max(axis=axis)
    elif mode is SlabMode.MINIP:
        out = stack.min(axis=axis)
    elif mode is SlabMode.AVERAGE:
        out = stack.mean(axis=axis, dtype=np.float32)
    else:
        raise ValueError(f"no projection for slab mode {mode!r}")
    return np.ascontiguousarray(out)
