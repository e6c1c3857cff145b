"""The layer list: toggle, reorder and adjust overlays; a legend for label maps and heatmaps."""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from inference.display.colormaps import HEATMAP_COLORMAPS, heatmap_lut
from viewer.models.layers import HeatmapLayer, LabelLayer, Layer, LayerList


class LayerPanel(QtWidgets.QWidget):
    """Edits a :class:`LayerList` directly through its handlers; redraws on the list's events."""

    def __init__(self, layers: LayerList, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("layer-panel")
        self.layers = layers
        self.list = QtWidgets.QListWidget()
        self.list.setObjectName("layer-list")
        self.opacity = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.outline = QtWidgets.QCheckBox("Outline")
        self.colormap = QtWidgets.QComboBox()
        self.colormap.addItems(HEATMAP_COLORMAPS)
        self.threshold = QtWidgets.QDoubleSpinBox()
        self.threshold.setRange(-1e6, 1e6)
        self.threshold.setDecimals(3)
        self.threshold.setSingleStep(0.05)
        up, down, remove = QtWidgets.QPushButton("Up"), QtWidgets.QPushButton("Down"), QtWidgets.QPushButton("Remove")
        self.label_list = QtWidgets.QListWidget()
        self.label_list.setObjectName("label-visibility")
        self.label_list.setMaximumHeight(110)
        self.colorbar = ColorBar()
        self.legend = QtWidgets.QLabel()
        self.legend.setObjectName("layer-legend")
        self.legend.setWordWrap(True)
        self.legend.setTextFormat(QtCore.Qt.TextFormat.RichText)
        form = QtWidgets.QFormLayout()
        form.addRow("Opacity", self.opacity)
        form.addRow("Colormap", self.colormap)
        form.addRow("Threshold", self.threshold)
        form.addRow("", self.outline)
        buttons = QtWidgets.QHBoxLayout()
        for b in (up, down, remove):
            buttons.addWidget(b)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(self.list)
        lay.addLayout(buttons)
        lay.addLayout(form)
        lay.addWidget(self.label_list)
        lay.addWidget(self.colorbar)
        lay.addWidget(self.legend)
        self.list.currentRowChanged.connect(lambda _row: self._sync_controls())
        self.list.itemChanged.connect(self._on_item_changed)
        self.label_list.itemChanged.connect(self._on_label_toggled)
        self.opacity.valueChanged.connect(lambda v: self._edit(opacity=v / 100))
        self.outline.toggled.connect(lambda on: self._edit_label(outline=on))
        self.colormap.currentTextChanged.connect(lambda name: self._edit_heatmap(colormap=name))
        self.threshold.valueChanged.connect(lambda v: self._edit_heatmap(threshold=v))
        up.clicked.connect(lambda: self._move(+1))
        down.clicked.connect(lambda: self._move(-1))
        remove.clicked.connect(self._remove)
        layers.changed.connect(self.refresh)
        self.refresh()

    def selected(self) -> Layer | None:
        row = self.list.currentRow()
        layers = list(self.layers)
        # The list shows the top-most layer first.
        return layers[len(layers) - 1 - row] if 0 <= row < len(layers) else None

    def refresh(self) -> None:
        keep = self.selected()
        with QtCore.QSignalBlocker(self.list):
            self.list.clear()
            for layer in reversed(list(self.layers)):
                item = QtWidgets.QListWidgetItem(layer.name)
                item.setFlags(item.flags() | QtCore.Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(QtCore.Qt.CheckState.Checked if layer.visible else QtCore.Qt.CheckState.Unchecked)
                self.list.addItem(item)
            layers = list(self.layers)
            if keep in layers:
                self.list.setCurrentRow(len(layers) - 1 - layers.index(keep))
            elif layers:
                self.list.setCurrentRow(0)
        self._sync_controls()
        self._update_legend()

    def _sync_controls(self) -> None:
        layer = self.selected()
        for w in (self.opacity, self.outline, self.colormap, self.threshold):
            w.blockSignals(True)
        self.opacity.setEnabled(layer is not None)
        self.outline.setEnabled(isinstance(layer, LabelLayer))
        self.colormap.setEnabled(isinstance(layer, HeatmapLayer))
        self.threshold.setEnabled(isinstance(layer, HeatmapLayer))
        if layer is not None:
            self.opacity.setValue(int(round(layer.opacity * 100)))
        if isinstance(layer, LabelLayer):
            self.outline.setChecked(layer.outline)
        if isinstance(layer, HeatmapLayer):
            self.colormap.setCurrentText(layer.colormap)
            self.threshold.setValue(layer.threshold)
        for w in (self.opacity, self.outline, self.colormap, self.threshold):
            w.blockSignals(False)
        with QtCore.QSignalBlocker(self.label_list):
            self.label_list.clear()
            if isinstance(layer, LabelLayer):
                for value, name in sorted(layer.names.items()):
                    item = QtWidgets.QListWidgetItem(colour_icon(layer.colours.get(value, (255, 255, 255))), name)
                    item.setData(QtCore.Qt.ItemDataRole.UserRole, value)
                    item.setFlags(item.flags() | QtCore.Qt.ItemFlag.ItemIsUserCheckable)
                    hidden = value in layer.hidden_labels
                    item.setCheckState(QtCore.Qt.CheckState.Unchecked if hidden else QtCore.Qt.CheckState.Checked)
                    self.label_list.addItem(item)
        self.label_list.setVisible(isinstance(layer, LabelLayer))
        if isinstance(layer, HeatmapLayer):
            lo, hi = layer.levels
            self.colorbar.set_colormap(layer.colormap, max(lo, layer.threshold), hi, layer.units)
        self.colorbar.setVisible(isinstance(layer, HeatmapLayer))

    def _update_legend(self) -> None:
        rows = []
        for layer in reversed(list(self.layers)):
            if isinstance(layer, LabelLayer):
                for value, name in sorted(layer.names.items()):
                    r, g, b = layer.colours.get(value, (255, 255, 255))
                    rows.append(f"<span style='color: rgb({r},{g},{b})'>■</span> {name}")
            elif isinstance(layer, HeatmapLayer):
                lo, hi = layer.levels
                rows.append(f"{layer.name}: {layer.colormap} {lo:g} … {hi:g} {layer.units}".strip())
        self.legend.setText("<br>".join(rows))

    def _on_item_changed(self, item: QtWidgets.QListWidgetItem) -> None:
        layers = list(self.layers)
        row = self.list.row(item)
        layer = layers[len(layers) - 1 - row]
        layer.set(visible=item.checkState() == QtCore.Qt.CheckState.Checked)

    def _on_label_toggled(self, item: QtWidgets.QListWidgetItem) -> None:
        layer = self.selected()
        if not isinstance(layer, LabelLayer):
            return
        value = int(item.data(QtCore.Qt.ItemDataRole.UserRole))
        hidden = set(layer.hidden_labels)
        if item.checkState() == QtCore.Qt.CheckState.Checked:
            hidden.discard(value)
        else:
            hidden.add(value)
        layer.set(hidden_labels=hidden)

    def _edit(self, **values: object) -> None:
        layer = self.selected()
        if layer is not None:
            layer.set(**values)

    def _edit_label(self, **values: object) -> None:
        layer = self.selected()
        if isinstance(layer, LabelLayer):
            layer.set(**values)

    def _edit_heatmap(self, **values: object) -> None:
        layer = self.selected()
        if isinstance(layer, HeatmapLayer):
            layer.set(**values)

    def _move(self, delta: int) -> None:
        layer = self.selected()
        if layer is not None:
            layers = list(self.layers)
            self.layers.move(layer, layers.index(layer) + delta)

    def _remove(self) -> None:
        layer = self.selected()
        if layer is not None:
            self.layers.remove(layer)

    def sizeHint(self) -> QtCore.QSize:
        return QtCore.QSize(240, 300)


def colour_icon(rgb: tuple[int, int, int]) -> QtGui.QIcon:
    pix = QtGui.QPixmap(12, 12)
    pix.fill(QtGui.QColor(*rgb))
    return QtGui.QIcon(pix)


class ColorBar(QtWidgets.QWidget):
    """A horizontal colour scale for the selected heatmap, with its value range."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("colorbar")
        self.setMinimumHeight(34)
        self.colormap = "inferno"
        self.low, self.high, self.units = 0.0, 1.0, ""

    def set_colormap(self, name: str, low: float, high: float, units: str = "") -> None:
        self.colormap, self.low, self.high, self.units = name, low, high, units
        self.update()

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:
        lut = heatmap_lut(self.colormap)
        painter = QtGui.QPainter(self)
        w = max(self.width() - 8, 1)
        for x in range(w):
            r, g, b, _a = (int(v) for v in lut[1 + x * 254 // max(w - 1, 1)])
            painter.setPen(QtGui.QColor(r, g, b))
            painter.drawLine(4 + x, 2, 4 + x, 16)
        painter.setPen(self.palette().color(QtGui.QPalette.ColorRole.WindowText))
        painter.drawText(4, 30, f"{self.low:g}")
        text = f"{self.high:g} {self.units}".strip()
        painter.drawText(self.width() - 4 - painter.fontMetrics().horizontalAdvance(text), 30, text)
        painter.end()
