"""Overlay layers on the grid of a volume: label maps and heatmaps. No Qt."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.display.colormaps import HEATMAP_COLORMAPS
from inference.errors import RadLensError
from inference.volume import Volume

from .events import Event

#: Distinct label colours (RGB), cycled for labels beyond the table.
LABEL_COLOURS: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
)


_ids = itertools.count(1)


class GridMismatchError(RadLensError):
    """An overlay whose grid is not the volume's: refused with the reason."""


def voxels_on_grid(overlay: Volume, volume: Volume, *, atol_mm: float = 1e-3) -> npt.NDArray[Any]:
    """``overlay``'s voxels in ``volume``'s ``[k, j, i]`` order, or :class:`GridMismatchError`.

    The same physical grid stored in another axis order or direction (a mask written flipped,
    or transposed, with an affine to match) is the same grid: its voxels are permuted and
    flipped onto the image's, never resampled. Any other placement is refused with the reason.
    """
    order = _axis_mapping(overlay, volume, atol_mm)
    if order is None:
        if sorted(overlay.shape) != sorted(volume.shape):
            raise GridMismatchError(
                f"the mask has {overlay.shape[::-1]} voxels (i, j, k) but the image has {volume.shape[::-1]}"
            )
        worst = _worst_corner_mm(overlay.affine, volume.affine, volume.size_ijk)
        raise GridMismatchError(
            f"the mask is placed differently in patient space (up to {worst:.3g} mm apart); "
            "resample it onto the image grid first"
        )
    perm, flips = order
    ijk = np.asarray(overlay.voxels).transpose(2, 1, 0)
    ijk = ijk.transpose(perm)
    flip_axes = tuple(a for a in range(3) if flips[a])
    if flip_axes:
        ijk = np.flip(ijk, axis=flip_axes)
    return np.ascontiguousarray(ijk.transpose(2, 1, 0))


def _worst_corner_mm(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64], size_ijk: tuple[int, int, int]) -> float:
    """The largest distance between two affines' images of the grid's corners (mm)."""
    corners = np.array([[i, j, k, 1.0] for i in (0, size_ijk[0]) for j in (0, size_ijk[1]) for k in (0, size_ijk[2])])
    return float(np.max(np.linalg.norm(((a - b) @ corners.T)[:3], axis=0)))


def _axis_mapping(
    overlay: Volume, volume: Volume, atol_mm: float
) -> tuple[tuple[int, int, int], tuple[bool, bool, bool]] | None:
    """For each of the image's axes, the overlay's axis that runs along it and whether reversed,
    when the overlay's voxel centres are the image's (within ``atol_mm``); else None."""
    try:
        to_image = np.linalg.inv(volume.affine) @ overlay.affine
    except np.linalg.LinAlgError:
        return None
    rot = np.rint(to_image[:3, :3])
    if not (np.all(np.abs(rot).sum(axis=0) == 1) and np.all(np.abs(rot).sum(axis=1) == 1)):
        return None  # not a signed permutation: another spacing or a rotated grid
    perm = tuple(int(np.flatnonzero(rot[a])[0]) for a in range(3))
    flips = tuple(bool(rot[a, perm[a]] < 0) for a in range(3))
    size_overlay, size_image = overlay.size_ijk, volume.size_ijk
    if any(size_overlay[perm[a]] != size_image[a] for a in range(3)):
        return None
    expected = np.eye(4)
    expected[:3, :3] = rot
    expected[:3, 3] = [(size_image[a] - 1) if flips[a] else 0 for a in range(3)]
    if _worst_corner_mm(overlay.affine, volume.affine @ expected, size_overlay) > atol_mm:
        return None
    return (perm[0], perm[1], perm[2]), (flips[0], flips[1], flips[2])


@dataclass(eq=False)
class Layer:
    name: str
    opacity: float = 0.5
    visible: bool = True
    id: int = field(default_factory=lambda: next(_ids))
    changed: Event[[]] = field(default_factory=Event, repr=False)

    def set(self, **values: Any) -> None:
        """Change properties and notify once."""
        for key, value in values.items():
            if not hasattr(self, key):
                raise AttributeError(f"{type(self).__name__} has no property {key!r}")
            setattr(self, key, value)
        self.changed.emit()


@dataclass(eq=False)
class LabelLayer(Layer):
    """Integer labels ``[k, j, i]`` (0 = background) with names and colours."""

    labels: npt.NDArray[np.integer[Any]] = field(default_factory=lambda: np.zeros((1, 1, 1), np.uint8))
    names: dict[int, str] = field(default_factory=dict)
    colours: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    hidden_labels: set[int] = field(default_factory=set)
    outline: bool = False

    def __post_init__(self) -> None:
        present = [int(v) for v in np.unique(self.labels) if v != 0]
        if any(v < 0 or v > 255 for v in present):
            raise ValueError(f"label values must lie in 1..255, got {min(present)}..{max(present)}")
        if self.labels.dtype != np.uint8:
            self.labels = self.labels.astype(np.uint8)
        for n, value in enumerate(present):
            self.colours.setdefault(value, LABEL_COLOURS[n % len(LABEL_COLOURS)])
            self.names.setdefault(value, f"label {value}")

    def lut(self) -> npt.NDArray[np.uint8]:
        """256×4 RGBA table: hidden labels and background transparent."""
        table = np.zeros((256, 4), dtype=np.uint8)
        for value, (r, g, b) in self.colours.items():
            if value not in self.hidden_labels:
                table[value] = (r, g, b, 255)
        return table


@dataclass(eq=False)
class HeatmapLayer(Layer):
    """A float map ``[k, j, i]`` (probability, Grad-CAM…) drawn through a colormap."""

    values: npt.NDArray[np.floating[Any]] = field(default_factory=lambda: np.zeros((1, 1, 1), np.float32))
    colormap: str = "inferno"
    levels: tuple[float, float] = (0.0, 1.0)
    threshold: float = 0.0
    units: str = ""

    def __post_init__(self) -> None:
        if self.values.dtype != np.float32:
            self.values = self.values.astype(np.float32)
        if self.colormap not in HEATMAP_COLORMAPS:
            raise ValueError(f"unknown colormap {self.colormap!r}; choose one of {', '.join(HEATMAP_COLORMAPS)}")


class LayerList:
    """The ordered overlays of the open volume (first drawn first, i.e. lowest)."""

    def __init__(self) -> None:
        self._layers: list[Layer] = []
        self.changed: Event[[]] = Event()

    def __iter__(self) -> Any:
        return iter(list(self._layers))

    def __len__(self) -> int:
        return len(self._layers)

    def __getitem__(self, index: int) -> Layer:
        return self._layers[index]

    def add(self, layer: Layer) -> Layer:
        self._layers.append(layer)
        layer.changed.connect(self.changed.emit)
        self.changed.emit()
        return layer

    def remove(self, layer: Layer) -> None:
        self._layers.remove(layer)
        layer.changed.disconnect(self.changed.emit)
        self.changed.emit()

    def move(self, layer: Layer, index: int) -> None:
        self._layers.remove(layer)
        self._layers.insert(max(0, min(index, len(self._layers))), layer)
        self.changed.emit()

    def clear(self) -> None:
        for layer in list(self._layers):
            layer.changed.disconnect(self.changed.emit)
        self._layers.clear()
        self.changed.emit()
