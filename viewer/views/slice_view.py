"""One plane of the MPR display: image, overlays, crosshair, labels, annotations, scale bar."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from viewer.models.measurements import Plane

CROSSHAIR_PEN = pg.mkPen((255, 200, 0, 200), width=1)
MEASURE_PEN = pg.mkPen((80, 220, 255), width=2)


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
    window_dragged = QtCore.Signal(float, float, bool)  # dx, dy, first
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
        self.v_line.setPos((col + 0.5) * self.pixel_mm[0])
        self.h_line.setPos((row + 0.5) * self.pixel_mm[1])
        self.v_line.setVisible(self.show_crosshair and self._has_image)
        self.h_line.setVisible(self.show_crosshair and self._has_image)

    def set_annotations(self, annotations: Annotations) -> None:
        if annotations == self.annotations:
            return  # an unchanged text must not repaint the whole view
        self.annotations = annotations
        self.viewport().update()

    def set_measurements(self, shapes: list[tuple[str, list[tuple[float, float]], str]]) -> None:
        """Each: (kind 'line' | 'rect' | 'ellipse', image points, label)."""
        for old in self.measure_items:
            self.vb.removeItem(old)
        self.measure_items = []
        sx, sy = self.pixel_mm
        for kind, points, label in shapes:
            (c1, r1), (c2, r2) = points
            x1, y1, x2, y2 = (c1 + 0.5) * sx, (r1 + 0.5) * sy, (c2 + 0.5) * sx, (r2 + 0.5) * sy
            if kind == "line":
                item: QtWidgets.QGraphicsItem = QtWidgets.QGraphicsLineItem(x1, y1, x2, y2)
            elif kind == "rect":
                item = QtWidgets.QGraphicsRectItem(
                    QtCore.QRectF(QtCore.QPointF(x1, y1), QtCore.QPointF(x2, y2)).normalized()
                )
            else:
                item = QtWidgets.QGraphicsEllipseItem(
                    QtCore.QRectF(QtCore.QPointF(x1, y1), QtCore.QPointF(x2, y2)).normalized()
                )
            item.setPen(MEASURE_PEN)  # type: ignore[attr-defined]
            item.setZValue(60)
            self.vb.addItem(item, ignoreBounds=True)
            self.measure_items.append(item)
            text = pg.TextItem(label, color=(80, 220, 255), anchor=(0, 1))
            text.setPos(max(x1, x2), min(y1, y2))
            text.setZValue(61)
            self.vb.addItem(text, ignoreBounds=True)
            self.measure_items.append(text)

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
        painter.setPen(QtGui.QColor(230, 230, 230))
        a = self.annotations
        for n, text in enumerate(a.top_left):
            text = metrics.elidedText(text, QtCore.Qt.TextElideMode.ElideRight, max(40, w // 2 - 30))
            painter.drawText(6, 4 + line_h * (n + 1) - metrics.descent(), text)
        for n, text in enumerate(a.top_right):
            painter.drawText(w - 6 - metrics.horizontalAdvance(text), 4 + line_h * (n + 1) - metrics.descent(), text)
        for n, text in enumerate(reversed(a.bottom_left)):
            painter.drawText(6, h - 6 - line_h * n - metrics.descent(), text)
        for n, text in enumerate(reversed(a.bottom_right)):
            painter.drawText(w - 6 - metrics.horizontalAdvance(text), h - 6 - line_h * n - metrics.descent(), text)
        bold = QtGui.QFont(font)
        bold.setPointSize(11)
        bold.setBold(True)
        painter.setFont(bold)
        bm = QtGui.QFontMetrics(bold)
        painter.setPen(QtGui.QColor(255, 220, 120))
        left, right, top, bottom = a.edges
        painter.drawText(6, h // 2 + bm.ascent() // 2, left)
        painter.drawText(w - 6 - bm.horizontalAdvance(right), h // 2 + bm.ascent() // 2, right)
        top_y = 4 + bm.ascent() + line_h * (max(len(a.top_left), len(a.top_right)))
        painter.drawText(w // 2 - bm.horizontalAdvance(top) // 2, top_y, top)
        painter.drawText(w // 2 - bm.horizontalAdvance(bottom) // 2, h - 6 - bm.descent() - 2 * line_h, bottom)
        self._draw_scale_bar(painter, w, h)
        painter.restore()

    def _draw_scale_bar(self, painter: QtGui.QPainter, w: int, h: int) -> None:
        mm_per_px = self.mm_per_screen_pixel()
        if mm_per_px <= 0:
            return
        target_mm = mm_per_px * w * 0.2
        nice = 10 ** np.floor(np.log10(max(target_mm, 1e-3)))
        for step in (1, 2, 5, 10):
            if nice * step >= target_mm:
                length_mm = nice * step
                break
        length_px = int(round(length_mm / mm_per_px))
        x0, y0 = w // 2 - length_px // 2, h - 8
        painter.setPen(QtGui.QPen(QtGui.QColor(230, 230, 230), 2))
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
            self.window_dragged.emit(0.0, 0.0, True)
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
            self.window_dragged.emit(pos.x() - start.x(), pos.y() - start.y(), False)
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
