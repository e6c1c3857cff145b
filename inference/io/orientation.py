"""Viewing a volume along the patient axes closest to its own, without interpolation.

A viewer shows axial, coronal and sagittal planes. For a series acquired in any orientation,
:func:`closest_lps_axes` finds the permutation and flips of the voxel axes that bring them
closest to patient +X (left), +Y (posterior), +Z (superior); :class:`AxisMap` applies that same
re-indexing to the volume and to every overlay on its grid. Nothing is resampled, so an oblique
series is shown on its own voxels, with orientation labels computed from the true cosines.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.volume import Volume

PATIENT_LETTERS = (("R", "L"), ("A", "P"), ("I", "S"))  # negative / positive LPS axis


@dataclass(frozen=True)
class AxisMap:
    """``display[z, y, x] = source[...]``: display axis ``d`` (x=0, y=1, z=2) reads source
    ``(i, j, k)`` axis ``source_axis[d]``, reversed where ``flip[d]``."""

    source_axis: tuple[int, int, int]
    flip: tuple[bool, bool, bool]

    def apply(self, array: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """A view of a ``[k, j, i, ...]`` array re-indexed as ``[z, y, x, ...]`` (no copy)."""
        # numpy axis of source (i, j, k) axis a is 2 - a.
        order = [2 - self.source_axis[d] for d in (2, 1, 0)] + list(range(3, array.ndim))
        out = np.transpose(array, order)
        for d in range(3):
            if self.flip[d]:
                out = np.flip(out, axis=2 - d)
        return out

    def display_to_source(self, xyz: npt.ArrayLike, shape_ijk: tuple[int, int, int]) -> npt.NDArray[np.float64]:
        """Continuous display index ``(x, y, z)`` → source index ``(i, j, k)``."""
        p = np.asarray(xyz, dtype=np.float64)
        out = np.zeros(3)
        for d in range(3):
            a = self.source_axis[d]
            out[a] = (shape_ijk[a] - 1 - p[d]) if self.flip[d] else p[d]
        return out

    def source_to_display(self, ijk: npt.ArrayLike, shape_ijk: tuple[int, int, int]) -> npt.NDArray[np.float64]:
        p = np.asarray(ijk, dtype=np.float64)
        out = np.zeros(3)
        for d in range(3):
            a = self.source_axis[d]
            out[d] = (shape_ijk[a] - 1 - p[a]) if self.flip[d] else p[a]
        return out

    def display_shape(self, shape_ijk: tuple[int, int, int]) -> tuple[int, int, int]:
        """``(nx, ny, nz)``."""
        nx, ny, nz = (shape_ijk[self.source_axis[d]] for d in range(3))
        return (nx, ny, nz)

    def display_spacing(self, spacing_ijk: tuple[float, float, float]) -> tuple[float, float, float]:
        sx, sy, sz = (spacing_ijk[self.source_axis[d]] for d in range(3))
        return (sx, sy, sz)

    def display_directions(self, direction: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Unit LPS vectors of display +x, +y, +z (columns)."""
        cols = []
        for d in range(3):
            v = direction[:, self.source_axis[d]]
            cols.append(-v if self.flip[d] else v)
        return np.column_stack(cols)


def closest_lps_axes(direction: npt.NDArray[np.float64]) -> AxisMap:
    """The axis permutation and flips that best align voxel axes with patient +X, +Y, +Z."""
    d = np.asarray(direction, dtype=np.float64)
    best: tuple[float, tuple[int, int, int]] | None = None
    for perm in itertools.permutations(range(3)):
        score = sum(abs(d[axis, perm[axis]]) for axis in range(3))
        if best is None or score > best[0] + 1e-9:
            best = (score, (perm[0], perm[1], perm[2]))
    assert best is not None
    source_axis = best[1]
    flip = (
        bool(d[0, source_axis[0]] < 0),
        bool(d[1, source_axis[1]] < 0),
        bool(d[2, source_axis[2]] < 0),
    )
    return AxisMap(source_axis, flip)


def orientation_label(vector: npt.ArrayLike, threshold: float = 0.25) -> str:
    """Patient-direction letters for an LPS vector, strongest first (e.g. ``"L"``, ``"LA"``)."""
    v = np.asarray(vector, dtype=np.float64)
    order = np.argsort(-np.abs(v))
    letters = [PATIENT_LETTERS[a][1 if v[a] > 0 else 0] for a in order if abs(v[a]) >= threshold]
    return "".join(letters) or "?"


def display_volume(volume: Volume) -> tuple[AxisMap, npt.NDArray[Any]]:
    """The axis map for ``volume`` and its voxels re-indexed as ``[z, y, x]``."""
    amap = closest_lps_axes(volume.direction)
    return amap, amap.apply(volume.voxels)
