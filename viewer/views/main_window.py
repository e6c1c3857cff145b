"""The main window: MPR panes, docks, menus, status bar. Widgets only; the controller wires them."""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from inference.display.window_level import AUTO_SHORTCUT, CT_PRESETS, preset_action_name
from viewer.models.layers import LayerList
from viewer.models.measurements import Plane

from .analysis_panel import AnalysisPanel, SliceScorePlot
from .layer_panel import LayerPanel
from .measurement_panel import MeasurementPanel
from .series_browser import SeriesBrowser
from .slice_view import SliceView
from .tag_browser import TagBrowser

LAYOUTS = ("1x3", "2x2", "single", "compare")
#: The measuring tools: action name, menu text, shortcut.
TOOL_ACTIONS = (
    ("tool-crosshair", "Crosshair (select, move, resize)", "Esc"),
    ("tool-distance", "Distance ruler", "D"),
    ("tool-rectangle", "Rectangle ROI", "Shift+R"),
    ("tool-ellipse", "Ellipse ROI", "E"),
    ("tool-freehand", "Freehand ROI", "F"),
    ("tool-angle", "Angle", "A"),
    ("tool-cobb", "Cobb angle", "Shift+A"),
    ("tool-arrow", "Arrow with text", "T"),
    ("tool-point", "Point marker", "P"),
    ("tool-rotate", "Rotate crosshair (oblique MPR)", "O"),
)
DEFAULT_SIZE = (1400, 800)
CINE_SPEEDS = (2, 5, 10, 15, 20, 30)
MINIMUM_SIZE = (960, 600)
LEFT_DOCK_WIDTH = 330  # the series list: thumbnail, name, modality, slices, size
RIGHT_DOCK_WIDTH = 270


