"""Two studies side by side: the open one in its active pane and a second (a prior, or another
series of the same study) in the comparison pane, scrolled in step by patient position.

The second study loads through its own loader (so the open study's load is never cancelled) and
is drawn on every change of the first's cursor, window or layout. A wheel on the comparison pane
moves only the second study, which sets the offset by which both then scroll together; with a
shared frame of reference the offset starts at zero (same position), the crosshair is shown in
both, and the window/level can be linked.
"""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore

from inference.display.window_level import WindowLevel, drag_window, volume_window
from inference.io.scan import ScanResult
from inference.io.stacks import Stack
from inference.volume import Volume
from viewer.controllers import plane_render as pr
from viewer.controllers.loading import LoadController
from viewer.models.comparison import Comparison
from viewer.models.measurements import Plane
from viewer.models.viewer_model import OpenVolume, ViewerModel
from viewer.views.colormaps import grey_lut
from viewer.views.main_window import MainWindow
from viewer.views.slice_view import Annotations

__all__ = ["ComparisonController"]


class ComparisonController(QtCore.QObject):
    opened = QtCore.Signal()
    failed = QtCore.Signal(str)

    def __init__(self, model: ViewerModel, window: MainWindow) -> None:
        super().__init__()
        self.model = model
        self.window = window
        self.view = window.mpr.compare_view
        self.comparison: Comparison | None = None
        self.window_level: WindowLevel | None = None  # the second study's own, when not linked
        self._loader: LoadController | None = None
        self._wl_start: WindowLevel | None = None
        self._previous_layout = "1x3"
        self._pending_stack: str | None = None
        model.cursor_changed.connect(self.render)
        model.window_changed.connect(self.render)
        model.volume_changed.connect(self._main_changed)
        self.view.scrolled.connect(self._scroll_other)
        self.view.window_dragged.connect(self._drag_window)
        a = window.actions_by_name
        a["compare-close"].triggered.connect(self.close)
        a["compare-link-window"].toggled.connect(lambda _on: self.render())

    @property
    def busy(self) -> bool:
        return self._loader is not None and self._loader.busy

    @property
    def link_window(self) -> bool:
        return bool(self.window.actions_by_name["compare-link-window"].isChecked())

    # --- opening ---------------------------------------------------------------------------------
    def open_path(self, path: str | Path, stack_id: str | None = None) -> None:
        """Scan ``path`` and put its stack (``stack_id``, else the one with most slices) beside
        the open study."""
        loader = self._loader_()
        self._pending_stack = stack_id
        loader.scan(path)

    def open_stack(self, stack: Stack) -> None:
        self._loader_().load(stack)

    def _loader_(self) -> LoadController:
        if self._loader is None:
            self._loader = LoadController(self)
            self._loader.scanned.connect(self._scanned)
            self._loader.loaded.connect(self._loaded)
            self._loader.failed.connect(lambda kind, msg: self.failed.emit(f"Comparison: {kind}: {msg}"))
        return self._loader

    def _scanned(self, result: ScanResult) -> None:
        stacks = result.stacks()
        if not stacks:
            self.failed.emit(f"Comparison: no image stack found in {result.root}")
            return
        wanted = self._pending_stack
        stack = result.stack(wanted) if wanted else max(stacks, key=lambda s: s.n_slices)
        self.open_stack(stack)

    def _loaded(self, _stack: Stack, volume: Volume) -> None:
        self.show(volume)

    def show(self, volume: Volume) -> None:
        """Put ``volume`` beside the open study in the comparison layout."""
        main = self.model.current
        if main is None:
            self.failed.emit("Open a study before opening one to compare with")
            return
        other = OpenVolume.of(volume)
        other.cache.build()
        self.comparison = Comparison.of(main, other)
        self.window_level = volume_window(volume)
        if self.window.mpr.layout_name != "compare":
            self._previous_layout = self.window.mpr.layout_name
        self.window.mpr.set_layout("compare")
        self.view.plane = self.window.mpr.active
        self.view.reset_view()
        self.render()
        QtCore.QTimer.singleShot(0, self._reset_views)
        self.opened.emit()

    def close(self) -> None:
        self.comparison = None
        self.view.clear()
        if self.window.mpr.layout_name == "compare":
            self.window.mpr.set_layout(self._previous_layout if self._previous_layout != "compare" else "1x3")

    def shutdown(self) -> None:
        if self._loader is not None:
            self._loader.shutdown()

    # --- following the open study ------------------------------------------------------------------
    def _main_changed(self) -> None:
        if self.comparison is None:
            return
        main = self.model.current
        if main is None:
            self.close()
            return
        self.comparison = Comparison.of(main, self.comparison.other)  # offsets were for the old volume
        self.render()

    def other_index(self) -> int | None:
        """The second study's slice shown now (None without a comparison)."""
        main, comparison = self.model.current, self.comparison
        if main is None or comparison is None:
            return None
        plane = self.window.mpr.active
        return comparison.index_for(main, plane, self.model.cursor[plane.normal_axis])

    def render(self) -> None:
        main, comparison = self.model.current, self.comparison
        if main is None or comparison is None or self.window.mpr.layout_name != "compare":
            return
        plane = self.window.mpr.active
        self.view.plane = plane
        other = comparison.other
        index = self.other_index()
        assert index is not None
        wl = self.model.window if self.link_window or self.window_level is None else self.window_level
        image = other.slab_image(plane, index, self.model.slab)
        self.view.set_image(image, wl.levels, other.plane_pixel_mm(plane), grey_lut(self.model.invert))
        if comparison.same_frame:
            lps = main.lps_at(tuple(float(v) for v in self.model.cursor))  # type: ignore[arg-type]
            xyz = other.axis_map.source_to_display(other.volume.lps_to_index(lps), other.volume.size_ijk)
            self.view.show_crosshair = True
            self.view.set_crosshair(*other.display_to_plane(plane, (float(xyz[0]), float(xyz[1]), float(xyz[2]))))
        else:
            self.view.show_crosshair = False
            self.view.set_crosshair(0.0, 0.0)
        self.view.set_annotations(self._annotations(plane, index, wl))

    def _annotations(self, plane: Plane, index: int, wl: WindowLevel) -> Annotations:
        comparison = self.comparison
        assert comparison is not None
        other = comparison.other
        md = other.volume.metadata
        cursor = list(self.model.cursor)
        cursor[plane.normal_axis] = index
        position = pr.slice_position_mm(other, plane, (cursor[0], cursor[1], cursor[2]))
        offset = comparison.offset_mm.get(plane, 0.0)
        link = "same frame of reference" if comparison.same_frame and not offset else f"offset {offset:+.1f} mm"
        return Annotations(
            top_left=[t for t in ("Comparison", md.study_date, md.series_description) if t],
            top_right=[
                plane.value.capitalize(),
                f"slice {index + 1}/{other.shape_xyz[plane.normal_axis]}",
                f"{position:.1f} mm",
            ],
            bottom_left=[f"W {wl.width:.0f} L {wl.center:.0f}"],
            bottom_right=[link],
            edges=pr.edge_labels(other, plane),
        )

    # --- the reader's own moves on the comparison pane ------------------------------------------------
    def _scroll_other(self, delta: int) -> None:
        """Scroll only the second study: this sets the offset both then keep."""
        main, comparison = self.model.current, self.comparison
        index = self.other_index()
        if main is None or comparison is None or index is None:
            return
        plane = self.window.mpr.active
        comparison.align(main, plane, self.model.cursor[plane.normal_axis], index + delta)
        self.render()

    def _drag_window(self, dx: float, dy: float, first: bool, fine: bool) -> None:
        current = self.model.window if self.link_window else (self.window_level or self.model.window)
        if first or self._wl_start is None:
            self._wl_start = current
            return
        new = drag_window(self._wl_start, dx, dy, fine=fine)
        if self.link_window:
            self.model.set_window(new)
        else:
            self.window_level = new
            self.render()

    def _reset_views(self) -> None:
        self.view.reset_view()
        self.render()
