"""Drawing, selecting, moving, resizing, relabelling and deleting measurements; undo and redo;
keeping them with the study. Qt only for timers and the worker that writes the file.

The viewer controller forwards a pane's mouse events here first; what this controller does not
consume moves the crosshair. Every edit goes through the model's measurement list, so the edit
history, the autosave and the views all follow from its ``changed`` event.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6 import QtCore

from inference.io.stacks import Stack
from viewer.controllers.worker import run_in_background
from viewer.models.annotation_store import load_measurements, save_measurements, store_path
from viewer.models.history import EditHistory
from viewer.models.measurements import Measurement, Plane, Point, Shape, hit_test
from viewer.models.viewer_model import OpenVolume, ViewerModel

#: Measurements are written this long after the last edit (a drag writes once).
AUTOSAVE_DELAY_MS = 400
#: A freehand outline takes a new point once the pointer moved this far (display voxels).
FREEHAND_STEP = 0.75


def _moved(a: Point, b: Point) -> bool:
    return not np.allclose(a, b, atol=1e-6)


class AnnotationController(QtCore.QObject):
    selection_changed = QtCore.Signal()
    failed = QtCore.Signal(str)
    message = QtCore.Signal(str)  # a notice for the status bar

    def __init__(
        self,
        model: ViewerModel,
        store_folder: Path | None = None,
        ask_text: Callable[[str, str, str], str | None] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.store_folder = store_folder
        self.ask_text = ask_text  # (title, prompt, current) -> text or None; None: never ask
        self.history = EditHistory(model.measurements, model.layers)
        self.tool: Shape | None = None
        self.selected: int | None = None
        self._drawing: Measurement | None = None
        self._pending = False  # an angle waits for its third point, a Cobb angle for its second line
        self._drag: tuple[Measurement, int | None, Point, list[Point]] | None = None  # what, handle, start, points
        self._restoring = False
        self._store: Path | None = None  # the file that keeps the open series' measurements
        self._workers: set[Any] = set()
        self._save_timer = QtCore.QTimer(self)
        self._save_timer.setSingleShot(True)
        self._save_timer.setInterval(AUTOSAVE_DELAY_MS)
        self._save_timer.timeout.connect(self.save_now)
        model.measurements.changed.connect(self._on_measurements_changed)

    @property
    def busy(self) -> bool:
        return bool(self._workers) or self._save_timer.isActive()

    # --- tools and selection ---------------------------------------------------------------
    def set_tool(self, shape: Shape | None) -> None:
        self.cancel_drawing()
        self.tool = shape

    def select(self, mid: int | None) -> None:
        if mid != self.selected:
            self.selected = mid
            self.selection_changed.emit()

    def selected_measurement(self) -> Measurement | None:
        return None if self.selected is None else self.model.measurements.get(self.selected)

    def delete_selected(self) -> bool:
        m = self.selected_measurement()
        if m is None:
            return False
        self.model.measurements.remove(m)
        self.select(None)
        return True

    def delete(self, mid: int) -> None:
        m = self.model.measurements.get(mid)
        if m is not None:
            self.model.measurements.remove(m)
            if self.selected == mid:
                self.select(None)

    def relabel(self, mid: int, label: str) -> None:
        m = self.model.measurements.get(mid)
        if m is not None and m.label != label:
            self.model.measurements.relabel(m, label.strip())

    def ask_relabel(self, mid: int | None = None) -> None:
        m = self.model.measurements.get(mid) if mid is not None else self.selected_measurement()
        if m is None or self.ask_text is None:
            return
        text = self.ask_text("Label", f"Label for {m.shape.value} #{m.id}:", m.label)
        if text is not None:
            self.relabel(m.id, text)

    def undo(self) -> bool:
        self.cancel_drawing()
        done = self.history.undo()
        self._drop_stale_selection()
        return done

    def redo(self) -> bool:
        self.cancel_drawing()
        done = self.history.redo()
        self._drop_stale_selection()
        return done

    def _drop_stale_selection(self) -> None:
        if self.selected is not None and self.model.measurements.get(self.selected) is None:
            self.select(None)

    # --- mouse -------------------------------------------------------------------------------
    def press(self, plane: Plane, p: Point, tolerance: float) -> bool:
        """A left press at display point ``p``; True when it drew or grabbed a measurement.
        ``tolerance``: how near (display voxels) a press must be to grab a shape or handle."""
        if self.model.current is None:
            return False
        if self.tool is None:
            return self._grab(plane, p, tolerance)
        m = self._drawing
        if self._pending and m is not None and m.plane == plane:
            if m.shape == Shape.ANGLE:
                self.model.measurements.update(m, p)
                self._finish()
            else:  # Cobb: the second line starts here
                self._pending = False
                self.model.measurements.append_point(m, p)
                self.model.measurements.append_point(m, p)
            return True
        self.cancel_drawing()
        self.history.begin()
        first = [p] if self.tool in (Shape.POINT, Shape.FREEHAND) else [p, p]
        self._drawing = self.model.measurements.add(Measurement(self.tool, plane, first))
        if self.tool == Shape.POINT:
            self._finish()
        return True

    def drag(self, plane: Plane, p: Point) -> bool:
        m = self._drawing
        if m is not None and not self._pending:
            if m.plane != plane:
                return True
            if m.shape == Shape.FREEHAND:
                if np.linalg.norm(np.subtract(p, m.points[-1])) >= FREEHAND_STEP:
                    self.model.measurements.append_point(m, p)
            else:
                self.model.measurements.update(m, p)
            return True
        if self._drag is not None:
            grabbed, handle, start, original = self._drag
            if handle is not None:
                self.model.measurements.set_point(grabbed, handle, p)
            else:
                delta = np.subtract(p, start)
                self.model.measurements.move(grabbed, [tuple(float(v) for v in np.add(q, delta)) for q in original])  # type: ignore[misc]
            return True
        return False

    def release(self, plane: Plane, p: Point) -> bool:
        m = self._drawing
        if m is not None and not self._pending:
            if m.shape == Shape.FREEHAND:
                if len(m.points) >= 3:
                    self._finish()
                else:
                    self.cancel_drawing()
            elif not _moved(m.points[-2], m.points[-1]):
                self.cancel_drawing()  # a click without a drag measures nothing
            elif m.shape == Shape.ANGLE and len(m.points) == 2:
                self._pending = True
                self.model.measurements.append_point(m, p)  # the third point follows the pointer
            elif m.shape == Shape.COBB and len(m.points) == 2:
                self._pending = True
            else:
                self._finish()
            return True
        if self._drag is not None:
            self._drag = None
            self.history.end()
            return True
        return m is not None

    def hover(self, plane: Plane, p: Point) -> None:
        m = self._drawing
        if self._pending and m is not None and m.shape == Shape.ANGLE and m.plane == plane:
            self.model.measurements.update(m, p)

    def cancel_drawing(self) -> None:
        """Drop a shape still being drawn (Esc, another tool, undo)."""
        m = self._drawing
        if m is None:
            return
        self._drawing = None
        self._pending = False
        if self.model.measurements.get(m.id) is not None:
            self.model.measurements.remove(m)
        if self.selected == m.id:
            self.select(None)
        self.history.end()

    def _grab(self, plane: Plane, p: Point, tolerance: float) -> bool:
        index = self.model.cursor[plane.normal_axis]
        hit = hit_test(self.model.measurements, plane, index, p, tolerance)
        if hit is None:
            self.select(None)
            return False
        m, handle = hit
        self.select(m.id)
        if m.shape == Shape.POINT:
            handle = 0
        self.history.begin()
        self._drag = (m, handle, p, list(m.points))
        return True

    def _finish(self) -> None:
        m = self._drawing
        self._drawing = None
        self._pending = False
        self.history.end()
        if m is not None and m.shape == Shape.ARROW and self.ask_text is not None:
            self.ask_relabel(m.id)

    # --- keeping them with the study -----------------------------------------------------------
    def restore(self, cur: OpenVolume) -> None:
        """Bring back the measurements kept for ``cur``'s series (read on a worker thread)."""
        self._save_timer.stop()
        self.cancel_drawing()
        self.select(None)
        self.history.reset()
        path = store_path(cur.volume, self.store_folder)
        self._store = path
        if path is None:
            return
        run_in_background(
            lambda: load_measurements(path, cur),
            self._workers,
            lambda items: self._restored(cur, items),
            lambda exc: self.failed.emit(f"Cannot read the saved measurements: {exc}"),
        )

    def _restored(self, cur: OpenVolume, items: list[Measurement]) -> None:
        if self.model.current is not cur or not items:
            return
        self._restoring = True
        try:
            self.model.measurements.replace_all(items)
        finally:
            self._restoring = False
        self.history.reset()

    def _kept_here(self) -> Path | None:
        """The store of the open series, when it is the one restored (every volume of a 4-D
        acquisition shares its series' store)."""
        cur = self.model.current
        path = store_path(cur.volume, self.store_folder) if cur is not None else None
        return path if path is not None and path == self._store else None

    def _on_measurements_changed(self) -> None:
        if not self._restoring and self._kept_here() is not None:
            self._save_timer.start()

    def save_now(self) -> None:
        """Write the current measurements now (on a worker thread), atomically."""
        self._save_timer.stop()
        cur = self.model.current
        path = self._kept_here()
        if cur is None or path is None:
            return
        items = [m.copy() for m in self.model.measurements if m.complete and m is not self._drawing]
        run_in_background(
            lambda: save_measurements(path, items, cur),
            self._workers,
            lambda _path: None,
            lambda exc: self.failed.emit(f"Cannot keep the measurements: {exc}"),
        )

    # --- export and import ---------------------------------------------------------------------------
    def export(self, folder: Path, stack: Stack | None) -> bool:
        """Write the measurements as ``measurements.csv`` and, for a DICOM series, a TID 1500 SR
        into ``folder`` (on a worker thread); False when there is nothing to write."""
        cur = self.model.current
        items = [m.copy() for m in self.model.measurements if m.complete]
        if cur is None or not items:
            self.failed.emit("There are no measurements to export")
            return False
        from viewer.models.measurement_export import export_measurements

        run_in_background(
            lambda: export_measurements(folder, items, cur, stack),
            self._workers,
            lambda files: self.message.emit(f"Exported {len(files)} files to {folder}"),
            lambda exc: self.failed.emit(f"Cannot export the measurements: {exc}"),
        )
        return True

    def open_sr(self, path: str | Path) -> bool:
        """Add a DICOM SR's planar measurements on the open study's frame of reference (read on a
        worker thread) as one undo step."""
        cur = self.model.current
        if cur is None:
            self.failed.emit("Open an image before opening measurements")
            return False
        from viewer.models.measurement_sr import read_measurement_sr

        run_in_background(
            lambda: read_measurement_sr(path, cur),
            self._workers,
            lambda items: self._add_read(items, cur),
            lambda exc: self.failed.emit(f"Cannot open {Path(path).name} as measurements: {exc}"),
        )
        return True

    def _add_read(self, items: list[Measurement], cur: OpenVolume) -> None:
        if self.model.current is not cur:
            self.failed.emit("The measurements were read for an image that is no longer open")
            return
        with self.history.group():
            for m in items:
                self.model.measurements.add(m)
        self.message.emit(f"{len(items)} measurement(s) added")

    def shutdown(self) -> None:
        if self._save_timer.isActive():
            self.save_now()
