"""The one volume type of RadLens.

Axis order, stated once for the whole project: ``voxels[k, j, i]`` where ``i`` runs along
an image row (the column index), ``j`` down the columns (the row index) and ``k`` across
slices. ``spacing``, ``direction`` columns and every index triple are given in ``(i, j, k)``
order, as in ITK. Patient coordinates are DICOM LPS in millimetres::

    position = origin + direction @ diag(spacing) @ (i, j, k)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
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


@dataclass(frozen=True, eq=False)
class Volume:
    """Voxels on a regular grid placed in patient LPS space."""

    voxels: npt.NDArray[Any]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: npt.NDArray[np.float64]
    metadata: VolumeMetadata = field(default_factory=VolumeMetadata)
    qa_warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.voxels.ndim not in (3, 4):
            raise ValueError(f"voxels must be 3-D (k, j, i) or 4-D with colour last, got shape {self.voxels.shape}")
        direction = np.asarray(self.direction, dtype=np.float64)
        if direction.shape != (3, 3):
            raise ValueError(f"direction must be 3x3, got shape {direction.shape}")
        object.__setattr__(self, "direction", direction)
        if any(not np.isfinite(s) or s <= 0 for s in self.spacing):
            raise ValueError(f"spacing must be positive and finite, got {self.spacing}")

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(k, j, i)``: slices, rows, columns."""
        k, j, i = self.voxels.shape[:3]
        return (k, j, i)

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
        """Map one ``(i, j, k)`` triple, or an ``(n, 3)`` array of them, to LPS mm."""
        pts = np.atleast_2d(np.asarray(ijk, dtype=np.float64))
        out = pts @ self.affine[:3, :3].T + self.affine[:3, 3]
        return out[0] if np.ndim(ijk) == 1 else out

    def lps_to_index(self, lps: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Map LPS mm (one point or ``(n, 3)``) to continuous ``(i, j, k)`` indices."""
        pts = np.atleast_2d(np.asarray(lps, dtype=np.float64))
        inv = np.asarray(np.linalg.inv(self.affine), dtype=np.float64)
        out: npt.NDArray[np.float64] = pts @ inv[:3, :3].T + inv[:3, 3]
        return out[0] if np.ndim(lps) == 1 else out

    def with_voxels(self, voxels: npt.NDArray[Any]) -> Volume:
        """The same geometry and metadata with other voxels of the same grid."""
        if voxels.shape[:3] != self.shape:
            raise ValueError(f"voxels shape {voxels.shape} does not match grid {self.shape}")
        return replace(self, voxels=voxels)

    @property
    def nbytes(self) -> int:
        return int(self.voxels.nbytes)
