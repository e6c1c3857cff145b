"""The Qt-free drawing of a slice matches the viewer: colour tables, window, overlays, orientation.

The oracle for pixels is the viewer's own path: ``OpenVolume`` and ``plane_render.layer_overlay``
choose the image and the overlays' data, table and levels; pyqtgraph's ``makeARGB`` turns them
into colours as ``ImageItem`` does; Qt's ``QPainter`` blends the overlays with their opacity.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from inference.display.colormaps import HEATMAP_COLORMAPS, heatmap_lut
from inference.display.render import outline, render_slice_rgb, slice_orientation
from inference.display.window_level import CT_PRESETS, WindowLevel
from inference.volume import Volume, VolumeMetadata

CORONAL = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # i → L, j → I, k → P
SAGITTAL = np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # i → P, j → I, k → R
DIRECTIONS = {
    "axial": np.eye(3),
    "axial-flipped": np.diag([-1.0, -1.0, -1.0]),
    "coronal": CORONAL,
    "sagittal": SAGITTAL,
}


def _pyqtgraph_lut(name: str) -> npt.NDArray[np.uint8]:
    """What ``viewer/views/colormaps.heatmap_lut`` computed with pyqtgraph before the tables moved."""
    import pyqtgraph as pg

    cmap = (
        pg.colormap.get(name)
        if name != "jet"
        else pg.ColorMap([0, 0.35, 0.5, 0.65, 1], [(0, 0, 128), (0, 128, 255), (0, 255, 0), (255, 200, 0), (200, 0, 0)])
    )
    lut = np.asarray(cmap.getLookupTable(0.0, 1.0, 256, alpha=True), dtype=np.uint8).copy()
    lut[:, 3] = 255
    lut[0, 3] = 0
    return lut


@pytest.mark.parametrize("name", ["inferno", "viridis", "jet"])
def test_heatmap_tables_match_pyqtgraph(name: str) -> None:
    ours = heatmap_lut(name)
    assert ours.shape == (256, 4) and ours.dtype == np.uint8
    assert int(np.abs(ours.astype(int) - _pyqtgraph_lut(name)).max()) <= 1


def test_hot_matches_matplotlib_and_entry_zero_is_transparent() -> None:
    import matplotlib

    reference = matplotlib.colormaps["hot"](np.arange(256), bytes=True)
    assert int(np.abs(heatmap_lut("hot")[:, :3].astype(int) - reference[:, :3]).max()) <= 1
    for name in HEATMAP_COLORMAPS:
        lut = heatmap_lut(name)
        assert lut[0, 3] == 0 and (lut[1:, 3] == 255).all()
        assert not lut.flags.writeable  # shared between callers


def test_unknown_colormap_names_the_choices() -> None:
    with pytest.raises(ValueError, match="did you mean 'viridis'"):
        heatmap_lut("viridi")


def test_viewer_draws_with_the_same_tables_and_window_definitions() -> None:
    import inference.display.window_level as display_wl
    import viewer.controllers.plane_render as viewer_render
    import viewer.controllers.viewer_controller as viewer_controller
    import viewer.views.main_window as viewer_window
    from viewer.models.layers import HEATMAP_COLORMAPS as VIEWER_COLORMAPS

    assert tuple(VIEWER_COLORMAPS) == HEATMAP_COLORMAPS
    for name in HEATMAP_COLORMAPS:
        np.testing.assert_array_equal(viewer_render.heatmap_lut(name), heatmap_lut(name))
    for attr in ("WindowLevel", "CT_PRESETS", "auto_window", "drag_window"):
        assert getattr(viewer_controller, attr) is getattr(display_wl, attr)
    for attr in ("CT_PRESETS", "AUTO_SHORTCUT"):
        assert getattr(viewer_window, attr) is getattr(display_wl, attr)


def test_display_and_writers_import_neither_qt_nor_matplotlib_nor_torch() -> None:
    code = (
        "import sys\n"
        "import inference.display.render, inference.display.colormaps\n"
        "import inference.batch.key_images, inference.batch.seg_writer, inference.batch.pdf_report\n"
        "heavy = [m for m in ('PySide6', 'pyqtgraph', 'matplotlib', 'torch') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def _volume(ct_head: tuple[np.ndarray, tuple[float, float, float]], direction: np.ndarray) -> Volume:
    voxels, spacing = ct_head
    # An anisotropic grid, so a swapped or unflipped axis cannot pass unnoticed.
    slab = np.ascontiguousarray(voxels[40:52, 20:220, 30:250])
    return Volume(slab, (spacing[0], spacing[1], 2.5), (-10.0, 20.0, 30.0), direction, VolumeMetadata(modality="CT"))


def _overlays(shape: tuple[int, int, int]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
    k, j, i = np.indices(shape)
    heat = np.exp(-(((k - 5) * 6.0) ** 2 + (j - 90.0) ** 2 + (i - 60.0) ** 2) / (2 * 25.0**2)).astype(np.float32)
    labels = np.zeros(shape, np.uint8)
    labels[((k - 5) * 6) ** 2 + (j - 80) ** 2 + (i - 150) ** 2 <= 400] = 1
    labels[((k - 6) * 6) ** 2 + (j - 140) ** 2 + (i - 70) ** 2 <= 300] = 2
    return heat, labels


def _viewer_pixels(volume: Volume, k: int, window: WindowLevel, heat: Any, labels: Any, colours: Any) -> np.ndarray:
    """The slice as the viewer composes it (see the module notes)."""
    from pyqtgraph import functions as fn
    from PySide6 import QtGui

    from viewer.controllers.plane_render import layer_overlay
    from viewer.models.layers import HeatmapLayer, LabelLayer
    from viewer.models.measurements import Plane
    from viewer.models.viewer_model import OpenVolume
    from viewer.views.colormaps import grey_lut

    cur = OpenVolume.of(volume)
    xyz = cur.axis_map.source_to_display((0.0, 0.0, float(k)), volume.size_ijk)
    plane = next(p for p in Plane if cur.axis_map.source_axis[p.normal_axis] == 2)
    index = int(round(xyz[plane.normal_axis]))
    grey = fn.makeARGB(cur.plane_image(plane, index), lut=grey_lut(False), levels=window.levels, useRGBA=True)[0]
    rows, cols = grey.shape[:2]
    grey_bytes = np.ascontiguousarray(grey).tobytes()  # QImage does not copy: keep the buffer alive
    canvas = QtGui.QImage(grey_bytes, cols, rows, cols * 4, QtGui.QImage.Format.Format_RGBA8888)
    canvas = canvas.convertToFormat(QtGui.QImage.Format.Format_RGB32)
    layers = [
        HeatmapLayer(name="heat", values=heat, threshold=0.1, opacity=0.6),
        LabelLayer(name="labels", labels=labels, colours=dict(colours), outline=True, opacity=1.0),
    ]
    painter = QtGui.QPainter(canvas)
    for layer in layers:
        overlay = layer_overlay(cur, layer, plane, index)
        assert overlay is not None
        data, lut, levels, opacity = overlay
        rgba = np.ascontiguousarray(fn.makeARGB(data, lut=lut, levels=levels, useRGBA=True)[0]).tobytes()
        image = QtGui.QImage(rgba, cols, rows, cols * 4, QtGui.QImage.Format.Format_RGBA8888)
        painter.setOpacity(opacity)
        painter.drawImage(0, 0, image)
    painter.end()
    shown = canvas.convertToFormat(QtGui.QImage.Format.Format_RGB888)
    raw = np.frombuffer(shown.constBits(), np.uint8).reshape(rows, shown.bytesPerLine())
    return raw[:, : cols * 3].reshape(rows, cols, 3).copy()  # the QImage owns ``raw``: copy before it goes


@pytest.mark.parametrize("orientation", list(DIRECTIONS))
def test_slice_matches_the_viewer_pixels(
    ct_head: tuple[np.ndarray, tuple[float, float, float]], orientation: str
) -> None:
    volume = _volume(ct_head, DIRECTIONS[orientation])
    heat, labels = _overlays(volume.shape)
    colours = {1: (230, 25, 75), 2: (60, 180, 75)}
    window = CT_PRESETS["Bone"][0]
    for k in (5, 6):
        ours = render_slice_rgb(
            volume,
            k,
            window=window,
            labels=labels[k],
            label_colours=colours,
            heatmap=heat[k],
            heatmap_threshold=0.1,
            heatmap_opacity=0.6,
        )
        theirs = _viewer_pixels(volume, k, window, heat, labels, colours)
        assert ours.shape == theirs.shape and ours.dtype == np.uint8
        diff = np.abs(ours.astype(int) - theirs.astype(int))
        # Qt blends in 8-bit integer steps; the float blend here lands within 2 of it.
        assert int(diff.max()) <= 2, (orientation, k, int(diff.max()))
        assert float(diff.mean()) < 0.5
        # Both overlays really are on the image: outline pixels in the label colours.
        for colour in colours.values():
            assert int(np.all(ours == colour, axis=-1).sum()) > 10


@pytest.mark.parametrize("orientation", list(DIRECTIONS))
def test_displayed_slice_runs_along_the_patient_axes_of_its_pane(
    ct_head: tuple[np.ndarray, tuple[float, float, float]], orientation: str
) -> None:
    volume = _volume(ct_head, DIRECTIONS[orientation])
    view = slice_orientation(volume)
    nj, ni = volume.shape[1:]
    jj, ii = np.indices((nj, ni)).astype(np.float64)
    shown_i, shown_j = view.orient(ii), view.orient(jj)
    k = 3
    lps = volume.index_to_lps(np.stack([shown_i.ravel(), shown_j.ravel(), np.full(ii.size, k)], axis=1))
    lps = lps.reshape((*shown_i.shape, 3))
    right = lps[0, 1] - lps[0, 0]  # one displayed column to the right
    down = lps[1, 0] - lps[0, 0]  # one displayed row down
    screen_right, screen_down = {"axial": (0, 1), "coronal": (0, -2), "sagittal": (1, -2)}[view.plane]
    expected_plane = {"axial": "axial", "axial-flipped": "axial", "coronal": "coronal", "sagittal": "sagittal"}
    assert view.plane == expected_plane[orientation]
    # Axial: patient left to the right of the screen, posterior down; else superior at the top.
    assert right[abs(screen_right)] > 0
    assert down[abs(screen_down)] * np.sign(screen_down) > 0
    assert view.pixel_mm == pytest.approx((float(np.linalg.norm(right)), float(np.linalg.norm(down))))


def test_threshold_and_nan_leave_the_grey_image_untouched(
    ct_head: tuple[np.ndarray, tuple[float, float, float]],
) -> None:
    volume = _volume(ct_head, np.eye(3))
    window = WindowLevel(40, 400)
    plain = render_slice_rgb(volume, 4, window=window)
    heat = np.full(volume.shape[1:], 0.05, np.float32)
    heat[:10] = np.nan
    heat[-10:] = 0.9
    drawn = render_slice_rgb(volume, 4, window=window, heatmap=heat, heatmap_threshold=0.1)
    np.testing.assert_array_equal(drawn[:-10], plain[:-10])
    assert np.abs(drawn[-10:].astype(int) - plain[-10:]).max() > 50
    assert (plain[..., 0] == plain[..., 1]).all()  # grey
    with pytest.raises(ValueError, match="do not match"):
        render_slice_rgb(volume, 4, heatmap=heat[:5])
    with pytest.raises(IndexError):
        render_slice_rgb(volume, volume.shape[0])


def test_outline_is_the_viewer_rule() -> None:
    from viewer.controllers.plane_render import outline as viewer_outline

    assert viewer_outline is outline, "the viewer draws label outlines with the shared rule"
    # The rule: a label pixel stays when a 4-neighbour has another label; interiors vanish.
    labels = np.zeros((7, 7), np.uint8)
    labels[1:6, 1:6] = 2
    labels[3, 3] = 1
    out = outline(labels)
    assert out[1, 1] == 2 and out[2, 2] == 0 and out[3, 3] == 1 and out[2, 3] == 2 and out[0, 0] == 0
    assert out[4, 4] == 0 and out[5, 3] == 2
