"""The series browser dock: studies → stacks with thumbnail, modality, size and QA warnings."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from PySide6 import QtCore, QtGui, QtWidgets

from inference.io.paths import display_path
from inference.io.scan import ScanResult
from inference.io.stacks import Stack

STACK_ROLE = QtCore.Qt.ItemDataRole.UserRole + 1


class SeriesBrowser(QtWidgets.QTreeWidget):
    stack_activated = QtCore.Signal(object)  # Stack
    tags_requested = QtCore.Signal(object)  # Stack: show its first file's DICOM tags
    compare_requested = QtCore.Signal(object)  # Stack: show it beside the open one

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("series-browser")
        self.setColumnCount(4)
        self.setHeaderLabels(["Series", "Mod.", "Slices", "Size"])
        self.setIconSize(QtCore.QSize(32, 32))
        self.setRootIsDecorated(True)
        self.setUniformRowHeights(False)
        # The series name takes the room the short columns leave, and a long one loses its middle,
        # not everything after its first letter (the full name is in the tooltip).
        header = self.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QtWidgets.QHeaderView.ResizeMode.Stretch)
        for col in range(1, 4):
            header.setSectionResizeMode(col, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.setTextElideMode(QtCore.Qt.TextElideMode.ElideMiddle)
        self.setMinimumWidth(160)
        self.itemDoubleClicked.connect(self._on_double_click)
        self.setContextMenuPolicy(QtCore.Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._on_context_menu)
        self._items: dict[str, QtWidgets.QTreeWidgetItem] = {}

    def show_scan(self, result: ScanResult) -> None:
        self.clear()
        self._items.clear()
        warn = self.style().standardIcon(QtWidgets.QStyle.StandardPixmap.SP_MessageBoxWarning)
        for study in result.studies:
            top = QtWidgets.QTreeWidgetItem([f"{study.date or ''} {study.description or '(study)'}".strip()])
            self.addTopLevelItem(top)
            for series in study.series:
                for st in series.stacks:
                    top.addChild(self._stack_item(st, warn))
            top.setExpanded(True)
        if result.file_stacks:
            top = QtWidgets.QTreeWidgetItem(["Image files"])
            self.addTopLevelItem(top)
            for st in result.file_stacks:
                top.addChild(self._stack_item(st, warn))
            top.setExpanded(True)
        problems = result.errors + result.not_dicom
        if problems or result.non_image:
            top = QtWidgets.QTreeWidgetItem([f"Not loaded ({len(problems) + len(result.non_image)})"])
            top.setIcon(0, warn)
            self.addTopLevelItem(top)
            for p in problems:
                item = QtWidgets.QTreeWidgetItem([display_path(p.path).rsplit("/", 1)[-1], "", "", p.error])
                item.setToolTip(0, f"{display_path(p.path)}\n{p.error}: {p.reason}")
                top.addChild(item)
            for n in result.non_image:
                item = QtWidgets.QTreeWidgetItem([display_path(n.path).rsplit("/", 1)[-1], n.modality, "", "non-image"])
                item.setToolTip(0, f"{display_path(n.path)}\nnon-image object ({n.modality}): listed, not loaded")
                top.addChild(item)

    def _stack_item(self, st: Stack, warn: QtGui.QIcon) -> QtWidgets.QTreeWidgetItem:
        dims = "×".join(str(d) for d in st.dimensions[::-1])
        label = f"#{st.id} {st.description or '(no description)'}"
        in_plane = "×".join(str(d) for d in st.dimensions[:0:-1])  # columns × rows; slices have their column
        item = QtWidgets.QTreeWidgetItem([label, st.modality, str(st.n_slices), in_plane])
        item.setData(0, STACK_ROLE, st)
        tip = [f"stack {st.id}: {st.modality} {st.description}", f"{st.n_slices} slices, {dims}"]
        if st.qa:
            item.setText(1, f"⚠ {st.modality}")
            item.setForeground(1, QtGui.QBrush(QtGui.QColor(255, 200, 60)))
            tip += [str(q) for q in st.qa]
            item.setToolTip(1, "\n".join(str(q) for q in st.qa))
        item.setToolTip(0, "\n".join(tip))
        self._items[st.id] = item
        return item

    def set_thumbnail(self, stack_id: str, image: npt.NDArray[Any]) -> None:
        """Show a 2-D uint8 thumbnail next to a stack."""
        item = self._items.get(stack_id)
        if item is None:
            return
        img = np.ascontiguousarray(image, dtype=np.uint8)
        h, w = img.shape[:2]
        qimg = QtGui.QImage(img.data, w, h, w, QtGui.QImage.Format.Format_Grayscale8).copy()
        item.setIcon(0, QtGui.QIcon(QtGui.QPixmap.fromImage(qimg)))

    def stack_items(self) -> list[QtWidgets.QTreeWidgetItem]:
        return list(self._items.values())

    def _on_double_click(self, item: QtWidgets.QTreeWidgetItem, _column: int) -> None:
        st = item.data(0, STACK_ROLE)
        if st is not None:
            self.stack_activated.emit(st)

    def _on_context_menu(self, pos: QtCore.QPoint) -> None:
        item = self.itemAt(pos)
        st = item.data(0, STACK_ROLE) if item is not None else None
        if st is None or st.kind != "dicom":
            return
        menu = QtWidgets.QMenu(self)
        menu.addAction("Open", lambda: self.stack_activated.emit(st))
        menu.addAction("Compare with the open series", lambda: self.compare_requested.emit(st))
        menu.addAction("Show DICOM tags", lambda: self.tags_requested.emit(st))
        menu.exec(self.viewport().mapToGlobal(pos))
