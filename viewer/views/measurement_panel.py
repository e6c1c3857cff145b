"""The measurements panel: every ruler and ROI with its numbers; select to jump, Delete to remove."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets


class MeasurementPanel(QtWidgets.QTableWidget):
    delete_requested = QtCore.Signal(int)  # measurement id
    activated_row = QtCore.Signal(int)  # measurement id

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(0, 4, parent)
        self.setObjectName("measurement-panel")
        self.setHorizontalHeaderLabels(["#", "Kind", "Plane", "Result"])
        self.horizontalHeader().setStretchLastSection(True)
        self.verticalHeader().setVisible(False)
        self.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.cellDoubleClicked.connect(lambda row, _c: self.activated_row.emit(self._id(row)))

    def show_rows(self, rows: list[tuple[int, str, str, str]]) -> None:
        self.setRowCount(len(rows))
        for r, (mid, kind, plane, result) in enumerate(rows):
            for c, text in enumerate((str(mid), kind, plane, result)):
                item = QtWidgets.QTableWidgetItem(text)
                item.setToolTip(text)
                self.setItem(r, c, item)
        self.resizeColumnsToContents()

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
