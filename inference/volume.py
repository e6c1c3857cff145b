"""The one volume type of RadLens.

Axis order, stated once for the whole project: ``voxels[k, j, i]`` where ``i`` runs along
an image row (the column index), ``j`` down the columns (the row index) and ``k`` across
slices. ``spacing``, ``direction`` columns and every index triple are given in ``(i, j, k)``
order, as in ITK. Patient coordinates are DICOM LPS in millimetres::

    position = origin + direction @ diag(spacing) @ (i, j, k)

A 4-D acquisition (time, diffusion, echoes…) is one Volume whose ``voxels`` are ``(t, k, j, i)``
and whose ``frames`` say what each of the ``t`` volumes is; a 4-D array *without* ``frames`` is
a colour volume ``(k, j, i, c)``. ``frames`` is the one thing that tells the two apart. Code that
works on one 3-D volume (engine, viewer planes, exports) takes :meth:`Volume.frame` first.

Slices that do not lie on a regular grid (a gap left by a missing file, uneven spacing) keep
their real positions in ``slice_positions``: then the position of integer slice ``k`` is its
header's, and :meth:`Volume.index_to_lps` / :meth:`Volume.lps_to_index` follow those positions
(``affine`` is the regular grid through the first slice, and is not the truth for such a stack).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class WindowPreset:
    """A display window from the file or a preset list: centre and width in stored units."""

    center: float
    width: float
    name: str = ""


@dataclass(frozen=True)
class VolumeMetadata:
    """What a viewer shows about a volume. Identifying fields stay out of logs."""

    modality: str = ""
    patient_name: str = ""
    patient_id: str = ""
    study_description: str = ""
    series_description: str = ""
    study_date: str = ""
    series_date: str = ""
    study_uid: str = ""
    series_uid: str = ""
    frame_of_reference_uid: str = ""
    units: str = ""
    windows: tuple[WindowPreset, ...] = ()
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class FourthAxis(StrEnum):
    """What the fourth, non-spatial axis of a 4-D acquisition runs over."""

    TIME = "time"
    DIFFUSION = "diffusion"
    ECHO = "echo"
    DIMENSION = "dimension"  # an enhanced object's dimension index with no other known meaning


@dataclass(frozen=True)
class VolumeFrame:
    """One 3-D volume of a 4-D acquisition: its place on the fourth axis and what is known of it."""

    axis: FourthAxis
    index: int
    #: The value along ``axis``: seconds from the first volume (time), the b-value (diffusion),
    #: the echo time in ms (echo), the dimension index (dimension).
    value: float
    b_value: float | None = None
    #: Diffusion gradient direction, a unit vector in patient LPS (zero for b = 0).
    gradient: tuple[float, float, float] | None = None
    echo_time: float | None = None  # ms
    acquisition_time: float | None = None  # seconds since midnight
    trigger_time: float | None = None  # ms

    @property
    def label(self) -> str:
        """Short text for annotations, e.g. ``t = 2.50 s`` or ``b = 1000``."""
        if self.axis is FourthAxis.DIFFUSION:
            return f"b = {self.value:g}"
        if self.axis is FourthAxis.ECHO:
            return f"TE = {self.value:g} ms"
        if self.axis is FourthAxis.TIME:
            return f"t = {self.value:.2f} s"
        return f"index {self.value:g}"


@dataclass(frozen=True, eq=False)
class Volume:
    """Voxels on a regular grid placed in patient LPS space."""

    voxels: npt.NDArray[Any]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: npt.NDArray[np.float64]
    metadata: VolumeMetadata = field(default_factory=VolumeMetadata)
    qa_warnings: tuple[str, ...] = ()
    #: Per-volume meaning of a 4-D acquisition (``voxels`` are then ``(t, k, j, i)``); empty for 3-D.
    frames: tuple[VolumeFrame, ...] = ()
    #: ``(k, 3)`` LPS positions of each slice's first voxel when they are off the regular grid.
    slice_positions: npt.NDArray[np.float64] | None = None

    def __post_init__(self) -> None:
        if self.voxels.ndim not in (3, 4):
            raise ValueError(
                f"voxels must be 3-D (k, j, i), 4-D (t, k, j, i) with frames, or colour (k, j, i, c); "
                f"got shape {self.voxels.shape}"
            )
        if self.frames and (self.voxels.ndim != 4 or len(self.frames) != self.voxels.shape[0]):
            raise ValueError(f"{len(self.frames)} frame(s) for voxels of shape {self.voxels.shape}")
        if self.slice_positions is not None:
            positions = np.asarray(self.slice_positions, dtype=np.float64)
            if positions.shape != (self.shape[0], 3):
                raise ValueError(f"slice_positions must be ({self.shape[0]}, 3), got {positions.shape}")
            object.__setattr__(self, "slice_positions", positions)
        direction = np.asarray(self.direction, dtype=np.float64)
        if direction.shape != (3, 3):
            raise ValueError(f"direction must be 3x3, got shape {direction.shape}")
        object.__setattr__(self, "direction", direction)
        if any(not np.isfinite(s) or s <= 0 for s in self.spacing):
            raise ValueError(f"spacing must be positive and finite, got {self.spacing}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(k, j, i)``: slices, rows, columns (of each volume of a 4-D acquisition)."""
        k, j, i = self.voxels.shape[1:4] if self.frames else self.voxels.shape[:3]
        return (k, j, i)

    @property
    def is_4d(self) -> bool:
        """Whether this holds several volumes of one acquisition (``voxels`` ``(t, k, j, i)``)."""
        return bool(self.frames)

    @property
    def n_volumes(self) -> int:
        return len(self.frames) if self.frames else 1

    @property
    def is_colour(self) -> bool:
        return self.voxels.ndim == 4 and not self.frames

    def frame(self, n: int) -> Volume:
        """Volume ``n`` of a 4-D acquisition as a 3-D Volume (``frame(0)`` of a 3-D one is itself).

        Its metadata's ``extra["frame"]`` holds the :class:`VolumeFrame` it came from."""
        if not self.frames:
            if n != 0:
                raise IndexError(f"a 3-D volume has only frame 0, not {n}")
            return self
        if not -len(self.frames) <= n < len(self.frames):
            raise IndexError(f"frame {n} of {len(self.frames)}")
        chosen = self.frames[n]
        metadata = replace(self.metadata, extra={**self.metadata.extra, "frame": chosen})
        return replace(self, voxels=self.voxels[n], frames=(), metadata=metadata)

    @property
    def regular(self) -> bool:
        """Whether every slice lies where :attr:`affine` puts it (no ``slice_positions``)."""
        return self.slice_positions is None

    @property
    def size_ijk(self) -> tuple[int, int, int]:
        k, j, i = self.shape
        return (i, j, k)

    @property
    def affine(self) -> npt.NDArray[np.float64]:
        """4×4 matrix mapping ``(i, j, k, 1)`` to LPS millimetres."""
        out = np.eye(4)
        out[:3, :3] = self.direction * np.asarray(self.spacing)[None, :]
        out[:3, 3] = self.origin
        return out

    def index_to_lps(self, ijk: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Map one ``(i, j, k)`` triple, or an ``(n, 3)`` array of them, to LPS mm.

        With ``slice_positions``, slice ``k`` is placed at its own position (fractional ``k``
        between its neighbours, linearly; beyond the ends along the nearest step)."""
        pts = np.atleast_2d(np.asarray(ijk, dtype=np.float64))
        if self.slice_positions is None:
            out = pts @ self.affine[:3, :3].T + self.affine[:3, 3]
        else:
            in_plane = self.direction[:, :2] * np.asarray(self.spacing[:2])[None, :]
            out = pts[:, :2] @ in_plane.T + self._slice_origin(pts[:, 2])
        return out[0] if np.ndim(ijk) == 1 else out

    def lps_to_index(self, lps: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Map LPS mm (one point or ``(n, 3)``) to continuous ``(i, j, k)`` indices."""
        pts = np.atleast_2d(np.asarray(lps, dtype=np.float64))
        if self.slice_positions is None:
            inv = np.asarray(np.linalg.inv(self.affine), dtype=np.float64)
            out: npt.NDArray[np.float64] = pts @ inv[:3, :3].T + inv[:3, 3]
        else:
            normal = np.cross(self.direction[:, 0], self.direction[:, 1])
            along = (self.slice_positions - self.slice_positions[0]) @ normal
            k = _interp_extrapolate((pts - self.slice_positions[0]) @ normal, along)
            rel = pts - self._slice_origin(k)
            in_plane = self.direction[:, :2] * np.asarray(self.spacing[:2])[None, :]
            ij = np.linalg.lstsq(in_plane, rel.T, rcond=None)[0].T
            out = np.column_stack([ij, k])
        return out[0] if np.ndim(lps) == 1 else out

    def _slice_origin(self, k: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Position of voxel ``(0, 0, k)`` from ``slice_positions``, ``k`` continuous."""
        assert self.slice_positions is not None
        positions = self.slice_positions
        n = len(positions)
        if n == 1:
            step = self.direction[:, 2] * self.spacing[2]
            single: npt.NDArray[np.float64] = positions[0] + k[:, None] * step[None, :]
            return single
        lower = np.clip(np.floor(k).astype(np.int64), 0, n - 2)
        frac = (k - lower)[:, None]
        out: npt.NDArray[np.float64] = positions[lower] + frac * (positions[lower + 1] - positions[lower])
        return out

    def with_voxels(self, voxels: npt.NDArray[Any]) -> Volume:
        """The same geometry and metadata with other voxels of the same grid: ``(t, k, j, i)`` of
        as many volumes keeps the frames; anything else (a 3-D mask of a 4-D volume) drops them."""
        four_d = bool(self.frames) and voxels.ndim == 4 and voxels.shape[0] == len(self.frames)
        spatial = voxels.shape[1:4] if four_d else voxels.shape[:3]
        if spatial != self.shape:
            raise ValueError(f"voxels shape {voxels.shape} does not match grid {self.shape}")
        return replace(self, voxels=voxels, frames=self.frames if four_d else ())

    @property
    def nbytes(self) -> int:
        return int(self.voxels.nbytes)


def _interp_extrapolate(x: npt.NDArray[np.float64], xp: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The continuous index of ``x`` among increasing (or decreasing) ``xp`` = 0, 1, …, linear
    between them and along the end steps beyond them."""
    n = len(xp)
    if n == 1:
        return np.zeros_like(x)
    if xp[-1] < xp[0]:
        return _interp_extrapolate(-x, -xp)
    idx = np.clip(np.searchsorted(xp, x, side="right") - 1, 0, n - 2)
    out: npt.NDArray[np.float64] = idx + (x - xp[idx]) / (xp[idx + 1] - xp[idx])
    return out
