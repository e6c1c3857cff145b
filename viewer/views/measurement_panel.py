"""The measurements panel: every measurement with its full figures and label; select to highlight,
double-click to jump (or, on the label, to relabel), Delete to remove."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

LABEL_COLUMN = 4


class MeasurementPanel(QtWidgets.QTableWidget):
    delete_requested = QtCore.Signal(int)  # measurement id
    activated_row = QtCore.Signal(int)  # measurement id
    selected_id = QtCore.Signal(object)  # measurement id, or None
    relabel_requested = QtCore.Signal(int)  # measurement id

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(0, 5, parent)
        self.setObjectName("measurement-panel")
        self.setHorizontalHeaderLabels(["#", "Kind", "Plane", "Result", "Label"])
        self.horizontalHeader().setStretchLastSection(True)
        self.verticalHeader().setVisible(False)
        self.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.cellDoubleClicked.connect(self._on_double_click)
        self.itemSelectionChanged.connect(self._on_selection)
        self._filling = False

    def show_rows(self, rows: list[tuple[int, str, str, str, str]], selected: int | None = None) -> None:
        self._filling = True
        try:
            self.setRowCount(len(rows))
            for r, row in enumerate(rows):
                for c, text in enumerate((str(row[0]), *row[1:])):
                    item = QtWidgets.QTableWidgetItem(text)
                    item.setToolTip(text)
                    self.setItem(r, c, item)
            ids = [row[0] for row in rows]
            if selected in ids:
                self.selectRow(ids.index(selected))
            else:
                self.clearSelection()
            self.resizeColumnsToContents()
        finally:
            self._filling = False

    def _on_selection(self) -> None:
        if self._filling:
            return
        rows = sorted({i.row() for i in self.selectedIndexes()})
        self.selected_id.emit(self._id(rows[0]) if rows else None)

    def _on_double_click(self, row: int, column: int) -> None:
        if column == LABEL_COLUMN:
            self.relabel_requested.emit(self._id(row))
        else:
            self.activated_row.emit(self._id(row))

    def _id(self, row: int) -> int:
        item = self.item(row, 0)
        return int(item.text()) if item else -1

    def keyPressEvent(self, ev: object) -> None:
        from PySide6 import QtGui

        assert isinstance(ev, QtGui.QKeyEvent)
        if ev.key() in (QtCore.Qt.Key.Key_Delete, QtCore.Qt.Key.Key_Backspace):
            for index in sorted({i.row() for i in self.selectedIndexes()}, reverse=True):
                self.delete_requested.emit(self._id(index))
            ev.accept()
            return
        super().keyPressEvent(ev)
