"""Fast plane extraction: contiguous copies of a ``[z, y, x]`` array with a plane's normal outermost.

Slicing a z-major volume sagittally touches one element per cache line; from an x-major copy the
same image is one contiguous block, two orders of magnitude faster (figures in benchmarks/README.md,
"Figures behind design choices"). Copies are built off the GUI thread; until one exists, the plain
(slower) slice is used.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from .measurements import Plane
from .slab import SlabMode, project

#: Past this size no extra copy is kept (memory before speed).
MAX_COPY_BYTES = 2 * 1024**3

_ORDER = {Plane.AXIAL: (0, 1, 2), Plane.CORONAL: (1, 0, 2), Plane.SAGITTAL: (2, 0, 1)}


class PlaneCache:
    def __init__(self, array: npt.NDArray[Any]) -> None:
        self.array = array
        self.copies: dict[Plane, npt.NDArray[Any]] = {}

    def needs_copy(self, plane: Plane) -> bool:
        """Whether this plane's images are strided in memory (and a copy would pay off)."""
        if plane in self.copies or self.array.nbytes > MAX_COPY_BYTES:
            return False
        moved = np.transpose(self.array, (*_ORDER[plane], *range(3, self.array.ndim)))
        inner = moved.strides[2]
        return abs(inner) != self.array.itemsize * int(np.prod(self.array.shape[3:], dtype=np.int64))

    def build(self) -> None:
        """Make the copies that pay off (call from a worker thread; numpy copies release the GIL)."""
        for plane in Plane:
            if self.needs_copy(plane):
                order = (*_ORDER[plane], *range(3, self.array.ndim))
                self.copies[plane] = np.ascontiguousarray(np.transpose(self.array, order))

    def slab_image(self, plane: Plane, lo: int, hi: int, mode: SlabMode) -> npt.NDArray[Any]:
        """The projection of the plane's images ``lo..hi-1``, row 0 at the top of the screen."""
        copy = self.copies.get(plane)
        if copy is not None:
            out = project(copy[lo:hi], mode)
            return out if plane == Plane.AXIAL else np.ascontiguousarray(out[::-1])
        if plane == Plane.AXIAL:
            return project(self.array[lo:hi], mode)
        # Reduced in place along the plane's normal: no copy of the slab is made.
        slab = self.array[:, lo:hi] if plane == Plane.CORONAL else self.array[:, :, lo:hi]
        return np.ascontiguousarray(project(slab, mode, axis=1 if plane == Plane.CORONAL else 2)[::-1])

    def image(self, plane: Plane, index: int) -> npt.NDArray[Any]:
        """The plane's C-contiguous image at ``index``, row 0 at the top of the screen."""
        copy = self.copies.get(plane)
        if copy is not None:
            img = copy[index] if plane == Plane.AXIAL else copy[index][::-1]
        elif plane == Plane.AXIAL:
            img = self.array[index]
        elif plane == Plane.CORONAL:
            img = self.array[::-1, index]
        else:
            img = self.array[::-1, :, index]
        return np.ascontiguousarray(img)
