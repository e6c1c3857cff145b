"""What each view shows for the current state: image, overlays, crosshair, text. No widgets."""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.display.colormaps import heatmap_lut
from inference.display.render import outline
from inference.io.orientation import orientation_label
from viewer.models.layers import HeatmapLayer, LabelLayer, Layer
from viewer.models.measurements import Measurement, Plane, Shape
from viewer.models.plane_cache import PlaneCache
from viewer.models.viewer_model import OpenVolume, ViewerModel

Overlay = tuple[npt.NDArray[Any], npt.NDArray[np.uint8], tuple[float, float], float]


_layer_caches: weakref.WeakKeyDictionary[Layer, tuple[int, PlaneCache]] = weakref.WeakKeyDictionary()


def layer_cache(cur: OpenVolume, layer: Layer) -> PlaneCache | None:
    """The display-order plane cache of a layer's array (rebuilt when the array is replaced)."""
    array = layer.labels if isinstance(layer, LabelLayer) else layer.values if isinstance(layer, HeatmapLayer) else None
    if array is None:
        return None
    held = _layer_caches.get(layer)
    if held is None or held[0] != id(array):
        held = (id(array), PlaneCache(cur.axis_map.apply(array)))
        _layer_caches[layer] = held
    return held[1]


def layer_overlay(cur: OpenVolume, layer: Layer, plane: Plane, index: int) -> Overlay | None:
    if not layer.visible:
        return None
    cache = layer_cache(cur, layer)
    assert cache is not None
    if isinstance(layer, LabelLayer):
        data = cache.image(plane, index)
        if layer.outline:
            data = outline(data)
        return (data, layer.lut(), (0.0, 255.0), layer.opacity)
    if isinstance(layer, HeatmapLayer):
        data = cache.image(plane, index)
        lo, hi = layer.levels
        lo = max(lo, layer.threshold)
        # Values at or below the lower level map to the transparent first entry.
        span = max(hi - lo, 1e-6)
        return (data, heatmap_lut(layer.colormap), (lo - span / 255, hi), layer.opacity)
    return None


def overlays_for(model: ViewerModel, plane: Plane, index: int) -> list[Overlay]:
    cur = model.current
    assert cur is not None
    return [o for layer in model.layers if (o := layer_overlay(cur, layer, plane, index)) is not None]


def edge_labels(cur: OpenVolume, plane: Plane) -> tuple[str, str, str, str]:
    right, down = cur.plane_vectors(plane)
    return (orientation_label(-right), orientation_label(right), orientation_label(-down), orientation_label(down))


def slice_position_mm(cur: OpenVolume, plane: Plane, cursor: tuple[int, int, int]) -> float:
    """The slice's coordinate along the patient axis closest to the plane normal."""
    axis = plane.normal_axis
    lps = cur.lps_at((float(cursor[0]), float(cursor[1]), float(cursor[2])))
    patient_axis = int(np.argmax(np.abs(cur.directions_xyz[:, axis])))
    return float(lps[patient_axis])


def measurement_label(m: Measurement, cur: OpenVolume) -> str:
    if m.shape == Shape.DISTANCE:
        return f"{m.length_mm(cur.spacing_xyz):.1f} mm"
    index = int(round(m.p1[m.plane.normal_axis]))
    values = cur.plane_in_display_order(m.plane, index)
    if values.ndim == 3:
        values = values.mean(axis=-1)
    st = m.stats(values, cur.spacing_xyz)
    unit = " HU" if cur.volume.metadata.modality == "CT" else ""
    return (
        f"mean {st.mean:.1f}{unit} SD {st.sd:.1f} min {st.minimum:.0f} max {st.maximum:.0f} area {st.area_mm2:.1f} mm²"
    )


def measurement_shapes(model: ViewerModel, plane: Plane) -> list[tuple[str, list[tuple[float, float]], str]]:
    cur = model.current
    assert cur is not None
    index = model.cursor[plane.normal_axis]
    kind = {Shape.DISTANCE: "line", Shape.RECTANGLE: "rect", Shape.ELLIPSE: "ellipse"}
    out = []
    for m in model.measurements:
        if m.lies_on(plane, index) and (m.plane == plane or m.shape == Shape.DISTANCE):
            pts = [cur.display_to_plane(plane, m.p1), cur.display_to_plane(plane, m.p2)]
            out.append((kind[m.shape], pts, measurement_label(m, cur)))
    return out
