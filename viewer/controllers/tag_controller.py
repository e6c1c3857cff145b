"""Fills the DICOM tag browser with the header of the file behind the current axial slice.

Headers are read on a worker thread, only while the dock is shown, and a read for an older
request is dropped (a generation counter), so scrolling never waits for a header.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtWidgets

from inference.io.dicom_tags import read_tag_tree
from inference.io.stacks import Stack
from viewer.controllers.worker import run_in_background
from viewer.models.viewer_model import ViewerModel
from viewer.views.tag_browser import TagBrowser

#: Scrolling through slices reads the header of the slice the user stops at, not of every one.
SETTLE_MS = 120


class TagController(QtCore.QObject):
    def __init__(self, model: ViewerModel, browser: TagBrowser, dock: QtWidgets.QDockWidget) -> None:
        super().__init__()
        self.model = model
        self.browser = browser
        self.dock = dock
        self.stack: Stack | None = None
        self.shown_path: str | None = None
        self._generation = 0
        self._workers: set[Any] = set()
        self._timer = QtCore.QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(SETTLE_MS)
        self._timer.timeout.connect(self.refresh)
        self._pinned = False  # showing a file the user picked, until the slice changes
        model.cursor_changed.connect(self._follow_slice)
        model.volume_changed.connect(self._follow_slice)
        dock.visibilityChanged.connect(self._on_visibility)

    @property
    def busy(self) -> bool:
        return bool(self._workers) or self._timer.isActive()

    def set_stack(self, stack: Stack | None) -> None:
        """The stack now shown (its files are the ones whose headers the browser lists)."""
        self.stack = stack
        self.shown_path = None
        self._follow_slice()

    def show_file(self, path: str | Path, source: str | None = None, *, pin: bool = True) -> None:
        """Read and show ``path``'s header (a series browser entry's first file, say); it stays
        until the slice changes."""
        self._pinned = pin
        self._timer.stop()
        self._generation += 1
        generation = self._generation
        label = source or Path(path).name
        run_in_background(
            lambda: read_tag_tree(path),
            self._workers,
            lambda nodes: self._show(generation, str(path), label, nodes),
            lambda exc: self._show_error(generation, exc),
        )

    def current_file(self) -> tuple[str, str] | None:
        """The file behind the cursor's axial slice, and a label for it; None outside DICOM."""
        cur, stack = self.model.current, self.stack
        if cur is None or stack is None or stack.kind != "dicom" or not stack.slices:
            return None
        _i, _j, k = (int(round(v)) for v in cur.axis_map.display_to_source(self.model.cursor, cur.volume.size_ijk))
        if not 0 <= k < len(stack.slices):
            return None
        ref = stack.slices[k]
        path = stack.headers[ref.header_index].path
        frame = f", frame {ref.frame_index + 1}" if stack.headers[ref.header_index].is_multiframe else ""
        return path, f"Slice {k + 1}/{len(stack.slices)}{frame}: {Path(path).name}"

    def refresh(self) -> None:
        if not self.dock.isVisible():
            return
        found = self.current_file()
        if found is None:
            self.shown_path = None
            self.browser.show_message("The image shown is not from a DICOM file" if self.model.current else "")
            return
        path, label = found
        if path == self.shown_path:
            self.browser.source_label.setText(label)
            return
        self.show_file(path, label, pin=False)

    def _on_visibility(self, visible: bool) -> None:
        if visible and not self._pinned:
            self._schedule()

    def _follow_slice(self) -> None:
        self._pinned = False
        self._schedule()

    def _schedule(self) -> None:
        if self.dock.isVisible():
            self._timer.start()

    def _show(self, generation: int, path: str, label: str, nodes: list[Any]) -> None:
        if generation != self._generation:
            return  # a newer request replaced this one
        self.shown_path = path
        self.browser.show_tags(label, nodes)

    def _show_error(self, generation: int, exc: BaseException) -> None:
        if generation == self._generation:
            self.shown_path = None
            self.browser.show_message(str(exc))
