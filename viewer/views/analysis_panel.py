"""The Analysis panel (model picker, device, run/cancel, verdict, findings) and the per-slice score plot."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets


class AnalysisPanel(QtWidgets.QWidget):
    run_requested = QtCore.Signal(str)  # model key
    cancel_requested = QtCore.Signal()
    finding_activated = QtCore.Signal(int)  # row

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("analysis-panel")
        self.model_box = QtWidgets.QComboBox()
        self.model_box.setObjectName("model-picker")
        self.device_label = QtWidgets.QLabel("device: –")
        self.run_button = QtWidgets.QPushButton("Run")
        self.run_button.setObjectName("run-model")
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setRange(0, 1000)
        self.status = QtWidgets.QLabel("")
        self.status.setWordWrap(True)
        self.verdict = QtWidgets.QLabel("")
        self.verdict.setObjectName("verdict")
        self.verdict.setWordWrap(True)
        self.card_text = QtWidgets.QLabel("")
        self.card_text.setWordWrap(True)
        self.card_text.setStyleSheet("color: #aaa;")
        self.findings = QtWidgets.QTableWidget(0, 4)
        self.findings.setObjectName("findings-table")
        self.findings.setHorizontalHeaderLabels(["Finding", "Volume (mL)", "Max p", "Position (mm)"])
        self.findings.horizontalHeader().setStretchLastSection(True)
        self.findings.verticalHeader().setVisible(False)
        self.findings.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.findings.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(QtWidgets.QLabel("Model"))
        lay.addWidget(self.model_box)
        lay.addWidget(self.card_text)
        lay.addWidget(self.device_label)
        lay.addLayout(buttons)
        lay.addWidget(self.progress)
        lay.addWidget(self.status)
        lay.addWidget(self.verdict)
        lay.addWidget(self.findings, 1)
        self.run_button.clicked.connect(self._on_run)
        self.cancel_button.clicked.connect(self.cancel_requested.emit)
        self.findings.cellClicked.connect(lambda row, _c: self.finding_activated.emit(row))

    def set_models(self, entries: list[tuple[str, str, str]]) -> None:
        """(key, label, description) for each model that accepts the open stack."""
        self.model_box.clear()
        for key, label, description in entries:
            self.model_box.addItem(label, key)
            self.model_box.setItemData(self.model_box.count() - 1, description, QtCore.Qt.ItemDataRole.ToolTipRole)
        self.run_button.setEnabled(bool(entries))
        self.card_text.setText(entries[0][2] if entries else "No model accepts this stack's modality.")

    def set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running and self.model_box.count() > 0)
        self.cancel_button.setEnabled(running)
        if running:
            self.progress.setValue(0)

    def set_progress(self, fraction: float, message: str) -> None:
        self.progress.setValue(int(fraction * 1000))
        self.status.setText(message)

    def show_findings(self, rows: list[tuple[str, str, str, str]]) -> None:
        self.findings.setRowCount(len(rows))
        for r, values in enumerate(rows):
            for c, text in enumerate(values):
                self.findings.setItem(r, c, QtWidgets.QTableWidgetItem(text))
        self.findings.resizeColumnsToContents()

    def _on_run(self) -> None:
        key = self.model_box.currentData()
        if key:
            self.run_requested.emit(str(key))


class SliceScorePlot(pg.PlotWidget):
    """Per-slice probability against slice index, with a marker at the current slice; a click jumps there."""

    slice_clicked = QtCore.Signal(int)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent, background=(17, 17, 17))
        self.setObjectName("slice-score-plot")
        self.setLabel("bottom", "slice")
        self.setLabel("left", "probability")
        self.setYRange(0, 1.05)
        self.setMouseEnabled(x=False, y=False)
        self.hideButtons()
        self.curve = self.plot([], [], pen=pg.mkPen((255, 120, 60), width=2))
        self.threshold_line = pg.InfiniteLine(angle=0, pen=pg.mkPen((120, 120, 120), style=QtCore.Qt.PenStyle.DashLine))
        self.marker = pg.InfiniteLine(angle=90, pen=pg.mkPen((255, 200, 0), width=1))
        self.addItem(self.threshold_line)
        self.addItem(self.marker)
        self.scene().sigMouseClicked.connect(self._on_click)
        self.values: npt.NDArray[np.float32] = np.zeros(0, dtype=np.float32)

    def set_scores(self, values: npt.NDArray[np.float32] | None, threshold: float = 0.5) -> None:
        self.values = np.zeros(0, np.float32) if values is None else np.asarray(values, np.float32)
        self.curve.setData(np.arange(len(self.values)), self.values)
        self.threshold_line.setPos(threshold)
        if len(self.values):
            self.setXRange(0, max(1, len(self.values) - 1), padding=0.02)

    def set_marker(self, index: int) -> None:
        self.marker.setPos(index)

    def _on_click(self, ev: object) -> None:
        pos = ev.scenePos()  # type: ignore[attr-defined]
        if not len(self.values) or not self.plotItem.vb.sceneBoundingRect().contains(pos):
            return
        x = self.plotItem.vb.mapSceneToView(pos).x()
        self.slice_clicked.emit(int(np.clip(round(x), 0, len(self.values) - 1)))
