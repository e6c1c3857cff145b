"""Wires the viewer model, the main window and background loading together."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6 import QtCore, QtWidgets

from inference import __version__
from inference.display.window_level import CT_PRESETS, WindowLevel, auto_window, drag_window, preset_action_name
from inference.io.scan import ScanResult
from inference.io.stacks import Stack
from inference.models.registry import ModelRequest, Registry
from inference.volume import Volume
from viewer.controllers import plane_render as pr
from viewer.controllers.analysis_controller import AnalysisController
from viewer.controllers.annotation_controller import AnnotationController
from viewer.controllers.comparison_controller import ComparisonController
from viewer.controllers.export_controller import ExportController
from viewer.controllers.loading import LoadController
from viewer.controllers.settings import Settings
from viewer.controllers.tag_controller import TagController
from viewer.controllers.view_options import ViewOptions
from viewer.controllers.worker import create_worker, run_in_background
from viewer.models.layers import HeatmapLayer, LabelLayer
from viewer.models.measurements import Plane, Shape
from viewer.models.oblique import Oblique, reslice, reslice_coordinates, rotate_point
from viewer.models.plane_cache import PlaneCache
from viewer.models.slab import Slab, SlabMode
from viewer.models.viewer_model import ViewerModel
from viewer.views.colormaps import grey_lut
from viewer.views.file_dialogs import Asked, ask_folder, ask_open_file, ask_save_file
from viewer.views.main_window import DEFAULT_SIZE, LAYOUTS, MainWindow
from viewer.views.slice_view import Annotations

TOOLS = {
    "tool-crosshair": None,
    "tool-distance": Shape.DISTANCE,
    "tool-rectangle": Shape.RECTANGLE,
    "tool-ellipse": Shape.ELLIPSE,
    "tool-angle": Shape.ANGLE,
    "tool-cobb": Shape.COBB,
    "tool-arrow": Shape.ARROW,
    "tool-point": Shape.POINT,
    "tool-freehand": Shape.FREEHAND,
}
#: How near (screen pixels) a press must be to a shape or one of its handles to grab it.
GRAB_PIXELS = 6.0


class ViewerController(QtCore.QObject):
    """One per main window. Everything the user does goes through here."""

    volume_shown = QtCore.Signal(object)  # Volume
    error_shown = QtCore.Signal(str)
    overlay_opened = QtCore.Signal(object)  # the LabelLayer or HeatmapLayer open_mask added

    def __init__(
        self,
        model: ViewerModel | None = None,
        settings: Settings | None = None,
        interactive: bool = True,
        registry: Registry | None = None,
    ) -> None:
        super().__init__()
        self.model = model or ViewerModel()
        self.window = MainWindow(self.model.layers)
        self.loader = LoadController(self)
        self.loader.warm_up()
        self.analysis = AnalysisController(self.model, self.window.analysis_panel, self.window.mpr.fourth, registry)
        self.analysis.failed.connect(self._error)
        if interactive:
            self.analysis.confirm = self._confirm_unsuitable
        self.analysis.finished.connect(self._on_analysis_finished)
        self.tags = TagController(self.model, self.window.tag_browser, self.window.tag_dock)
        self.exporter = ExportController(self)
        self.exporter.failed.connect(self._error)
        self.exporter.exported.connect(self._on_exported)
        self.settings = settings or Settings()
        self.annotations = AnnotationController(
            self.model, self.settings.data_folder / "annotations", self._ask_text if interactive else None
        )
        self.annotations.selection_changed.connect(self._on_measurements_changed)
        self.annotations.failed.connect(self._error)
        self.annotations.message.connect(lambda text: self.window.statusBar().showMessage(text, 30000))
        self.annotations.history.changed.connect(self._refresh_undo_actions)
        self.interactive = interactive  # False: errors go to the status bar, never a modal box
        self.scan_result: ScanResult | None = None
        self.current_stack: Stack | None = None
        self.pending_stack_id: str | None = None
        self._wl_start: WindowLevel | None = None
        # What each pane shows: its slice index (or, when resliced obliquely, index, angle and cursor).
        self._shown_index: dict[Plane, object] = {p: None for p in Plane}
        self.last_error = ""
        self._overlay_workers: set[Any] = set()
        self._staged: set[Plane] = set()  # panes of a new volume's first frame not yet drawn
        self._flat_layout = False  # the single-view layout was chosen for a single-slice image
        self._rotating = False  # Tools → Rotate crosshair is on
        self._rotation_start: tuple[Plane, float, float] | None = None
        self._fill: tuple[Any, float] | None = None
        # Run once on the first volume shown (the one the user asked for at start-up), never on a
        # study opened later.
        self.auto_model: ModelRequest | None = None
        self._building: set[int] = set()
        self.cine_timer = QtCore.QTimer(self)
        self.cine_timer.setInterval(100)
        self.cine_timer.timeout.connect(self._cine_step)
        self.view_options = ViewOptions(self.window, self.settings, self.cine_timer)
        self.comparison = ComparisonController(self.model, self.window)
        self.comparison.failed.connect(self._error)
        self.frame_timer = QtCore.QTimer(self)  # cine over the fourth axis of a 4-D acquisition
        self.frame_timer.setInterval(200)
        self.frame_timer.timeout.connect(self._frame_step)
        self._connect()
        self.settings.restore_window(self.window)
        layout = str(self.settings.value("layout", "1x3"))
        self.window.mpr.set_layout(layout if layout in LAYOUTS and layout != "compare" else "1x3")
        self._refresh_recent()
        self._refresh_user_presets()

    # --- wiring ---------------------------------------------------------------------------
    def _connect(self) -> None:
        m, w = self.model, self.window
        m.volume_changed.connect(self._on_volume_changed)
        m.cursor_changed.connect(self.render)
        m.window_changed.connect(self._on_window_changed)
        m.slab_changed.connect(self._on_slab_changed)
        m.oblique_changed.connect(self._on_oblique_changed)
        m.layers.changed.connect(self._on_layers_changed)
        m.measurements.changed.connect(self._on_measurements_changed)
        for plane, view in w.mpr.views.items():
            view.clicked.connect(lambda c, r, p=plane: self._on_press(p, c, r))
            view.dragged.connect(lambda c, r, p=plane: self._on_drag(p, c, r))
            view.released.connect(lambda c, r, p=plane: self._on_release(p, c, r))
            view.hovered.connect(lambda c, r, p=plane: self._on_hover(p, c, r))
            view.scrolled.connect(lambda d, p=plane: m.step_slice(p, d))
            view.window_dragged.connect(self._on_window_drag)
            view.activated.connect(lambda p=plane: setattr(w.mpr, "active", p))
            view.vb.sigRangeChanged.connect(lambda *_a, p=plane: self._refresh_annotations(p))
        w.browser.stack_activated.connect(self.load_stack)
        w.browser.tags_requested.connect(self.show_stack_tags)
        w.measurements.delete_requested.connect(self._delete_measurement)
        w.measurements.activated_row.connect(self._goto_measurement)
        w.cancel_button.clicked.connect(self.loader.cancel)
        w.frame_slider.valueChanged.connect(m.set_frame)
        w.resample_button.clicked.connect(self.resample_to_regular_grid)
        w.cine_button.toggled.connect(lambda on: self.frame_timer.start() if on else self.frame_timer.stop())
        self.loader.scanned.connect(self._on_scanned)
        self.loader.thumbnails.connect(self._on_thumbnails)
        self.loader.loaded.connect(self._on_loaded)
        self.loader.failed.connect(self._on_failed)
        self.loader.progress.connect(lambda f, msg: w.set_progress(f, msg, self.loader.busy))
        self.loader.busy_changed.connect(lambda busy: w.set_progress(0.0, "", busy))
        a = w.actions_by_name
        a["open-folder"].triggered.connect(self._ask_folder)
        a["open-file"].triggered.connect(self._ask_file)
        a["open-mask"].triggered.connect(self._ask_mask)
        a["export-results"].triggered.connect(self._ask_export)
        a["save-view"].triggered.connect(lambda: self._ask_screenshot(whole=False))
        a["save-window"].triggered.connect(lambda: self._ask_screenshot(whole=True))
        a["copy-view"].triggered.connect(self.copy_view)
        a["quit"].triggered.connect(w.close)
        for name in LAYOUTS:
            a[f"layout-{name}"].triggered.connect(lambda _=False, n=name: self.set_layout(n))
        a["compare-open"].triggered.connect(self._ask_compare)
        a["add-model"].triggered.connect(self._ask_add_model)
        w.browser.compare_requested.connect(lambda stack: self.comparison.open_stack(stack))
        a["reset-view"].triggered.connect(self.reset_views)
        a["crosshair"].toggled.connect(self._toggle_crosshair)
        a["cine"].toggled.connect(lambda on: self.cine_timer.start() if on else self.cine_timer.stop())
        for name, (wl, _key) in CT_PRESETS.items():
            a[preset_action_name(name)].triggered.connect(lambda _=False, v=wl: self.model.set_window(v))
        a["preset-save"].triggered.connect(self._ask_user_preset)
        a["preset-clear-user"].triggered.connect(self._clear_user_presets)
        a["reset-layout"].triggered.connect(self.reset_layout)
        for mode in SlabMode:
            a[f"slab-{mode.value}"].triggered.connect(lambda _=False, md=mode: self.set_slab(md))
        a["slab-thickness"].triggered.connect(self._ask_slab_thickness)
        a["preset-auto"].triggered.connect(self._auto_window)
        a["window-entry"].triggered.connect(self._ask_window)
        a["invert"].toggled.connect(lambda on: self.model.set_window(self.model.window, invert=on))
        for name, shape in TOOLS.items():
            a[name].triggered.connect(lambda _=False, s=shape: setattr(self, "tool", s))
        a["tool-rotate"].triggered.connect(self._start_rotate_tool)
        a["reset-oblique"].triggered.connect(lambda: self.model.set_oblique(None))
        a["undo"].triggered.connect(self.annotations.undo)
        a["redo"].triggered.connect(self.annotations.redo)
        a["delete-measurement"].triggered.connect(self.annotations.delete_selected)
        a["relabel-measurement"].triggered.connect(lambda: self.annotations.ask_relabel())
        a["export-measurements"].triggered.connect(self._ask_export_measurements)
        a["open-measurements"].triggered.connect(self._ask_measurement_sr)
        w.measurements.selected_id.connect(self.annotations.select)
        w.measurements.relabel_requested.connect(self.annotations.ask_relabel)
        a["shortcuts"].triggered.connect(self.show_shortcuts)
        a["about"].triggered.connect(self.show_about)
        w.files_dropped.connect(self._on_drop)
        w.closing.connect(self.shutdown)

    # --- opening ----------------------------------------------------------------------------
    def open_path(self, path: str | Path, stack_id: str | None = None) -> None:
        """Scan ``path`` in the background and show its first stack (or ``stack_id``)."""
        self.pending_stack_id = stack_id
        self.settings.add_recent(str(path))
        self._refresh_recent()
        self.loader.scan(path)

    def load_stack(self, stack: Stack) -> None:
        self.loader.load(stack)

    def _on_scanned(self, result: ScanResult) -> None:
        stacks = result.stacks()
        if not stacks:
            # The study on screen stays, and so does the series list that belongs to it: a list of
            # the junk folder's errors beside the previous study's images would mislead.
            if self.model.current is None:
                self.window.browser.show_scan(result)
            reasons = "; ".join(f"{Path(p.path).name}: {p.reason}" for p in result.errors[:3])
            self._error(f"No image stack found in {result.root}" + (f" ({reasons})" if reasons else ""))
            return
        self.scan_result = result
        self.window.browser.show_scan(result)
        if self.pending_stack_id is not None:
            try:
                stack = result.stack(self.pending_stack_id)
            except Exception as exc:
                self._error(str(exc))
                return
        else:
            stack = max(stacks, key=lambda s: s.n_slices)
        self.load_stack(stack)

    def _on_thumbnails(self, thumbs: dict[str, np.ndarray]) -> None:
        for stack_id, image in thumbs.items():
            self.window.browser.set_thumbnail(stack_id, image)

    def _on_loaded(self, stack: Stack, volume: Volume) -> None:
        self.current_stack = stack
        self.tags.set_stack(stack)
        self.show_volume(volume, stack)

    def show_stack_tags(self, stack: Stack) -> None:
        """The DICOM tag browser on ``stack``'s first file (from the series browser's menu)."""
        if stack.kind != "dicom" or not stack.headers:
            return
        self.window.tag_dock.show()
        self.window.tag_dock.raise_()
        path = stack.headers[stack.slices[0].header_index if stack.slices else 0].path
        self.tags.show_file(path, f"Series browser, stack {stack.id}: {Path(path).name}")

    def show_volume(self, volume: Volume, stack: Stack | None = None) -> None:
        """Show ``volume`` (loaded from ``stack``, when scanned): the previous study's messages,
        probe reading and analysis go with it."""
        self.analysis.stack = stack
        self.last_error = ""
        self.window.statusBar().clearMessage()
        self.window.probe_label.setText("")
        self.model.open(volume)
        assert self.model.current is not None
        self.annotations.restore(self.model.current)
        self._choose_layout_for_shape()
        md = volume.metadata
        self.window.setWindowTitle(f"RadLens — {md.series_description or md.source or 'volume'}")
        if volume.qa_warnings:
            self.window.statusBar().showMessage("Geometry: " + "; ".join(volume.qa_warnings), 15000)
        self.volume_shown.emit(volume)
        if self.auto_model is not None:
            name, self.auto_model = self.auto_model, None  # once: later studies run nothing by themselves
            self.run_model(name)

    def _confirm_unsuitable(self, question: str) -> bool:
        answer = QtWidgets.QMessageBox.question(
            self.window,
            "Run on an unsuitable input?",
            question,
            QtWidgets.QMessageBox.StandardButton.Yes | QtWidgets.QMessageBox.StandardButton.No,
            QtWidgets.QMessageBox.StandardButton.No,
        )
        return answer == QtWidgets.QMessageBox.StandardButton.Yes

    def _choose_layout_for_shape(self) -> None:
        """A single slice opens alone in the single-view layout (its two reformats would be one
        pixel wide); the next volume of several slices gets the user's layout back."""
        cur = self.model.current
        assert cur is not None
        flat = [p for p in Plane if cur.shape_xyz[p.normal_axis] == 1]
        if len(flat) == 1:
            self._flat_layout = True
            self.window.mpr.set_layout("single", active=flat[0])
        elif self._flat_layout:
            self._flat_layout = False
            layout = str(self.settings.value("layout", "1x3"))
            self.window.mpr.set_layout(layout if layout in LAYOUTS else "1x3")
        else:
            return
        QtCore.QTimer.singleShot(0, self.reset_views)

    def _on_failed(self, kind: str, message: str) -> None:
        self._error(f"{kind}: {message}")

    def _error(self, message: str) -> None:
        self.last_error = message
        self.window.statusBar().showMessage(message, 30000)
        self.error_shown.emit(message)
        if self.interactive and self.window.isVisible():
            QtWidgets.QMessageBox.warning(self.window, "RadLens", message)

    def open_mask(self, path: str | Path) -> bool:
        """Read an overlay file (:func:`viewer.models.overlay_files.read_overlay`: labels or a map)
        on a worker thread; on the GUI thread the layer is added and ``overlay_opened`` emitted, or
        the reason shown. False when no image is open."""
        cur = self.model.current
        if cur is None:
            self._error("Open an image before opening a mask")
            return False
        from viewer.models.overlay_files import read_overlay

        name = Path(path).name
        volume = cur.volume
        run_in_background(
            lambda: read_overlay(volume, path),
            self._overlay_workers,
            lambda layer: self._add_overlay(layer, volume),
            lambda exc: self._error(f"Cannot open {name} as an overlay: {exc}"),
        )
        return True

    def _add_overlay(self, layer: LabelLayer | HeatmapLayer, volume: Volume) -> None:
        cur = self.model.current
        if cur is None or cur.volume is not volume:
            self._error(f"{layer.name} was read for an image that is no longer open")
            return
        self.model.layers.add(layer)
        self.overlay_opened.emit(layer)

    def add_heatmap(self, name: str, values: np.ndarray, **kw: Any) -> HeatmapLayer:
        layer = HeatmapLayer(name=name, values=values, **kw)
        self.model.layers.add(layer)
        return layer

    # --- rendering --------------------------------------------------------------------------
    def _on_volume_changed(self) -> None:
        self._shown_index = {p: None for p in Plane}
        for view in self.window.mpr.views.values():
            view.set_crosshair_angle(0.0)  # a new volume opens on the usual planes
        self._show_frame_controls()
        self._show_qa_banner()
        cur = self.model.current
        self.window.layer_panel.refresh()
        if cur is not None:
            self._build_in_background(cur.cache)
            wl = self.model.window
            self.window.wl_label.setText(f"W {wl.width:.0f} L {wl.center:.0f}{' inv' if self.model.invert else ''}")
        for view in self.window.mpr.views.values():
            if cur is None:
                view.clear()
        self._refresh_file_presets()
        self._on_measurements_changed()
        if cur is not None:
            # A new volume's first frame is drawn one pane per event-loop turn, so no single
            # turn blocks the GUI for the three slices, their lookup tables and paints at once.
            self.render(only=Plane.AXIAL)
            for n, plane in enumerate((Plane.CORONAL, Plane.SAGITTAL)):
                self._staged.add(plane)
                QtCore.QTimer.singleShot(8 * (n + 1), lambda p=plane: self._render_staged(p))

    def _render_staged(self, plane: Plane) -> None:
        self._staged.discard(plane)
        self.render(only=plane)

    def _on_window_changed(self) -> None:
        self._shown_index = {p: None for p in Plane}
        wl = self.model.window
        self.window.wl_label.setText(f"W {wl.width:.0f} L {wl.center:.0f}{' inv' if self.model.invert else ''}")
        self.render()

    def _fill_value(self, cur: Any) -> float:
        """What an oblique reslice shows outside the volume: its lowest value (air, background)."""
        if self._fill is None or self._fill[0] is not cur:
            self._fill = (cur, float(cur.display.min()) if cur.display.size else 0.0)
        return self._fill[1]

    def _on_slab_changed(self) -> None:
        self._shown_index = {p: None for p in Plane}
        self.window.actions_by_name[f"slab-{self.model.slab.mode.value}"].setChecked(True)
        self.render()

    def set_slab(self, mode: SlabMode, thickness_mm: float | None = None) -> None:
        """Draw the planes as a thick-slab projection (or one slice with ``SlabMode.OFF``)."""
        thickness = self.model.slab.thickness_mm if thickness_mm is None else thickness_mm
        try:
            self.model.set_slab(Slab(mode, thickness))
        except ValueError as exc:
            self._error(str(exc))

    def _ask_slab_thickness(self) -> None:
        value, ok = QtWidgets.QInputDialog.getDouble(
            self.window, "Thick slab", "Slab thickness (mm):", self.model.slab.thickness_mm, 0.1, 500.0, 1
        )
        if ok:
            mode = self.model.slab.mode if self.model.slab.active else SlabMode.MIP
            self.set_slab(mode, value)

    def _on_layers_changed(self) -> None:
        self._shown_index = {p: None for p in Plane}
        cur = self.model.current
        if cur is not None:
            for layer in self.model.layers:
                cache = pr.layer_cache(cur, layer)
                if cache is not None and not cache.copies:
                    self._build_in_background(cache)
        self.render()

    def _build_in_background(self, cache: PlaneCache) -> None:
        """Contiguous per-plane copies, so sagittal/coronal slicing stays fast; the GUI never waits."""
        if id(cache) in self._building:
            return
        self._building.add(id(cache))
        worker = create_worker(cache.build)
        worker.finished.connect(lambda: self._building.discard(id(cache)))
        worker.start()

    def _on_measurements_changed(self) -> None:
        cur = self.model.current
        rows = []
        if cur is not None:
            for m in self.model.measurements:
                rows.append((m.id, m.shape.value, m.plane.value, pr.measurement_label(m, cur), m.label))
            for plane, view in self.window.mpr.views.items():
                view.set_measurements(pr.measurement_shapes(self.model, plane, self.annotations.selected))
        self.window.measurements.show_rows(rows, self.annotations.selected)

    def render(self, only: Plane | None = None) -> None:
        """Bring every view up to date; only planes whose slice changed get a new image."""
        cur = self.model.current
        if cur is None:
            return
        cursor = self.model.cursor
        lut = grey_lut(self.model.invert)
        for plane, view in self.window.mpr.views.items():
            if only is not None and plane != only:
                continue
            index = cursor[plane.normal_axis]
            ob = self.model.oblique
            oblique = ob is not None and ob.affects(plane)
            key = (index, ob, cursor) if oblique else index
            if self._shown_index[plane] != key:
                if oblique:
                    assert ob is not None
                    coords = reslice_coordinates(cur, plane, cursor, ob)
                    image = reslice(cur.display, coords, fill=self._fill_value(cur))
                    view.set_image(image, self.model.window.levels, cur.plane_pixel_mm(plane), lut)
                    view.set_overlays(pr.overlays_for(self.model, plane, index, coords))
                    view.set_measurements([])  # measurements live on the usual planes
                else:
                    image = cur.slab_image(plane, index, self.model.slab)
                    view.set_image(image, self.model.window.levels, cur.plane_pixel_mm(plane), lut)
                    view.set_overlays(pr.overlays_for(self.model, plane, index))
                    view.set_measurements(pr.measurement_shapes(self.model, plane, self.annotations.selected))
                self._shown_index[plane] = key
            view.set_crosshair(*cur.display_to_plane(plane, (float(cursor[0]), float(cursor[1]), float(cursor[2]))))
            view.set_annotations(self._annotations(plane))

    def _refresh_annotations(self, plane: Plane) -> None:
        """Zoom (Ctrl+wheel, resize, reset) changes the corner text without a new slice."""
        if self.model.current is not None:
            self.window.mpr.views[plane].set_annotations(self._annotations(plane))

    def _annotations(self, plane: Plane) -> Annotations:
        cur = self.model.current
        assert cur is not None
        md = cur.volume.metadata
        view = self.window.mpr.views[plane]
        n = cur.shape_xyz[plane.normal_axis]
        wl = self.model.window
        slab = self.model.slab
        ob = self.model.oblique
        return Annotations(
            top_left=[t for t in (md.patient_name.replace("^", " "), md.study_date, md.series_description) if t],
            top_right=[
                plane.value.capitalize(),
                f"slice {self._slice_number(plane)}/{n}",
                f"{pr.slice_position_mm(cur, plane, self.model.cursor):.1f} mm",
                *([f"{slab.mode.label} {slab.thickness_mm:g} mm"] if slab.active else []),
                *([f"oblique {ob.angle_deg:+.0f}°"] if ob is not None and ob.affects(plane) else []),
                *([self._frame_text()] if self.model.series is not None else []),
            ],
            bottom_left=[f"W {wl.width:.0f} L {wl.center:.0f}"],
            bottom_right=[f"zoom {view.zoom_factor():.2f}×"],
            edges=pr.edge_labels(cur, plane),
        )

    def _slice_number(self, plane: Plane) -> int:
        """The slice number shown for ``plane``, from 1: the stored slice's own (as the score plot,
        key images and reports count) where the pane shows the acquired slices, else its place
        along the pane's normal."""
        cur = self.model.current
        assert cur is not None
        index = self.model.cursor[plane.normal_axis]
        if cur.axis_map.source_axis[plane.normal_axis] != 2:
            return index + 1
        ijk = cur.axis_map.display_to_source(self.model.cursor, cur.volume.size_ijk)
        return int(round(ijk[2])) + 1

    # --- interaction ------------------------------------------------------------------------
    def _display_point(self, plane: Plane, col: float, row: float) -> tuple[float, float, float]:
        cur = self.model.current
        assert cur is not None
        p = cur.plane_to_display(plane, col, row, float(self.model.cursor[plane.normal_axis]))
        ob = self.model.oblique
        return rotate_point(cur, ob, self.model.cursor, p) if ob is not None and ob.affects(plane) else p

    @property
    def tool(self) -> Shape | None:
        """The measuring tool a left press uses (None: the crosshair, which also grabs shapes)."""
        return self.annotations.tool

    @tool.setter
    def tool(self, shape: Shape | None) -> None:
        self._rotating = False
        self.annotations.set_tool(shape)

    def _start_rotate_tool(self) -> None:
        """Tools → Rotate crosshair: a left drag in a pane turns its crosshair about the cursor."""
        self.annotations.set_tool(None)
        self._rotating = True

    def _rotate_drag(self, plane: Plane, col: float, row: float, first: bool) -> None:
        cur = self.model.current
        assert cur is not None
        c0, r0 = cur.display_to_plane(plane, tuple(float(v) for v in self.model.cursor))  # type: ignore[arg-type]
        sx, sy = cur.plane_pixel_mm(plane)
        pointer = float(np.degrees(np.arctan2(-(row - r0) * sy, (col - c0) * sx)))  # counter-clockwise on screen
        if first:
            ob = self.model.oblique
            base = ob.angle_deg if ob is not None and ob.source == plane else 0.0
            self._rotation_start = (plane, base, pointer)
            return
        if self._rotation_start is None or self._rotation_start[0] != plane:
            return
        _plane, base, start = self._rotation_start
        angle = (base + pointer - start + 180.0) % 360.0 - 180.0
        self.model.set_oblique(Oblique(plane, angle))

    def _on_oblique_changed(self) -> None:
        self._shown_index = {p: None for p in Plane}
        ob = self.model.oblique
        for plane, view in self.window.mpr.views.items():
            view.set_crosshair_angle(ob.angle_deg if ob is not None and ob.source == plane else 0.0)
        self.render()

    def _grab_tolerance(self, plane: Plane) -> float:
        view = self.window.mpr.views[plane]
        return GRAB_PIXELS * view.mm_per_screen_pixel() / max(min(view.pixel_mm), 1e-6)

    def _on_press(self, plane: Plane, col: float, row: float) -> None:
        if self.model.current is None:
            return
        if self._rotating:
            self._rotate_drag(plane, col, row, first=True)
            return
        ob = self.model.oblique
        if ob is not None and ob.affects(plane) and self.tool is not None:
            self.window.statusBar().showMessage(
                "This pane is resliced obliquely: measure on the usual planes (View → Reset oblique planes)", 10000
            )
            return
        p = self._display_point(plane, col, row)
        if not self.annotations.press(plane, p, self._grab_tolerance(plane)):
            self.model.set_cursor(p)

    def _on_drag(self, plane: Plane, col: float, row: float) -> None:
        if self.model.current is None:
            return
        if self._rotating:
            self._rotate_drag(plane, col, row, first=False)
            return
        p = self._display_point(plane, col, row)
        if not self.annotations.drag(plane, p) and self.tool is None:
            self.model.set_cursor(p)

    def _on_release(self, plane: Plane, col: float, row: float) -> None:
        if self.model.current is not None:
            self.annotations.release(plane, self._display_point(plane, col, row))

    def _on_hover(self, plane: Plane, col: float, row: float) -> None:
        cur = self.model.current
        if cur is None:
            return
        self.annotations.hover(plane, self._display_point(plane, col, row))
        x, y, z = (int(round(v)) for v in self._display_point(plane, col, row))
        nx, ny, nz = cur.shape_xyz
        if not (0 <= x < nx and 0 <= y < ny and 0 <= z < nz):
            self.window.probe_label.setText("")
            return
        i, j, k = (int(round(v)) for v in cur.axis_map.display_to_source((x, y, z), cur.volume.size_ijk))
        lps = cur.lps_at((x, y, z))
        value = cur.value_at((x, y, z))
        unit = " HU" if self.analysis.current_modality() == "CT" else ""
        shown = f"{value}" if np.ndim(value) else f"{float(value):g}{unit}"
        self.window.probe_label.setText(
            f"voxel ({i}, {j}, {k})  LPS ({lps[0]:.1f}, {lps[1]:.1f}, {lps[2]:.1f}) mm  value {shown}"
        )

    def _on_window_drag(self, dx: float, dy: float, first: bool, fine: bool = False) -> None:
        if self.model.current is None:
            return
        if first or self._wl_start is None:
            self._wl_start = self.model.window
            return
        self.model.set_window(drag_window(self._wl_start, dx, dy, fine=fine))

    def _auto_window(self) -> None:
        if self.model.current is not None:
            self.model.set_window(auto_window(self.model.current.volume.voxels))

    def _delete_measurement(self, mid: int) -> None:
        self.annotations.delete(mid)

    def _goto_measurement(self, mid: int) -> None:
        for m in self.model.measurements:
            if m.id == mid:
                self.model.set_cursor(m.centre())

    def _show_frame_controls(self) -> None:
        """The volume slider and its label, for a 4-D acquisition only (written without feedback)."""
        w, series = self.window, self.model.series
        for widget in (w.frame_label, w.frame_slider, w.cine_button):
            widget.setVisible(series is not None)
        if series is None:
            self.frame_timer.stop()
            w.cine_button.setChecked(False)
            return
        with QtCore.QSignalBlocker(w.frame_slider):
            w.frame_slider.setRange(0, series.n_volumes - 1)
            w.frame_slider.setValue(self.model.frame)
        w.frame_label.setText(self._frame_text())

    def _show_qa_banner(self) -> None:
        """The shown stack's QA findings stay in the status bar while it is shown; the resampling
        button appears where the slices are off a regular grid."""
        w, cur = self.window, self.model.current
        warnings = cur.volume.qa_warnings if cur is not None else ()
        w.qa_label.setVisible(bool(warnings))
        text = "; ".join(warnings)
        w.qa_label.setText(("⚠ " + text[:90] + ("…" if len(text) > 90 else "")) if warnings else "")
        w.qa_label.setToolTip("\n".join(warnings))
        w.resample_button.setVisible(cur is not None and cur.volume.slice_positions is not None)

    def resample_to_regular_grid(self) -> None:
        """Open the shown stack resampled onto a regular grid (in a worker; the result says so)."""
        source = self.model.series or (self.model.current.volume if self.model.current is not None else None)
        if source is None or source.slice_positions is None:
            return
        from inference.io.resample import regular_grid

        worker = create_worker(lambda: regular_grid(source))
        worker.returned.connect(self.show_volume)
        worker.errored.connect(lambda exc: self._error(f"Cannot resample: {exc}"))
        self._overlay_workers.add(worker)
        worker.finished.connect(lambda: self._overlay_workers.discard(worker))
        worker.start()

    def _frame_text(self) -> str:
        series = self.model.series
        if series is None:
            return ""
        frame = series.frames[self.model.frame]
        return f"{frame.axis.value} {frame.label} ({self.model.frame + 1}/{series.n_volumes})"

    def _frame_step(self) -> None:
        series = self.model.series
        if series is None:
            self.frame_timer.stop()
            return
        self.window.frame_slider.setValue((self.model.frame + 1) % series.n_volumes)

    def _cine_step(self) -> None:
        cur = self.model.current
        if cur is None:
            return
        plane = self.window.mpr.active
        axis = plane.normal_axis
        x = list(self.model.cursor)
        x[axis] = (x[axis] + 1) % cur.shape_xyz[axis]
        self.model.set_cursor((x[0], x[1], x[2]))

    def set_layout(self, name: str) -> None:
        if name == "compare":
            if self.comparison.comparison is None:
                self._error("Open a study for comparison first (File → Open study for comparison)")
                return
            self.window.mpr.set_layout(name)
            self.comparison.render()
        else:
            self.window.mpr.set_layout(name)
            self.settings.set_value("layout", name)
        QtCore.QTimer.singleShot(0, self.reset_views)

    def add_model(self, path: str | Path, *, trust: bool = False) -> bool:
        """File → Add model: the card of the model at ``path`` written into the user's model
        folder (on a worker thread), then offered in the Analysis panel. A bundle whose config
        reaches beyond MONAI and PyTorch is added only when the user says they trust it."""
        from inference.models.model_import import UntrustedModelError, add_model
        from inference.models.registry import discover

        def work() -> tuple[str, Any]:
            card_path = add_model(path, trust=trust)
            return card_path.parent.name, discover()

        def added(found: tuple[str, Any]) -> None:
            name, registry = found
            self.analysis.reload_models(registry)
            self.window.statusBar().showMessage(f"Model {name} added", 30000)

        def failed(exc: BaseException) -> None:
            if isinstance(exc, UntrustedModelError) and self.interactive and not trust:
                answer = QtWidgets.QMessageBox.question(
                    self.window, "Trust this model?", f"{exc.reason}\n\nAdd it anyway?"
                )
                if answer == QtWidgets.QMessageBox.StandardButton.Yes:
                    self.add_model(path, trust=True)
                    return
            self._error(f"Cannot add the model: {exc}")

        run_in_background(work, self._overlay_workers, added, failed)
        return True

    def _ask_add_model(self) -> None:
        folder = ask_folder(self.window, "Add a model (MONAI bundle folder)", str(Path.home()))
        if folder:
            self.add_model(folder)

    def _ask_compare(self) -> None:
        folder = ask_folder(self.window, "Open study for comparison", self.settings.last_folder())
        if folder:
            self.comparison.open_path(folder)

    def reset_views(self) -> None:
        for view in self.window.mpr.views.values():
            view.reset_view()
        self._shown_index = {p: None for p in Plane}
        self.render()

    def _toggle_crosshair(self, on: bool) -> None:
        for view in self.window.mpr.views.values():
            view.show_crosshair = on
        self.render()

    # --- dialogs ----------------------------------------------------------------------------
    def _ask_folder(self) -> None:
        if folder := ask_folder(self.window, "Open DICOM folder", self.settings.last_folder()):
            self.open_path(folder)

    def _ask_file(self) -> None:
        if path := ask_open_file(self.window, Asked.IMAGE, self.settings.last_folder()):
            self.open_path(path)

    def _ask_mask(self) -> None:
        if path := ask_open_file(self.window, Asked.MASK, self.settings.last_folder()):
            self.open_mask(path)

    def export_results(self, out_root: str | Path) -> bool:
        """Write the open stack's analysis (the batch command's outputs) under ``out_root``."""
        cur, result, card = self.model.current, self.analysis.result, self.analysis.result_card
        if cur is None or self.current_stack is None or result is None or card is None:
            self._error("Run a model on the open stack before exporting its results")
            return False
        return self.exporter.export(
            Path(out_root), stack=self.current_stack, volume=cur.volume, result=result, card=card
        )

    def _ask_export(self) -> None:
        if folder := ask_folder(self.window, "Export results into", str(Path.home())):
            self.export_results(folder)

    def _on_exported(self, exported: Any) -> None:
        note = f" ({'; '.join(exported.notes)})" if exported.notes else ""
        self.window.statusBar().showMessage(f"Exported {len(exported.files)} files to {exported.folder}{note}", 30000)

    def _ask_window(self) -> None:
        wl = self.model.window
        text, ok = QtWidgets.QInputDialog.getText(
            self.window, "Window/level", "Width, level:", text=f"{wl.width:g}, {wl.center:g}"
        )
        if ok:
            try:
                width, level = (float(v) for v in text.replace(";", ",").split(","))
            except ValueError:
                self._error(f"Enter the window as 'width, level', got {text!r}")
                return
            self.model.set_window(WindowLevel(level, width))

    def _ask_screenshot(self, whole: bool) -> None:
        if path := ask_save_file(self.window, Asked.SCREENSHOT, "radlens.png"):
            self.save_screenshot(path, whole=whole)

    def save_screenshot(self, path: str | Path, whole: bool = True) -> Path:
        """Write a PNG of the window (or the active view) atomically."""
        widget = self.window if whole else self.window.mpr.views[self.window.mpr.active]
        pixmap = widget.grab()
        out = Path(path)
        tmp = out.with_name(f".{out.name}.tmp.png")
        if not pixmap.save(str(tmp), "PNG"):
            raise OSError(f"cannot write {out}")
        tmp.replace(out)
        return out

    def copy_view(self) -> None:
        view = self.window.mpr.views[self.window.mpr.active]
        QtWidgets.QApplication.clipboard().setPixmap(view.grab())

    def show_shortcuts(self) -> None:
        rows = "".join(f"<tr><td>{a}</td><td><b>{k}</b></td></tr>" for a, k in self.window.shortcut_table())
        QtWidgets.QMessageBox.information(self.window, "Keyboard shortcuts", f"<table>{rows}</table>")

    def show_about(self) -> None:
        from viewer.licences import licence_html

        QtWidgets.QMessageBox.about(self.window, "About RadLens", f"<h3>RadLens {__version__}</h3>{licence_html()}")

    def _refresh_recent(self) -> None:
        menu = self.window.recent_menu
        menu.clear()
        for folder in self.settings.recent():

            def open_recent(f: str = folder) -> None:
                self.open_path(f)

            menu.addAction(folder, open_recent)

    def _refresh_user_presets(self) -> None:
        menu = self.window.user_presets_menu
        menu.clear()
        presets = self.settings.user_presets()
        for name, wl in presets:
            menu.addAction(f"{name}: W {wl.width:g} L {wl.center:g}", self._window_setter(wl))
        menu.setEnabled(bool(presets))

    def _window_setter(self, wl: WindowLevel) -> Callable[[], None]:
        def set_window() -> None:
            self.model.set_window(wl)

        return set_window

    def save_user_preset(self, name: str) -> None:
        """Keep the current window as the user's preset ``name`` (listed under Window → My presets)."""
        if not name.strip():
            self._error("A window preset needs a name")
            return
        self.settings.add_user_preset(name, self.model.window)
        self._refresh_user_presets()

    def _ask_user_preset(self) -> None:
        wl = self.model.window
        name, ok = QtWidgets.QInputDialog.getText(
            self.window, "Save window preset", f"Name for W {wl.width:g} L {wl.center:g}:"
        )
        if ok:
            self.save_user_preset(name)

    def _clear_user_presets(self) -> None:
        self.settings.clear_user_presets()
        self._refresh_user_presets()

    def reset_layout(self) -> None:
        """The docks where a first launch puts them, the default window size and the 1×3 layout."""
        self.window.restoreState(self.window.default_state)
        self.window.resize(*DEFAULT_SIZE)
        self.settings.forget_window()
        self.set_layout("1x3")

    def _refresh_file_presets(self) -> None:
        menu = self.window.file_presets_menu
        menu.clear()
        cur = self.model.current
        if cur is None:
            return
        for preset in cur.volume.metadata.windows:
            wl = WindowLevel(preset.center, preset.width)
            menu.addAction(f"{preset.name}: W {preset.width:g} L {preset.center:g}", self._window_setter(wl))

    def _on_drop(self, paths: list[str]) -> None:
        if paths:
            self.open_path(paths[0])

    def run_model(self, request: ModelRequest) -> bool:
        """Run a model on the shown volume: by name, or the modality's default model."""
        cur = self.model.current
        if cur is None:
            return False
        try:
            card = self.analysis.registry.card_for(request, self.analysis.current_modality())
        except Exception as exc:
            self._error(str(exc))
            return False
        if card is None:
            self.window.statusBar().showMessage(
                f"no default model for {cur.volume.metadata.modality or 'this modality'}", 10000
            )
            return False
        index = self.window.analysis_panel.model_box.findData(card.key)
        if index >= 0:
            self.window.analysis_panel.model_box.setCurrentIndex(index)
        self.analysis.run(card.key)
        return True

    def _on_analysis_finished(self, _result: object) -> None:
        if self.window.mpr.layout_name == "1x3":
            self.set_layout("2x2")  # the score plot lives in the fourth pane

    def _refresh_undo_actions(self) -> None:
        a = self.window.actions_by_name
        a["undo"].setEnabled(self.annotations.history.can_undo)
        a["redo"].setEnabled(self.annotations.history.can_redo)

    def _ask_text(self, title: str, prompt: str, current: str) -> str | None:
        text, ok = QtWidgets.QInputDialog.getText(self.window, title, prompt, text=current)
        return text if ok else None

    def export_measurements(self, folder: str | Path) -> bool:
        """File → Export measurements: ``measurements.csv`` and a DICOM SR into ``folder``."""
        return self.annotations.export(Path(folder), self.current_stack)

    def _ask_export_measurements(self) -> None:
        folder = ask_folder(self.window, "Export measurements into", str(Path.home()))
        if folder:
            self.export_measurements(folder)

    def open_measurements(self, path: str | Path) -> bool:
        """File → Open measurements: a DICOM SR's measurements on the open study, as annotations."""
        return self.annotations.open_sr(path)

    def _ask_measurement_sr(self) -> None:
        path = ask_open_file(self.window, Asked.MEASUREMENT_SR, self.settings.last_folder())
        if path:
            self.open_measurements(path)

    def shutdown(self) -> None:
        self.annotations.shutdown()
        self.comparison.shutdown()
        self.cine_timer.stop()
        self.frame_timer.stop()
        self.analysis.shutdown()
        self.settings.save_window(self.window)
        self.loader.shutdown()

    def wait_idle(self, timeout_s: float = 60.0) -> bool:
        """Process events until no load, analysis, export or overlay read is running and a new
        volume's first frame is drawn in every pane (for headless screenshots and tests)."""
        end = time.monotonic() + timeout_s
        app = QtWidgets.QApplication.instance()
        while self.busy and time.monotonic() < end:
            assert app is not None
            app.processEvents(QtCore.QEventLoop.ProcessEventsFlag.AllEvents, 50)
        return not self.busy

    @property
    def drawing(self) -> bool:
        """A new volume's first frame is not yet drawn in every pane."""
        return bool(self._staged)

    @property
    def busy(self) -> bool:
        return bool(
            self.loader.busy
            or self.analysis.running
            or self.exporter.busy
            or self._overlay_workers
            or self.drawing
            or self.tags.busy
            or self.annotations.busy
            or self.comparison.busy
        )
