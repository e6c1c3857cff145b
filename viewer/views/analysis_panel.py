"""The Analysis panel (model picker, device, run/cancel, verdict, findings) and the per-slice score plot."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

#: Modalities a NIfTI/NRRD/MHA file (which records none) can be declared as.
MODALITY_CHOICES = ("CT", "MR", "PT", "US", "CR", "DX", "MG")
_DESCRIPTION_ROLE = QtCore.Qt.ItemDataRole.UserRole + 1


@dataclass(frozen=True)
class ModelEntry:
    """One line of the model picker: ``reason`` set when the open stack does not suit the model."""

    key: str
    label: str
    description: str
    reason: str = ""
    checked: bool = True  # False while the suitability check still runs


class AnalysisPanel(QtWidgets.QWidget):
    run_requested = QtCore.Signal(str)  # model key
    cancel_requested = QtCore.Signal()
    finding_activated = QtCore.Signal(int)  # row
    modality_chosen = QtCore.Signal(str)  # "" when the user has not chosen one

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("analysis-panel")
        self.modality_label = QtWidgets.QLabel("Modality (the file does not record it)")
        self.modality_box = QtWidgets.QComboBox()
        self.modality_box.setObjectName("modality-picker")
        self.modality_box.addItem("not recorded: choose", "")
        for modality in MODALITY_CHOICES:
            self.modality_box.addItem(modality, modality)
        self.modality_label.setVisible(False)
        self.modality_box.setVisible(False)
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
        self.status.setObjectName("analysis-status")
        self.status.setWordWrap(True)
        self.verdict = QtWidgets.QLabel("")
        self.verdict.setObjectName("verdict")
        self.verdict.setWordWrap(True)
        self.card_text = QtWidgets.QLabel("")
        self.card_text.setObjectName("model-description")
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
        lay.addWidget(self.modality_label)
        lay.addWidget(self.modality_box)
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
        self.model_box.currentIndexChanged.connect(self._show_description)
        # A model picked for this stack (by the user, or by code on their behalf) stays picked when the
        # list is re-ordered; set_models blocks the box's signals, so its own changes do not count.
        self._user_chose = False
        self.model_box.currentIndexChanged.connect(lambda _i: setattr(self, "_user_chose", True))
        self.modality_box.currentIndexChanged.connect(
            lambda _i: self.modality_chosen.emit(str(self.modality_box.currentData() or ""))
        )

    def set_models(self, entries: list[ModelEntry]) -> None:
        """The picker's models, suitable ones first; the others say why they do not suit the open stack.
        The first is selected, unless the user picked one for this stack that is still listed."""
        previous = self.model_box.currentData()
        with QtCore.QSignalBlocker(self.model_box):
            self.model_box.clear()
            for entry in entries:
                label = entry.label if not entry.reason else f"{entry.label} — not suitable: {entry.reason}"
                self.model_box.addItem(label, entry.key)
                row = self.model_box.count() - 1
                tip = entry.description if not entry.reason else f"Not suitable: {entry.reason}\n\n{entry.description}"
                self.model_box.setItemData(row, tip, QtCore.Qt.ItemDataRole.ToolTipRole)
                self.model_box.setItemData(row, entry.description, _DESCRIPTION_ROLE)
                if entry.reason:
                    grey = QtGui.QBrush(QtGui.QColor(140, 140, 140))
                    self.model_box.setItemData(row, grey, QtCore.Qt.ItemDataRole.ForegroundRole)
            index = self.model_box.findData(previous) if previous is not None and self._user_chose else -1
            self.model_box.setCurrentIndex(index if index >= 0 else (0 if entries else -1))
        self.run_button.setEnabled(bool(entries) and not self.cancel_button.isEnabled())
        self._show_description()

    def _show_description(self, _index: int = -1) -> None:
        if self.model_box.count() == 0:
            self.card_text.setText("No model is installed.")
            return
        text = self.model_box.currentData(_DESCRIPTION_ROLE)
        self.card_text.setText(str(text or ""))

    def show_modality_choice(self, needed: bool, chosen: str = "") -> None:
        """The modality selector, for an open file that records no modality."""
        with QtCore.QSignalBlocker(self.modality_box):
            index = self.modality_box.findData(chosen) if chosen else 0
            self.modality_box.setCurrentIndex(max(0, index))
        self.modality_label.setVisible(needed)
        self.modality_box.setVisible(needed)

    def reset(self) -> None:
        """Back to the state of a newly opened stack: no progress, status, verdict or findings."""
        self._user_chose = False
        self.progress.setValue(0)
        self.status.setText("")
        self.verdict.setText("")
        self.show_findings([])

    def set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running and self.model_box.count() > 0)
        self.cancel_button.setEnabled(running)
        self.model_box.setEnabled(not running)
        self.modality_box.setEnabled(not running)
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
    """Per-slice probability against the slice number (from 1), with a marker at the current slice;
    a click jumps there."""

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

    def set_scores(
        self, values: npt.NDArray[np.floating] | None, threshold: float | None = 0.5, axis: str = "probability"
    ) -> None:
        """The per-slice scores (None: an empty plot with its default axes and no marker);
        ``threshold`` None hides the threshold line (a segmentation model has no study threshold)."""
        self.values = np.zeros(0, np.float32) if values is None else np.asarray(values, np.float32)
        # Slices are numbered from 1 here, as in the corner text, key images and reports.
        self.curve.setData(np.arange(1, len(self.values) + 1), self.values)
        self.setLabel("left", axis)
        self.threshold_line.setVisible(threshold is not None and values is not None)
        if threshold is not None:
            self.threshold_line.setPos(threshold)
        self.marker.setVisible(values is not None)
        if len(self.values):
            self.setXRange(1, max(2, len(self.values)), padding=0.02)
            top = float(self.values.max())
            self.setYRange(0, 1.05 if top <= 1.0 else top * 1.05)
        else:
            self.setXRange(1, 2, padding=0.02)
            self.setYRange(0, 1.05)
            self.marker.setPos(1)

    def set_marker(self, index: int) -> None:
        """The marker at slice ``index`` (counted from 0; drawn at its number, index + 1)."""
        self.marker.setPos(index + 1)

    def _on_click(self, ev: object) -> None:
        pos = ev.scenePos()  # type: ignore[attr-defined]
        if not len(self.values) or not self.plotItem.vb.sceneBoundingRect().contains(pos):
            return
        x = self.plotItem.vb.mapSceneToView(pos).x()
        self.slice_clicked.emit(int(np.clip(round(x) - 1, 0, len(self.values) - 1)))
