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


def check_same_grid(overlay: Volume, volume: Volume, *, atol_mm: float = 1e-3) -> None:
    """Raise :class:`GridMismatchError` unless ``overlay`` lies voxel for voxel on ``volume``'s grid."""
    if overlay.shape != volume.shape:
        raise GridMismatchError(
            f"the mask has {overlay.shape[::-1]} voxels (i, j, k) but the image has {volume.shape[::-1]}"
        )
    diff = np.abs(overlay.affine - volume.affine)
    corner = np.array([*volume.size_ijk, 1.0])
    worst = float(np.max(np.abs((overlay.affine - volume.affine) @ corner)))
    if worst > atol_mm or float(diff[:3, 3].max()) > atol_mm:
        raise GridMismatchError(
            f"the mask is placed differently in patient space (up to {worst:.3g} mm apart); "
            "resample it onto the image grid first"
        )


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