class MprPanel(QtWidgets.QWidget):
    """Three slice views plus a free fourth pane, in one of :data:`LAYOUTS`."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.views = {plane: SliceView(plane) for plane in Plane}
        self.fourth = SliceScorePlot()
        self.compare_view = SliceView(Plane.AXIAL)  # the second study of a comparison, beside the active pane
        self.compare_view.setObjectName("slice-view-compare")
        self.grid = QtWidgets.QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(2)
        self.layout_name = "1x3"
        self.active = Plane.AXIAL
        self.set_layout("1x3")

    def set_layout(self, name: str, active: Plane | None = None) -> None:
        if name not in LAYOUTS:
            raise ValueError(f"unknown layout {name!r}; choose one of {', '.join(LAYOUTS)}")
        self.layout_name = name
        if active is not None:
            self.active = active
        widgets: list[QtWidgets.QWidget] = [*self.views.values(), self.fourth, self.compare_view]
        for w in widgets:
            self.grid.removeWidget(w)
            w.hide()
        for c in range(3):
            self.grid.setColumnStretch(c, 0)
            self.grid.setRowStretch(c, 0)
        if name == "1x3":
            for col, plane in enumerate(Plane):
                self.grid.addWidget(self.views[plane], 0, col)
                self.grid.setColumnStretch(col, 1)
        elif name == "2x2":
            quarters: list[QtWidgets.QWidget] = [*self.views.values(), self.fourth]  # not the comparison pane
            for n, quarter in enumerate(quarters):
                self.grid.addWidget(quarter, n // 2, n % 2)
            for i in range(2):
                self.grid.setColumnStretch(i, 1)
                self.grid.setRowStretch(i, 1)
        elif name == "compare":
            self.compare_view.plane = self.active
            self.grid.addWidget(self.views[self.active], 0, 0)
            self.grid.addWidget(self.compare_view, 0, 1)
            for i in range(2):
                self.grid.setColumnStretch(i, 1)
        else:
            self.grid.addWidget(self.views[self.active], 0, 0)
        for w in widgets:
            if self.grid.indexOf(w) >= 0:
                w.show()


class MainWindow(QtWidgets.QMainWindow):
    """Holds the widgets and actions; behaviour lives in the controller."""

    files_dropped = QtCore.Signal(list)  # local paths
    closing = QtCore.Signal()

    def __init__(self, layers: LayerList) -> None:
        super().__init__()
        self.setObjectName("radlens-main-window")
        self.setWindowTitle("RadLens")
        self.setAcceptDrops(True)
        self.mpr = MprPanel()
        self.setCentralWidget(self.mpr)
        self.browser = SeriesBrowser()
        self.layer_panel = LayerPanel(layers)
        self.measurements = MeasurementPanel()
        self.analysis_panel = AnalysisPanel()
        self.browser_dock = self._dock("Series", self.browser, QtCore.Qt.DockWidgetArea.LeftDockWidgetArea)
        self.layer_dock = self._dock("Layers", self.layer_panel, QtCore.Qt.DockWidgetArea.RightDockWidgetArea)
        self.measure_dock = self._dock("Measurements", self.measurements, QtCore.Qt.DockWidgetArea.RightDockWidgetArea)
        self.analysis_dock = self._dock("Analysis", self.analysis_panel, QtCore.Qt.DockWidgetArea.LeftDockWidgetArea)
        self.tag_browser = TagBrowser()
        self.tag_dock = self._dock("DICOM tags", self.tag_browser, QtCore.Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.measure_dock, self.tag_dock)
        self.measure_dock.raise_()
        self.tag_dock.hide()
        self._build_status_bar()
        self.actions_by_name: dict[str, QtGui.QAction] = {}
        self._build_menus()
        # Below this the panes, docks and corner text no longer fit; it also keeps a tiny window's
        # dock widths from being saved and carried into later launches.
        self.setMinimumSize(MINIMUM_SIZE[0], MINIMUM_SIZE[1])
        self.resize(*DEFAULT_SIZE)
        # Docks start at a width that leaves the panes most of a small window (left unset, the
        # Analysis panel's description made the left column half of a 1024-wide window).
        horizontal = QtCore.Qt.Orientation.Horizontal
        self.resizeDocks([self.browser_dock, self.analysis_dock], [LEFT_DOCK_WIDTH, LEFT_DOCK_WIDTH], horizontal)
        self.resizeDocks([self.layer_dock, self.measure_dock], [RIGHT_DOCK_WIDTH, RIGHT_DOCK_WIDTH], horizontal)
        self.default_state = self.saveState()

    def _dock(self, title: str, widget: QtWidgets.QWidget, area: QtCore.Qt.DockWidgetArea) -> QtWidgets.QDockWidget:
        dock = QtWidgets.QDockWidget(title, self)
        dock.setObjectName(f"dock-{title.lower()}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.probe_label = QtWidgets.QLabel("")
        self.probe_label.setObjectName("probe")
        self.wl_label = QtWidgets.QLabel("")
        self.progress = QtWidgets.QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(180)
        self.progress.setEnabled(False)
        self.progress.setTextVisible(False)
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        # The fourth axis of a 4-D acquisition (time, b-value, echo): shown only when one is open.
        self.frame_label = QtWidgets.QLabel("")
        self.frame_label.setObjectName("frame")
        self.frame_slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.frame_slider.setObjectName("frame-slider")
        self.frame_slider.setMaximumWidth(200)
        self.frame_slider.setToolTip("Volume along the fourth axis (time, diffusion, echo)")
        self.cine_button = QtWidgets.QPushButton("Cine")
        self.cine_button.setCheckable(True)
        self.cine_button.setToolTip("Play the volumes in turn")
        # Geometry QA of the shown stack, for as long as it is shown, and the explicit fix where one exists.
        self.qa_label = QtWidgets.QLabel("")
        self.qa_label.setObjectName("qa-banner")
        self.qa_label.setStyleSheet("color: #f0b400;")
        self.qa_label.setMaximumWidth(420)
        self.resample_button = QtWidgets.QPushButton("Resample to regular grid")
        self.resample_button.setObjectName("resample")
        self.resample_button.setToolTip("Interpolate the slices onto a regular grid (linear along the slice axis)")
        for widget in (self.frame_label, self.frame_slider, self.cine_button, self.qa_label, self.resample_button):
            widget.setVisible(False)
        bar.addWidget(self.probe_label, 1)
        bar.addPermanentWidget(self.qa_label)
        bar.addPermanentWidget(self.resample_button)
        bar.addPermanentWidget(self.frame_label)
        bar.addPermanentWidget(self.frame_slider)
        bar.addPermanentWidget(self.cine_button)
        bar.addPermanentWidget(self.wl_label)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.cancel_button)

    def _action(
        self,
        menu: QtWidgets.QMenu,
        name: str,
        text: str,
        shortcut: str | QtGui.QKeySequence | QtGui.QKeySequence.StandardKey | None = None,
        checkable: bool = False,
    ) -> QtGui.QAction:
        action = QtGui.QAction(text, self)
        action.setObjectName(name)
        if shortcut is not None:
            action.setShortcut(QtGui.QKeySequence(shortcut))
        action.setCheckable(checkable)
        menu.addAction(action)
        self.addAction(action)  # shortcuts work even when the menu bar is hidden
        self.actions_by_name[name] = action
        return action

    def _build_menus(self) -> None:
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self._action(f, "open-folder", "Open &folder…", QtGui.QKeySequence.StandardKey.Open)
        self._action(f, "open-file", "Open f&ile…", "Ctrl+Shift+O")
        self._action(f, "open-mask", "Open &segmentation (mask or DICOM SEG)…", "Ctrl+M")
        self.recent_menu = f.addMenu("&Recent folders")
        f.addSeparator()
        self._action(f, "export-results", "&Export results (SEG, NIfTI, findings, report)…", "Ctrl+E")
        self._action(f, "compare-open", "Open study for &comparison…", "Ctrl+Shift+P")
        self._action(f, "add-model", "Add &model (MONAI bundle folder)…")
        self._action(f, "open-measurements", "Open measurements (DICOM SR)…")
        self._action(f, "export-measurements", "Export measurements (DICOM SR, CSV)…")
        self._action(f, "save-view", "Save view screenshot…", "Ctrl+S")
        self._action(f, "save-window", "Save window screenshot…", "Ctrl+Shift+S")
        self._action(f, "copy-view", "Copy view to clipboard", "Ctrl+Shift+C")
        f.addSeparator()
        self._action(f, "quit", "&Quit", QtGui.QKeySequence.StandardKey.Quit)
        e = mb.addMenu("&Edit")
        self._action(e, "undo", "&Undo", QtGui.QKeySequence.StandardKey.Undo).setEnabled(False)
        redo = self._action(e, "redo", "&Redo", "Ctrl+Shift+Z")
        redo.setShortcuts([QtGui.QKeySequence("Ctrl+Shift+Z"), QtGui.QKeySequence("Ctrl+Y")])
        redo.setEnabled(False)
        e.addSeparator()
        delete = self._action(e, "delete-measurement", "&Delete measurement", QtGui.QKeySequence.StandardKey.Delete)
        # Only over the slice views: the measurements panel's own Delete removes its selected rows.
        self.removeAction(delete)
        self.mpr.addAction(delete)
        delete.setShortcutContext(QtCore.Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self._action(e, "relabel-measurement", "&Label measurement…", "Ctrl+L")
        v = mb.addMenu("&View")
        for name in LAYOUTS:
            key = {"1x3": "F2", "2x2": "F3", "single": "F4", "compare": "F5"}[name]
            self._action(v, f"layout-{name}", f"Layout {name}", key)
        self._action(v, "reset-view", "&Reset view", "R")
        self._action(v, "reset-oblique", "Reset &oblique planes", "Shift+O")
        self._action(v, "crosshair", "Show &crosshair", "C", checkable=True).setChecked(True)
        self._action(v, "cine", "C&ine play", "Space", checkable=True)
        speed = v.addMenu("Cine &speed")
        self.cine_group = QtGui.QActionGroup(self)
        for fps in CINE_SPEEDS:
            self.cine_group.addAction(self._action(speed, f"cine-{fps}", f"{fps} slices/s", checkable=True))
        self._action(v, "smooth", "S&mooth (bilinear) display", checkable=True)
        self._action(v, "link-zoom", "&Link zoom across views", checkable=True)
        self._action(v, "compare-link-window", "Comparison: link window/level", checkable=True).setChecked(True)
        self._action(v, "compare-close", "Comparison: close")
        v.addSeparator()
        slab = v.addMenu("Thick &slab")
        self.slab_group = QtGui.QActionGroup(self)
        for name, text, key in (
            ("slab-off", "Off (one slice)", "Alt+O"),
            ("slab-mip", "MIP (maximum)", "Alt+M"),
            ("slab-minip", "MinIP (minimum)", "Alt+N"),
            ("slab-average", "Average", "Alt+A"),
        ):
            self.slab_group.addAction(self._action(slab, name, text, key, checkable=True))
        self.actions_by_name["slab-off"].setChecked(True)
        self._action(slab, "slab-thickness", "Slab thickness…")
        tags = self.tag_dock.toggleViewAction()
        tags.setObjectName("dicom-tags")
        tags.setText("&DICOM tags")
        tags.setShortcut(QtGui.QKeySequence("Ctrl+T"))
        v.addAction(tags)
        self.addAction(tags)
        self.actions_by_name["dicom-tags"] = tags
        self._action(v, "reset-layout", "Reset &window layout (docks and size)")
        w = mb.addMenu("&Window")
        for name, (_wl, key) in CT_PRESETS.items():
            self._action(w, preset_action_name(name), f"{name}", key)
        self._action(w, "preset-auto", "Auto (percentiles)", AUTO_SHORTCUT)
        self.file_presets_menu = w.addMenu("From file")
        self.user_presets_menu = w.addMenu("My presets")
        self._action(w, "preset-save", "Save window as preset…")
        self._action(w, "preset-clear-user", "Forget my presets")
        self._action(w, "window-entry", "Enter window/level…", "W")
        self._action(w, "invert", "&Invert", "I", checkable=True)
        t = mb.addMenu("&Tools")
        self.tool_group = QtGui.QActionGroup(self)
        for name, text, key in TOOL_ACTIONS:
            self.tool_group.addAction(self._action(t, name, text, key, checkable=True))
        self.actions_by_name["tool-crosshair"].setChecked(True)
        h = mb.addMenu("&Help")
        self._action(h, "shortcuts", "&Keyboard shortcuts", "F1")
        self._action(h, "about", "&About RadLens")

    def dragEnterEvent(self, ev: QtGui.QDragEnterEvent) -> None:
        if ev.mimeData().hasUrls():
            ev.acceptProposedAction()

    def dropEvent(self, ev: QtGui.QDropEvent) -> None:
        paths = [u.toLocalFile() for u in ev.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.files_dropped.emit(paths)
            ev.acceptProposedAction()

    def closeEvent(self, ev: QtGui.QCloseEvent) -> None:
        self.closing.emit()
        super().closeEvent(ev)

    def shortcut_table(self) -> list[tuple[str, str]]:
        rows = [
            (a.text().replace("&", ""), a.shortcut().toString())
            for a in self.actions_by_name.values()
            if not a.shortcut().isEmpty()
        ]
        rows += [
            ("Scroll slices", "Wheel, Up/Down, PgUp/PgDn"),
            ("Zoom about cursor", "Ctrl+Wheel"),
            ("Pan", "Middle-drag"),
            ("Window/level", "Right-drag"),
        ]
        return rows

    def set_progress(self, fraction: float, message: str, busy: bool) -> None:
        # The bar keeps its place (enabled or not): showing and hiding it would relayout and
        # repaint the whole window at the start and end of every load.
        self.progress.setEnabled(busy)
        self.cancel_button.setEnabled(busy)
        self.progress.setValue(int(fraction * 1000) if busy else 0)
        self.statusBar().showMessage(message, 5000 if not busy else 0)
