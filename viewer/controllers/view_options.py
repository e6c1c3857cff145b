"""Display options of the three panes: cine speed, smooth (bilinear) display of zoomed images and
zoom linked across the panes. Each is a menu action; the state lives in the settings."""

from __future__ import annotations

from PySide6 import QtCore, QtGui

from viewer.controllers.settings import Settings
from viewer.views.main_window import CINE_SPEEDS, MainWindow
from viewer.views.slice_view import SliceView

__all__ = ["ViewOptions"]


class ViewOptions(QtCore.QObject):
    def __init__(self, window: MainWindow, settings: Settings, cine_timer: QtCore.QTimer) -> None:
        super().__init__()
        self.window = window
        self.settings = settings
        self.cine_timer = cine_timer
        self._linking = False
        a = window.actions_by_name
        for fps in CINE_SPEEDS:
            a[f"cine-{fps}"].triggered.connect(lambda _=False, f=fps: self.set_cine_fps(f))
        a["smooth"].toggled.connect(self.set_smooth)
        a["link-zoom"].toggled.connect(self.set_linked_zoom)
        for view in self._views():
            view.vb.sigRangeChanged.connect(lambda *_a, v=view: self._zoom_changed(v))
        fps = int(settings.value("cine_fps", 10))
        self.set_cine_fps(fps if fps in CINE_SPEEDS else 10)
        a["smooth"].setChecked(str(settings.value("smooth", "false")).lower() == "true")
        a["link-zoom"].setChecked(str(settings.value("link_zoom", "false")).lower() == "true")

    @property
    def cine_fps(self) -> int:
        return round(1000 / max(self.cine_timer.interval(), 1))

    def set_cine_fps(self, fps: int) -> None:
        """Slices per second of cine play."""
        self.cine_timer.setInterval(round(1000 / fps))
        self.window.actions_by_name[f"cine-{fps}"].setChecked(True)
        self.settings.set_value("cine_fps", fps)

    def _views(self) -> list[SliceView]:
        return [*self.window.mpr.views.values(), self.window.mpr.compare_view]

    def set_smooth(self, on: bool) -> None:
        """Bilinear filtering of magnified images (off: the voxels as squares, as most readers want)."""
        for view in self._views():
            view.setRenderHint(QtGui.QPainter.RenderHint.SmoothPixmapTransform, on)
            view.viewport().update()
        self.settings.set_value("smooth", "true" if on else "false")

    def set_linked_zoom(self, on: bool) -> None:
        """Zoom in one pane zooms the others (the comparison pane too) to the same scale (mm per
        screen pixel)."""
        self.settings.set_value("link_zoom", "true" if on else "false")
        if on:
            self._zoom_changed(self.window.mpr.views[self.window.mpr.active])

    def _zoom_changed(self, source: object) -> None:
        if self._linking or not self.window.actions_by_name["link-zoom"].isChecked():
            return
        views = self._views()
        if source not in views:
            return
        mm_per_px = source.mm_per_screen_pixel()  # type: ignore[attr-defined]
        self._linking = True
        try:
            for view in views:
                if view is source or not view.isVisible():
                    continue
                rect = view.vb.viewRect()
                centre = rect.center()
                w, h = view.vb.width() * mm_per_px, view.vb.height() * mm_per_px
                view.vb.setRange(QtCore.QRectF(centre.x() - w / 2, centre.y() - h / 2, w, h), padding=0.0)
        finally:
            self._linking = False
