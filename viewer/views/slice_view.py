"""One plane of the MPR display: image, overlays, crosshair, labels, annotations, scale bar."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from viewer.models.measurements import Plane

from .label_layout import place_labels

CROSSHAIR_PEN = pg.mkPen((255, 200, 0, 200), width=1)
MEASURE_PEN = pg.mkPen((80, 220, 255), width=2)
SELECTED_PEN = pg.mkPen((255, 170, 60), width=2)
MEASURE_TEXT = QtGui.QColor(80, 220, 255)
SELECTED_TEXT = QtGui.QColor(255, 170, 60)


@dataclass
class Annotations:
    """Text in the four corners and on the four edges."""

    top_left: list[str] = field(default_factory=list)
    top_right: list[str] = field(default_factory=list)
    bottom_left: list[str] = field(default_factory=list)
    bottom_right: list[str] = field(default_factory=list)
    edges: tuple[str, str, str, str] = ("", "", "", "")  # left, right, top, bottom


class SliceView(pg.GraphicsView):
    """Shows a 2-D slice at its physical aspect (scene units are mm) and reports mouse intent.

    Signals carry image coordinates (column, row) in voxels, centres at integers.
    """

    clicked = QtCore.Signal(float, float)  # left press / drag: move the crosshair (or measure)
    dragged = QtCore.Signal(float, float)
    released = QtCore.Signal(float, float)
    hovered = QtCore.Signal(float, float)
    scrolled = QtCore.Signal(int)
    window_dragged = QtCore.Signal(float, float, bool, bool)  # dx, dy, first, fine (Shift held)
    activated = QtCore.Signal()

    def __init__(self, plane: Plane, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent, background=(0, 0, 0))
        self.plane = plane
        self.setObjectName(f"slice-view-{plane.value}")
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)
        self.vb = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.vb.setMouseEnabled(False, False)
        self.vb.setDefaultPadding(0.0)
        self.setCentralItem(self.vb)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.vb.addItem(self.image)
        self.overlay_items: list[pg.ImageItem] = []
        self.h_line = pg.InfiniteLine(angle=0, pen=CROSSHAIR_PEN, movable=False)
        self.v_line = pg.InfiniteLine(angle=90, pen=CROSSHAIR_PEN, movable=False)
        for line in (self.h_line, self.v_line):
            line.setZValue(50)
            self.vb.addItem(line, ignoreBounds=True)
        self.measure_items: list[QtWidgets.QGraphicsItem] = []
        self.measure_labels: list[tuple[QtCore.QPointF, str, bool]] = []  # scene anchor, text, selected
        self.label_boxes: list[tuple[float, float, float, float]] = []  # where they were last drawn
        self.pixel_mm = (1.0, 1.0)
        self.image_shape = (0, 0)
        self.annotations = Annotations()
        self.show_crosshair = True
        self._drag_button: QtCore.Qt.MouseButton | None = None
        self._last_pos: QtCore.QPointF | None = None
        self._has_image = False

    # --- content -------------------------------------------------------------------------
    def set_image(
        self,
        image: npt.NDArray[Any],
        levels: tuple[float, float] | None,
        pixel_mm: tuple[float, float],
        lut: npt.NDArray[np.uint8] | None = None,
    ) -> None:
        rows, cols = image.shape[:2]
        reset = (rows, cols) != self.image_shape or pixel_mm != self.pixel_mm or not self._has_image
        self.pixel_mm = pixel_mm
        self.image_shape = (rows, cols)
        if image.ndim == 3:
            self.image.setImage(image, autoLevels=False, levels=(0, 255), lut=None)
        else:
            self.image.setImage(image, autoLevels=False, levels=levels, lut=lut)
        self.image.setRect(QtCore.QRectF(0, 0, cols * pixel_mm[0], rows * pixel_mm[1]))
        self._has_image = True
        if reset:
            self.reset_view()

    def set_overlays(
        self, overlays: list[tuple[npt.NDArray[Any], npt.NDArray[np.uint8], tuple[float, float], float]]
    ) -> None:
        """Each overlay: (2-D data, 256×4 LUT, levels, opacity), lowest first."""
        while len(self.overlay_items) < len(overlays):
            item = pg.ImageItem(axisOrder="row-major")
            item.setZValue(10 + len(self.overlay_items))
            self.vb.addItem(item)
            self.overlay_items.append(item)
        rows, cols = self.image_shape
        rect = QtCore.QRectF(0, 0, cols * self.pixel_mm[0], rows * self.pixel_mm[1])
        for item, (data, lut, levels, opacity) in zip(self.overlay_items, overlays, strict=False):
            item.setImage(data, autoLevels=False, levels=levels, lut=lut)
            item.setRect(rect)
            item.setOpacity(opacity)
            item.setVisible(True)
        for item in self.overlay_items[len(overlays) :]:
            item.setVisible(False)

    def clear(self) -> None:
        self.image.clear()
        for item in self.overlay_items:
            item.setVisible(False)
        self._has_image = False
        self.annotations = Annotations()
        self.viewport().update()

    def set_crosshair(self, col: float, row: float) -> None:
        centre = ((col + 0.5) * self.pixel_mm[0], (row + 0.5) * self.pixel_mm[1])
        self.v_line.setPos(centre)  # both lines pass through the cursor (also when turned)
        self.h_line.setPos(centre)
        self.v_line.setVisible(self.show_crosshair and self._has_image)
        self.h_line.setVisible(self.show_crosshair and self._has_image)

    def set_crosshair_angle(self, degrees: float) -> None:
        """Turn the crosshair counter-clockwise on screen (an oblique MPR's source pane)."""
        self.h_line.setAngle(-degrees)
        self.v_line.setAngle(90.0 - degrees)

    def set_annotations(self, annotations: Annotations) -> None:
        if annotations == self.annotations:
            return  # an unchanged text must not repaint the whole view
        self.annotations = annotations
        self.viewport().update()

    def set_measurements(self, shapes: list[tuple[str, list[tuple[float, float]], str, bool]]) -> None:
        """Each: (kind, image points, label, selected); kinds: 'line', 'rect', 'ellipse',
        'polyline' (an angle), 'cobb' (two lines), 'arrow' (head at the first point), 'point',
        'polygon' (a freehand ROI). Labels are drawn in screen space, placed off each other."""
        for old in self.measure_items:
            self.vb.removeItem(old)
        self.measure_items = []
        self.measure_labels = []
        sx, sy = self.pixel_mm
        px = max(self.mm_per_screen_pixel(), 1e-6)  # mm per screen pixel, for marks of fixed size
        for kind, points, label, selected in shapes:
            scene = [QtCore.QPointF((c + 0.5) * sx, (r + 0.5) * sy) for c, r in points]
            pen = SELECTED_PEN if selected else MEASURE_PEN
            for item in _shape_items(kind, scene, px):
                item.setPen(pen)  # type: ignore[attr-defined]
                item.setZValue(60)
                self.vb.addItem(item, ignoreBounds=True)
                self.measure_items.append(item)
            if selected:
                for p in scene:
                    handle = QtWidgets.QGraphicsRectItem(QtCore.QRectF(p.x() - 3 * px, p.y() - 3 * px, 6 * px, 6 * px))
                    handle.setPen(SELECTED_PEN)
                    handle.setBrush(QtGui.QBrush(QtGui.QColor(255, 170, 60, 160)))
                    handle.setZValue(62)
                    self.vb.addItem(handle, ignoreBounds=True)
                    self.measure_items.append(handle)
            if label and scene:
                anchor = QtCore.QPointF(max(p.x() for p in scene), min(p.y() for p in scene))
                self.measure_labels.append((anchor, label, selected))
        self.viewport().update()

    # --- view ------------------------------------------------------------------------------
    def reset_view(self) -> None:
        rows, cols = self.image_shape
        if rows and cols:
            self.vb.setRange(QtCore.QRectF(0, 0, cols * self.pixel_mm[0], rows * self.pixel_mm[1]), padding=0.0)

    def zoom_factor(self) -> float:
        """Screen pixels per image pixel along columns."""
        rect = self.vb.viewRect()
        if rect.width() <= 0 or self.pixel_mm[0] <= 0:
            return 1.0
        return float(self.vb.width() / (rect.width() / self.pixel_mm[0]))

    def mm_per_screen_pixel(self) -> float:
        rect = self.vb.viewRect()
        return float(rect.width() / max(self.vb.width(), 1.0))

    def _image_coords(self, pos: QtCore.QPointF) -> tuple[float, float]:
        p = self.vb.mapSceneToView(self.mapToScene(pos.toPoint()))
        return (p.x() / self.pixel_mm[0] - 0.5, p.y() / self.pixel_mm[1] - 0.5)

    # --- painting of text and scale bar, in screen pixels -----------------------------------
    def drawForeground(self, painter: QtGui.QPainter, rect: QtCore.QRectF) -> None:
        super().drawForeground(painter, rect)
        if not self._has_image:
            return
        painter.save()
        painter.resetTransform()
        w, h = self.viewport().width(), self.viewport().height()
        font = painter.font()
        font.setPointSize(9)
        painter.setFont(font)
        metrics = QtGui.QFontMetrics(font)
        line_h = metrics.height()
        text_colour = QtGui.QColor(230, 230, 230)
        a = self.annotations
        for n, text in enumerate(a.top_left):
            text = metrics.elidedText(text, QtCore.Qt.TextElideMode.ElideRight, max(40, w // 2 - 30))
            _backed_text(painter, 6, 4 + line_h * (n + 1) - metrics.descent(), text, text_colour)
        for n, text in enumerate(a.top_right):
            x = w - 6 - metrics.horizontalAdvance(text)
            _backed_text(painter, x, 4 + line_h * (n + 1) - metrics.descent(), text, text_colour)
        left_end = 6 + max((metrics.horizontalAdvance(t) for t in a.bottom_left), default=0)
        right_start = w - 6 - max((metrics.horizontalAdvance(t) for t in a.bottom_right), default=0)
        # In a narrow pane the two bottom corners would meet: the right one goes above the left.
        lifted = len(a.bottom_left) if left_end + 8 > right_start else 0
        for n, text in enumerate(reversed(a.bottom_left)):
            _backed_text(painter, 6, h - 6 - line_h * n - metrics.descent(), text, text_colour)
        for n, text in enumerate(reversed(a.bottom_right)):
            x = w - 6 - metrics.horizontalAdvance(text)
            _backed_text(painter, x, h - 6 - line_h * (n + lifted) - metrics.descent(), text, text_colour)
        # The scale bar sits at the bottom centre unless the corner text reaches it there; then it
        # moves above the corner text (a narrow pane at 1024×640 put the W/L text over it).
        bar = self._scale_bar_length(w)
        bar_half = (bar[0] if bar else 0) // 2 + 4
        clear = left_end < w // 2 - bar_half and right_start > w // 2 + bar_half
        rows_below = (
            len(a.bottom_left) + len(a.bottom_right) if lifted else max(len(a.bottom_left), len(a.bottom_right))
        )
        bar_y = h - 8 if clear else h - 8 - line_h * rows_below
        bold = QtGui.QFont(font)
        bold.setPointSize(11)
        bold.setBold(True)
        painter.setFont(bold)
        bm = QtGui.QFontMetrics(bold)
        edge_colour = QtGui.QColor(255, 220, 120)
        left, right, top, bottom = a.edges
        _backed_text(painter, 6, h // 2 + bm.ascent() // 2, left, edge_colour)
        _backed_text(painter, w - 6 - bm.horizontalAdvance(right), h // 2 + bm.ascent() // 2, right, edge_colour)
        top_y = 4 + bm.ascent() + line_h * (max(len(a.top_left), len(a.top_right)))
        _backed_text(painter, w // 2 - bm.horizontalAdvance(top) // 2, top_y, top, edge_colour)
        bottom_y = min(h - 6 - bm.descent() - 2 * line_h, bar_y - 2 * line_h)
        _backed_text(painter, w // 2 - bm.horizontalAdvance(bottom) // 2, bottom_y, bottom, edge_colour)
        if bar is not None:
            self._draw_scale_bar(painter, w, bar_y, *bar)
        painter.setFont(font)
        self._draw_measure_labels(painter, w, h)
        painter.restore()

    def _draw_measure_labels(self, painter: QtGui.QPainter, w: int, h: int) -> None:
        """Each measurement's compact label in a small box beside its shape, inside the view and
        off the other labels."""
        if not self.measure_labels:
            self.label_boxes = []
            return
        metrics = QtGui.QFontMetrics(painter.font())
        line_h = metrics.height()
        wanted, texts = [], []
        for anchor, text, selected in self.measure_labels:
            lines = text.split("\n")
            at = self.mapFromScene(self.vb.mapViewToScene(anchor))
            box_w = max(metrics.horizontalAdvance(t) for t in lines) + 6
            wanted.append(
                (
                    float(at.x() + 6),
                    float(at.y() - line_h * len(lines) - 2),
                    float(box_w),
                    float(line_h * len(lines) + 2),
                )
            )
            texts.append((lines, selected))
        self.label_boxes = place_labels(wanted, w, h)
        for (x, y, bw, bh), (lines, selected) in zip(self.label_boxes, texts, strict=True):
            painter.fillRect(QtCore.QRectF(x, y, bw, bh), _BACKING)
            painter.setPen(SELECTED_TEXT if selected else MEASURE_TEXT)
            for n, line in enumerate(lines):
                painter.drawText(int(x + 3), int(y + 1 + line_h * (n + 1) - metrics.descent()), line)

    def _scale_bar_length(self, w: int) -> tuple[int, float] | None:
        """The scale bar's length in screen pixels and in mm: a round number of mm, at least a
        fifth of the pane's width."""
        mm_per_px = self.mm_per_screen_pixel()
        if mm_per_px <= 0:
            return None
        target_mm = mm_per_px * w * 0.2
        nice = 10 ** np.floor(np.log10(max(target_mm, 1e-3)))
        length_mm = float(next(nice * step for step in (1, 2, 5, 10) if nice * step >= target_mm))
        return int(round(length_mm / mm_per_px)), length_mm

    def _draw_scale_bar(self, painter: QtGui.QPainter, w: int, y0: int, length_px: int, length_mm: float) -> None:
        x0 = w // 2 - length_px // 2
        for colour, width in ((QtGui.QColor(0, 0, 0, 200), 4), (QtGui.QColor(230, 230, 230), 2)):
            painter.setPen(QtGui.QPen(colour, width))
            painter.drawLine(x0, y0, x0 + length_px, y0)
            painter.drawLine(x0, y0 - 4, x0, y0)
            painter.drawLine(x0 + length_px, y0 - 4, x0 + length_px, y0)
        label = f"{length_mm:g} mm" if length_mm >= 1 else f"{length_mm * 1000:g} µm"
        font = painter.font()
        font.setPointSize(8)
        font.setBold(False)
        painter.setFont(font)
        advance = QtGui.QFontMetrics(font).horizontalAdvance(label)
        painter.drawText(w // 2 - advance // 2, y0 - 6, label)

    # --- input ------------------------------------------------------------------------------
    def mousePressEvent(self, ev: QtGui.QMouseEvent) -> None:
        self.activated.emit()
        self.setFocus()
        if not self._has_image:
            return
        self._drag_button = ev.button()
        self._last_pos = ev.position()
        if ev.button() == QtCore.Qt.MouseButton.LeftButton:
            self.clicked.emit(*self._image_coords(ev.position()))
        elif ev.button() == QtCore.Qt.MouseButton.RightButton:
            self.window_dragged.emit(0.0, 0.0, True, False)
        ev.accept()

    def mouseMoveEvent(self, ev: QtGui.QMouseEvent) -> None:
        if not self._has_image:
            return
        pos = ev.position()
        self.hovered.emit(*self._image_coords(pos))
        if self._drag_button is None or self._last_pos is None:
            return
        if self._drag_button == QtCore.Qt.MouseButton.LeftButton:
            self.dragged.emit(*self._image_coords(pos))
        elif self._drag_button == QtCore.Qt.MouseButton.RightButton:
            start = self._last_pos
            fine = bool(ev.modifiers() & QtCore.Qt.KeyboardModifier.ShiftModifier)
            self.window_dragged.emit(pos.x() - start.x(), pos.y() - start.y(), False, fine)
        elif self._drag_button == QtCore.Qt.MouseButton.MiddleButton:
            a = self.vb.mapSceneToView(self.mapToScene(self._last_pos.toPoint()))
            b = self.vb.mapSceneToView(self.mapToScene(pos.toPoint()))
            self.vb.translateBy(x=a.x() - b.x(), y=a.y() - b.y())
            self._last_pos = pos
            self.viewport().update()
        ev.accept()

    def mouseReleaseEvent(self, ev: QtGui.QMouseEvent) -> None:
        if self._drag_button == QtCore.Qt.MouseButton.LeftButton and self._has_image:
            self.released.emit(*self._image_coords(ev.position()))
        self._drag_button = None
        self._last_pos = None
        ev.accept()

    def wheelEvent(self, ev: QtGui.QWheelEvent) -> None:
        if not self._has_image:
            return
        steps = ev.angleDelta().y() / 120.0
        if ev.modifiers() & QtCore.Qt.KeyboardModifier.ControlModifier:
            centre = self.vb.mapSceneToView(self.mapToScene(ev.position().toPoint()))
            factor = 0.8**steps
            self.vb.scaleBy((factor, factor), center=centre)
            self.viewport().update()
        elif steps:
            self.scrolled.emit(int(np.sign(steps)) * max(1, int(abs(steps))))
        ev.accept()

    def keyPressEvent(self, ev: QtGui.QKeyEvent) -> None:
        keys: dict[Any, int] = {
            QtCore.Qt.Key.Key_Up: 1,
            QtCore.Qt.Key.Key_Down: -1,
            QtCore.Qt.Key.Key_PageUp: 10,
            QtCore.Qt.Key.Key_PageDown: -10,
        }
        if ev.key() in keys:
            self.scrolled.emit(keys[ev.key()])
            ev.accept()
            return
        super().keyPressEvent(ev)


_BACKING = QtGui.QColor(0, 0, 0, 150)


def _backed_text(painter: QtGui.QPainter, x: int, y: int, text: str, colour: QtGui.QColor) -> None:
    """Text on a translucent dark backing, readable over bone, zoomed pixels or an inverted image.

    ``(x, y)`` is the baseline's start, as for ``QPainter.drawText``. One rectangle per line costs
    far less per frame than an outline drawn from eight offset copies of the text.
    """
    if not text:
        return
    metrics = QtGui.QFontMetrics(painter.font())
    box = QtCore.QRect(x - 2, y - metrics.ascent() - 1, metrics.horizontalAdvance(text) + 4, metrics.height() + 1)
    painter.fillRect(box, _BACKING)
    painter.setPen(colour)
    painter.drawText(x, y, text)


def _shape_items(kind: str, pts: list[QtCore.QPointF], px: float) -> list[QtWidgets.QGraphicsItem]:
    """The graphics items of one measurement in scene coordinates (mm); ``px`` is one screen
    pixel in mm, so arrow heads and markers keep their size on screen at any zoom."""
    if not pts:
        return []
    if kind in ("rect", "ellipse") and len(pts) >= 2:
        rect = QtCore.QRectF(pts[0], pts[-1]).normalized()
        return [QtWidgets.QGraphicsRectItem(rect) if kind == "rect" else QtWidgets.QGraphicsEllipseItem(rect)]
    if kind == "point":
        p, r = pts[0], 4 * px
        return [
            QtWidgets.QGraphicsLineItem(p.x() - r, p.y(), p.x() + r, p.y()),
            QtWidgets.QGraphicsLineItem(p.x(), p.y() - r, p.x(), p.y() + r),
            QtWidgets.QGraphicsEllipseItem(QtCore.QRectF(p.x() - r, p.y() - r, 2 * r, 2 * r)),
        ]
    if kind == "polygon":
        return [QtWidgets.QGraphicsPolygonItem(QtGui.QPolygonF(pts))]
    if kind == "cobb":
        return [QtWidgets.QGraphicsLineItem(QtCore.QLineF(a, b)) for a, b in zip(pts[0::2], pts[1::2], strict=False)]
    items: list[QtWidgets.QGraphicsItem] = []
    path = QtGui.QPainterPath(pts[0])
    for p in pts[1:]:
        path.lineTo(p)
    items.append(QtWidgets.QGraphicsPathItem(path))
    if kind == "arrow" and len(pts) >= 2:
        head, tail = pts[0], pts[-1]
        d = np.array([tail.x() - head.x(), tail.y() - head.y()])
        norm = float(np.hypot(*d))
        if norm > 0:
            d = d / norm * 12 * px
            for angle in (0.45, -0.45):
                c, s = np.cos(angle), np.sin(angle)
                end = QtCore.QPointF(head.x() + c * d[0] - s * d[1], head.y() + s * d[0] + c * d[1])
                items.append(QtWidgets.QGraphicsLineItem(QtCore.QLineF(head, end)))
    return items
