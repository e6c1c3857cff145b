"""One slice as the viewer draws it, as an RGB array: grey window, heatmap, label outlines.

The arithmetic follows pyqtgraph's ``ImageItem`` (values scaled to a 256-entry table in float32,
clipped, truncated) and Qt's source-over blending of an overlay drawn with an opacity, so a key
image matches the viewer's pixels. A slice is oriented as the viewer shows it: the volume's axes
are re-indexed to the closest patient axes (:func:`inference.io.orientation.closest_lps_axes`),
and a slice across the patient's z axis appears as the axial pane shows it (patient right on the
left of the image, anterior at the top); slices of a coronal or sagittal acquisition appear as
those panes show them (superior at the top).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.display.colormaps import heatmap_lut
from inference.display.window_level import WindowLevel, volume_window
from inference.io.orientation import AxisMap, closest_lps_axes
from inference.volume import Volume

_PLANES = {2: "axial", 1: "coronal", 0: "sagittal"}  # display axis across the plane → its name


@dataclass(frozen=True)
class SliceOrientation:
    """How a source slice ``[j, i]`` of a volume is turned into the viewer's image of it."""

    axis_map: AxisMap
    plane: str  # "axial", "coronal" or "sagittal": the viewer pane that shows a source slice
    pixel_mm: tuple[float, float]  # (column, row) size in mm of a displayed pixel

    def orient(self, image: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """A source slice ``[j, i(, c)]`` as displayed ``[row, column(, c)]``, row 0 at the top."""
        display = self.axis_map.apply(image[np.newaxis])  # [z, y, x(, c)] with one axis of length 1
        if self.plane == "axial":
            out = display[0]
        elif self.plane == "coronal":
            out = display[::-1, 0]  # rows run from superior to inferior
        else:
            out = display[::-1, :, 0]
        return np.ascontiguousarray(out)


def slice_orientation(volume: Volume) -> SliceOrientation:
    """The viewer's orientation of ``volume``'s slices ``k``."""
    amap = closest_lps_axes(volume.direction)
    across = amap.source_axis.index(2)  # the display axis the source k axis became
    plane = _PLANES[across]
    sx, sy, sz = amap.display_spacing(volume.spacing)
    pixel_mm = {"axial": (sx, sy), "coronal": (sx, sz), "sagittal": (sy, sz)}[plane]
    return SliceOrientation(amap, plane, pixel_mm)


def lut_index(values: npt.NDArray[Any], levels: tuple[float, float]) -> npt.NDArray[np.uint8]:
    """Index into a 256-entry table, computed as pyqtgraph does for ``levels``."""
    lo, hi = float(levels[0]), float(levels[1])
    span = hi - lo
    scale = 256.0 / (span if span != 0 else 1.0)
    work = np.asarray(values).astype(np.float32)  # a copy: pyqtgraph works in float32 too
    work -= np.float32(lo)
    work *= np.float32(scale)
    np.clip(work, 0, 255, out=work)
    return work.astype(np.uint8)


def outline(labels: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Keep only label pixels with a differently labelled 4-neighbour (the viewer's outline rule)."""
    edge = np.zeros(labels.shape, dtype=bool)
    edge[1:, :] |= labels[1:, :] != labels[:-1, :]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    return np.where(edge, labels, 0).astype(np.uint8)


def heatmap_levels(threshold: float, levels: tuple[float, float] = (0.0, 1.0)) -> tuple[float, float]:
    """The levels the viewer hands pyqtgraph for a heatmap: values at or below the lower level
    (the threshold, when higher) land on the table's transparent first entry."""
    lo, hi = levels
    lo = max(lo, threshold)
    span = max(hi - lo, 1e-6)
    return (lo - span / 255, hi)


def _blend(
    base: npt.NDArray[np.float32], index: npt.NDArray[np.uint8], table: npt.NDArray[np.uint8], opacity: float
) -> None:
    """Source-over of the overlay ``table[index]`` (RGBA), in place:
    ``base = base·(1 − a) + colour·a`` with ``a = alpha·opacity``.

    Only the pixels the overlay covers are computed: where alpha is 0 the formula leaves ``base``
    as it is, and an overlay (a thresholded heatmap, label outlines) covers little of a slice.
    A table whose first entry is transparent (the heatmap's and the labels') covers the pixels
    of non-zero index."""
    flat_index = index.reshape(-1)
    covered = np.flatnonzero(flat_index) if table[0, 3] == 0 else np.arange(flat_index.size)
    if covered.size == 0:
        return
    rgba = table[flat_index[covered]]
    alpha = rgba[:, 3:4].astype(np.float32) * np.float32(opacity / 255.0)
    flat_base = base.reshape(-1, 3)
    part = flat_base[covered]
    part *= 1.0 - alpha
    part += rgba[:, :3].astype(np.float32) * alpha
    flat_base[covered] = part


def _grey(volume: Volume, k: int, window: WindowLevel) -> npt.NDArray[np.float32]:
    plane = volume.voxels[k]
    if plane.ndim == 3:  # colour images are shown as they are
        return np.asarray(plane[..., :3], dtype=np.float32)
    index = lut_index(plane, window.levels).astype(np.float32)
    return np.repeat(index[..., np.newaxis], 3, axis=-1)


def render_slice_rgb(
    volume: Volume,
    k: int,
    *,
    window: WindowLevel | None = None,
    labels: npt.NDArray[np.uint8] | None = None,
    label_colours: dict[int, tuple[int, int, int]] | None = None,
    heatmap: npt.NDArray[np.floating[Any]] | None = None,
    heatmap_threshold: float = 0.0,
    colormap: str = "inferno",
    heatmap_opacity: float = 0.5,
    label_outline: bool = True,
    label_opacity: float = 1.0,
) -> npt.NDArray[np.uint8]:
    """Slice ``k`` of ``volume`` as the viewer draws it: ``uint8 (rows, cols, 3)``, displayed orientation.

    ``labels`` (``[j, i]``, 0 = background) are drawn in ``label_colours`` (labels without a
    colour are not drawn), as outlines unless ``label_outline`` is false; ``heatmap``
    (``[j, i]`` in [0, 1]; NaN is transparent) is blended through ``colormap`` with values at or
    below ``heatmap_threshold`` left out. The heatmap goes under the outlines so they stay
    visible. ``window`` defaults to the one the viewer opens the volume with.
    """
    nk = volume.shape[0]
    if not 0 <= k < nk:
        raise IndexError(f"slice {k} is outside the volume's {nk} slices")
    for name, layer in (("labels", labels), ("heatmap", heatmap)):
        if layer is not None and layer.shape != volume.shape[1:]:
            raise ValueError(f"{name} of shape {layer.shape} do not match the slice's {volume.shape[1:]}")
    if window is None:
        window = volume_window(volume)
    out = _grey(volume, k, window)
    if heatmap is not None:
        values = np.asarray(heatmap, dtype=np.float32)
        # NaN becomes -inf: index 0, the transparent entry (pyqtgraph leaves NaN transparent too).
        index = lut_index(np.nan_to_num(values, nan=-np.inf), heatmap_levels(heatmap_threshold))
        _blend(out, index, heatmap_lut(colormap), heatmap_opacity)
    if labels is not None and label_colours:
        table = np.zeros((256, 4), dtype=np.uint8)
        for value, (r, g, b) in label_colours.items():
            if 0 < value < 256:
                table[value] = (r, g, b, 255)
        shown = np.asarray(labels, dtype=np.uint8)
        _blend(out, outline(shown) if label_outline else shown, table, label_opacity)
    rgb = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return slice_orientation(volume).orient(rgb)
