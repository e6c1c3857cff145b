"""What each view shows for the current state: image, overlays, crosshair, text. No widgets."""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.display.colormaps import heatmap_lut
from inference.display.render import outline
from inference.io.orientation import orientation_label
from viewer.models.annotation_store import roi_values
from viewer.models.layers import HeatmapLayer, LabelLayer, Layer
from viewer.models.measurements import Measurement, Plane, Shape
from viewer.models.oblique import reslice
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


def layer_overlay(
    cur: OpenVolume, layer: Layer, plane: Plane, index: int, coords: npt.NDArray[np.float64] | None = None
) -> Overlay | None:
    """A layer's image on ``plane`` at ``index``, or resliced at ``coords`` (an oblique pane)."""
    if not layer.visible:
        return None
    cache = layer_cache(cur, layer)
    assert cache is not None

    def cut() -> npt.NDArray[Any]:
        if coords is None:
            return cache.image(plane, index)
        return reslice(cache.array, coords, nearest=isinstance(layer, LabelLayer))

    if isinstance(layer, LabelLayer):
        data = cut()
        if layer.outline:
            data = outline(data)
        return (data, layer.lut(), (0.0, 255.0), layer.opacity)
    if isinstance(layer, HeatmapLayer):
        data = cut()
        lo, hi = layer.levels
        lo = max(lo, layer.threshold)
        # Values at or below the lower level map to the transparent first entry.
        span = max(hi - lo, 1e-6)
        return (data, heatmap_lut(layer.colormap), (lo - span / 255, hi), layer.opacity)
    return None


def overlays_for(
    model: ViewerModel, plane: Plane, index: int, coords: npt.NDArray[np.float64] | None = None
) -> list[Overlay]:
    cur = model.current
    assert cur is not None
    return [o for layer in model.layers if (o := layer_overlay(cur, layer, plane, index, coords)) is not None]


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
    """The full figures of a measurement (the measurements panel's Result column)."""
    if m.shape in (Shape.DISTANCE, Shape.ARROW):
        return f"{m.length_mm(cur.spacing_xyz):.1f} mm"
    if m.shape in (Shape.ANGLE, Shape.COBB):
        return f"{m.angle_deg(cur.spacing_xyz):.1f}°" if m.complete else "…"
    if m.shape == Shape.POINT:
        lps = cur.lps_at(m.p1)
        return f"LPS ({lps[0]:.1f}, {lps[1]:.1f}, {lps[2]:.1f}) mm"
    st = m.stats(roi_values(m, cur), cur.spacing_xyz)
    unit = " HU" if cur.volume.metadata.modality == "CT" else ""
    return (
        f"mean {st.mean:.1f}{unit} SD {st.sd:.1f} min {st.minimum:.0f} max {st.maximum:.0f} area {st.area_mm2:.1f} mm²"
    )


def compact_label(m: Measurement, cur: OpenVolume) -> str:
    """The short text drawn beside a shape: an ROI's mean ± SD and area, a ruler's length, an
    angle, an arrow's caption; the user's label first where there is one."""
    if m.shape.is_roi:
        st = m.stats(roi_values(m, cur), cur.spacing_xyz)
        unit = " HU" if cur.volume.metadata.modality == "CT" else ""
        text = f"{st.mean:.0f} ± {st.sd:.0f}{unit}\n{st.area_mm2 / 100:.2f} cm²"
    elif m.shape == Shape.ARROW:
        return m.label
    elif m.shape == Shape.POINT:
        text = ""
    else:
        text = measurement_label(m, cur)
    return f"{m.label}\n{text}".strip() if m.label else text


#: How each shape is drawn by the slice view.
SHAPE_KINDS = {
    Shape.DISTANCE: "line",
    Shape.RECTANGLE: "rect",
    Shape.ELLIPSE: "ellipse",
    Shape.ANGLE: "polyline",
    Shape.COBB: "cobb",
    Shape.ARROW: "arrow",
    Shape.POINT: "point",
    Shape.FREEHAND: "polygon",
}


def measurement_shapes(
    model: ViewerModel, plane: Plane, selected: int | None = None
) -> list[tuple[str, list[tuple[float, float]], str, bool]]:
    """What the view draws: (kind, image points, compact label, selected) per measurement on
    this plane's slice (a ruler across slices shows on every plane it lies in)."""
    cur = model.current
    assert cur is not None
    index = model.cursor[plane.normal_axis]
    out = []
    for m in model.measurements:
        if m.lies_on(plane, index) and (m.plane == plane or m.shape == Shape.DISTANCE):
            pts = [cur.display_to_plane(plane, p) for p in m.points]
            out.append((SHAPE_KINDS[m.shape], pts, compact_label(m, cur), m.id == selected))
    return out
