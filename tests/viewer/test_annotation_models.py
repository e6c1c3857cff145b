"""The Qt-free annotation models: shapes' figures, hit testing, label placement, undo/redo."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.models.history import EditHistory
from viewer.models.layers import HeatmapLayer, LayerList
from viewer.models.measurements import Measurement, MeasurementList, Plane, Shape, hit_test
from viewer.views.label_layout import place_labels

SPACING = (0.5, 0.5, 2.0)


def test_angles_in_millimetres_not_voxels() -> None:
    # A right angle in mm on an anisotropic coronal plane: x spacing 0.5 mm, z spacing 2 mm.
    right = Measurement(Shape.ANGLE, Plane.CORONAL, [(20.0, 5.0, 10.0), (0.0, 5.0, 10.0), (0.0, 5.0, 15.0)])
    assert right.angle_deg(SPACING) == pytest.approx(90.0)
    # 45° in mm: 4 voxels along x (2 mm) against 1 voxel along z (2 mm).
    diagonal = Measurement(Shape.ANGLE, Plane.CORONAL, [(4.0, 5.0, 10.0), (0.0, 5.0, 10.0), (4.0, 5.0, 11.0)])
    assert diagonal.angle_deg(SPACING) == pytest.approx(45.0)
    # A Cobb angle between two lines is at most 90° whichever way they were drawn.
    cobb = Measurement(
        Shape.COBB, Plane.AXIAL, [(0.0, 0.0, 3.0), (10.0, 0.0, 3.0), (10.0, 10.0, 3.0), (0.0, 20.0, 3.0)]
    )
    expected = np.degrees(np.arctan2(10 * 0.5, 10 * 0.5))
    assert cobb.angle_deg(SPACING) == pytest.approx(expected)
    with pytest.raises(ValueError, match="no angle"):
        Measurement(Shape.DISTANCE, Plane.AXIAL, [(0.0, 0.0, 0.0), (1.0, 0.0, 0.0)]).angle_deg(SPACING)


def test_freehand_area_and_mask_agree_with_a_polygon_of_known_area() -> None:
    square = [(10.0, 10.0, 3.0), (30.0, 10.0, 3.0), (30.0, 30.0, 3.0), (10.0, 30.0, 3.0)]
    m = Measurement(Shape.FREEHAND, Plane.AXIAL, square)
    assert m.area_mm2(SPACING) == pytest.approx(20 * 0.5 * 20 * 0.5)
    mask = m.roi_mask(40, 40)
    assert mask[20, 20] and not mask[5, 5] and not mask[35, 20]
    assert abs(int(mask.sum()) - 400) <= 41  # the centres on the edge go one way or the other
    triangle = Measurement(Shape.FREEHAND, Plane.AXIAL, [(0.0, 0.0, 0.0), (40.0, 0.0, 0.0), (0.0, 40.0, 0.0)])
    assert triangle.area_mm2((1.0, 1.0, 1.0)) == pytest.approx(800.0)
    assert abs(int(triangle.roi_mask(41, 41).sum()) - 820) < 45


def test_hit_test_prefers_handles_then_the_newest_body() -> None:
    items = MeasurementList()
    ruler = items.add(Measurement(Shape.DISTANCE, Plane.AXIAL, [(10.0, 10.0, 5.0), (30.0, 10.0, 5.0)]))
    roi = items.add(Measurement(Shape.RECTANGLE, Plane.AXIAL, [(25.0, 5.0, 5.0), (40.0, 20.0, 5.0)]))
    assert hit_test(items, Plane.AXIAL, 5, (30.5, 10.0, 5.0), 1.0) == (ruler, 1)  # the ruler's end
    assert hit_test(items, Plane.AXIAL, 5, (28.0, 10.2, 5.0), 1.0) == (roi, None)  # inside both: the newer
    assert hit_test(items, Plane.AXIAL, 5, (15.0, 10.5, 5.0), 1.0) == (ruler, None)  # on the ruler's line
    assert hit_test(items, Plane.AXIAL, 5, (15.0, 14.0, 5.0), 1.0) is None
    assert hit_test(items, Plane.AXIAL, 6, (15.0, 10.0, 6.0), 1.0) is None  # another slice


def test_labels_stay_inside_the_view_and_off_each_other() -> None:
    wanted = [
        (100.0, 50.0, 80.0, 30.0),
        (110.0, 55.0, 80.0, 30.0),
        (105.0, 52.0, 80.0, 30.0),
        (390.0, 290.0, 80.0, 30.0),
    ]
    placed = place_labels(wanted, 400, 300)
    for x, y, w, h in placed:
        assert 0 <= x <= 400 - w and 0 <= y <= 300 - h
    for n, a in enumerate(placed):
        for b in placed[n + 1 :]:
            assert not (a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3])
    assert placed[0] == wanted[0]  # a label with room stays where it wanted to be


def test_undo_redo_covers_measurements_and_layer_settings() -> None:
    items, layers = MeasurementList(), LayerList()
    history = EditHistory(items, layers)
    ruler = items.add(Measurement(Shape.DISTANCE, Plane.AXIAL, [(0.0, 0.0, 0.0), (5.0, 0.0, 0.0)]))
    with history.group():  # a drag: many moves, one step
        for x in range(6, 12):
            items.update(ruler, (float(x), 0.0, 0.0))
    items.relabel(ruler, "aorta")
    layer = layers.add(HeatmapLayer(name="map", values=np.zeros((2, 2, 2), np.float32)))
    layer.set(opacity=0.9)
    layer.set(opacity=0.8)  # a slider: one step with the one before
    assert history.can_undo and not history.can_redo
    assert history.undo()
    assert layers[0].opacity == 0.5
    assert history.undo()
    assert len(layers) == 0
    assert history.undo()
    assert next(iter(items)).label == ""
    assert history.undo()
    assert next(iter(items)).p2 == (5.0, 0.0, 0.0)
    assert history.undo()
    assert len(items) == 0 and not history.can_undo
    for _ in range(5):
        assert history.redo()
    assert not history.redo()
    (m,) = list(items)
    assert (m.p2, m.label) == ((11.0, 0.0, 0.0), "aorta")
    assert len(layers) == 1 and layers[0].opacity == 0.8
    # A new edit after an undo drops the redo steps.
    history.undo()
    items.clear()
    assert not history.can_redo
