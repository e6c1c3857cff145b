"""Runs models on the open volume in a worker thread and turns results into layers, a plot and findings."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from PySide6 import QtCore

from inference.engine.result import Result
from inference.errors import OperationCancelled
from inference.models.card import ModelCard
from inference.models.registry import Registry, discover
from inference.progress import CancelToken
from inference.volume import Volume
from viewer.controllers.worker import create_worker
from viewer.models.layers import HeatmapLayer, LabelLayer, Layer
from viewer.models.viewer_model import ViewerModel
from viewer.views.analysis_panel import AnalysisPanel, SliceScorePlot


class AnalysisController(QtCore.QObject):
    finished = QtCore.Signal(object)  # Result
    failed = QtCore.Signal(str)

    def __init__(
        self,
        model: ViewerModel,
        panel: AnalysisPanel,
        plot: SliceScorePlot,
        registry: Registry | None = None,
        device: str = "auto",
    ) -> None:
        super().__init__()
        self.model = model
        self.panel = panel
        self.plot = plot
        self._registry = registry
        self.device = device
        self.result: Result | None = None
        self.result_card: ModelCard | None = None
        self.result_layers: list[Layer] = []
        self._generation = 0
        self._cancel = CancelToken()
        self._worker: Any = None
        self.running = False
        self._preloading = False
        self._closed = False
        panel.run_requested.connect(self.run)
        panel.cancel_requested.connect(self.cancel)
        panel.finding_activated.connect(self.goto_finding)
        plot.slice_clicked.connect(self.goto_slice)
        model.volume_changed.connect(self._on_volume_changed)
        model.cursor_changed.connect(self._on_cursor_changed)
        self._progress.connect(self._on_progress)
        if self._registry is None:
            # Finding model cards parses TOML and entry points: done off the GUI thread at start-up.
            self._discovery = create_worker(self._discover)
            self._discovery.start()

    def _preload_engine(self) -> None:
        if self._closed:
            return

        def work() -> None:
            import inference.engine.run
            import inference.models.nets  # noqa: F401  (torch and the network classes)

        self._preloader = create_worker(work)
        self._preloader.start()

    def _discover(self) -> None:
        if self._registry is None:
            self._registry = discover()

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = discover()
        return self._registry

    def cards_for_current(self) -> list[ModelCard]:
        cur = self.model.current
        if cur is None:
            return []
        modality = cur.volume.metadata.modality
        cards = self.registry.for_modality(modality) if modality else list(self.registry.cards)
        default = self.registry.default_for(modality) if modality else None
        return sorted(cards, key=lambda c: (c is not default, c.name))

    def _on_volume_changed(self) -> None:
        self.cancel()
        self.result = None
        self.result_card = None
        self.result_layers = []
        self.plot.set_scores(None)
        self.panel.show_findings([])
        self.panel.verdict.setText("")
        entries = []
        for c in self.cards_for_current():
            text = f"{c.description or c.intended_use} Licence: {c.licence}."
            if c.not_for_clinical_use:
                text += " Not for clinical use."
            entries.append((c.key, f"{c.name} {c.version} ({c.task.value})", text))
        self.panel.set_models(entries)
        if entries and "torch" not in sys.modules and not self._preloading:
            # Importing torch holds the GIL for a while: do it once, a moment after the volume is
            # shown, rather than when the user presses Run and watches the progress bar.
            self._preloading = True
            QtCore.QTimer.singleShot(1000, self._preload_engine)
        self.panel.device_label.setText(f"device: {self.device}")

    def run(self, key: str) -> None:
        cur = self.model.current
        if cur is None:
            return
        card = self.registry.get(key)
        self.cancel()
        self._generation += 1
        generation = self._generation
        self._cancel = token = CancelToken()
        volume = cur.volume
        self.running = True
        self.panel.set_running(True)
        self.panel.set_progress(0.0, f"running {card.name}…")

        def work() -> Result:
            from inference.engine.device import configure_cpu_threads, select_device
            from inference.engine.run import run

            device = select_device(self.device)
            if device == "cpu":
                configure_cpu_threads(leave_free=1)  # one core stays with the GUI
            return run(card, volume, lambda f, m: self._progress.emit(generation, f, m), token, device=device)

        worker = create_worker(work, _start_thread=False)
        worker.returned.connect(lambda res: self._on_result(generation, volume, card, res))
        worker.errored.connect(lambda exc: self._on_error(generation, exc))
        self._worker = worker
        worker.start()

    _progress = QtCore.Signal(int, float, str)

    def _on_progress(self, generation: int, fraction: float, message: str) -> None:
        if generation == self._generation:
            self.panel.set_progress(fraction, message)

    def cancel(self) -> None:
        self._cancel.cancel()
        if self.running:
            self._generation += 1
            self.running = False
            self.panel.set_running(False)
            self.panel.set_progress(0.0, "cancelled")

    def _on_error(self, generation: int, exc: BaseException) -> None:
        if generation != self._generation:
            return
        self.running = False
        self.panel.set_running(False)
        message = "cancelled" if isinstance(exc, OperationCancelled) else f"{type(exc).__name__}: {exc}"
        self.panel.set_progress(0.0, message)
        if not isinstance(exc, OperationCancelled):
            self.failed.emit(message)

    def _on_result(self, generation: int, volume: Volume, card: ModelCard, result: Result) -> None:
        cur = self.model.current
        if generation != self._generation or cur is None or cur.volume is not volume:
            return  # a result for an older request or another stack: dropped, not drawn
        self.running = False
        self.panel.set_running(False)
        self.result = result
        self.result_card = card
        for layer in self.result_layers:
            if layer in list(self.model.layers):
                self.model.layers.remove(layer)
        self.result_layers = []
        names = {lab.value: lab.name for lab in card.labels}
        colours = {lab.value: lab.colour for lab in card.labels}
        if result.label_map is not None:
            self.result_layers.append(
                self.model.layers.add(
                    LabelLayer(
                        name=f"{card.name}: mask", labels=result.label_map, names=names, colours=colours, opacity=0.45
                    )
                )
            )
        for kind, values in result.heatmaps.items():
            self.result_layers.append(
                self.model.layers.add(
                    HeatmapLayer(name=f"{card.name}: {kind}", values=values, threshold=0.1, opacity=0.6)
                )
            )
        if result.probability_map is not None and not result.heatmaps:
            self.result_layers.append(
                self.model.layers.add(
                    HeatmapLayer(
                        name=f"{card.name}: probability",
                        values=result.probability_map,
                        threshold=0.2,
                        opacity=0.5,
                        visible=False,
                    )
                )
            )
        scores = result.slice_probabilities
        if scores is None and result.probability_map is not None:
            scores = result.probability_map.reshape(result.probability_map.shape[0], -1).max(axis=1)
        self.plot.set_scores(scores, card.threshold)
        self._on_cursor_changed()
        verdict = f"{card.name}: study score {result.study_score:.2f}" if result.study_score is not None else card.name
        if result.study_score is not None and card.task.value != "segmentation":
            verdict += " — positive" if result.study_score >= card.threshold else " — negative"
        verdict += f" ({result.device}, {result.timings.get('total', 0):.1f} s)"
        if result.messages:
            verdict += "\n" + "\n".join(result.messages)
        if card.not_for_clinical_use:
            verdict += "\nNot for clinical use."
        self.panel.verdict.setText(verdict)
        self.panel.set_progress(1.0, "done")
        self.panel.show_findings(
            [
                (
                    f.name,
                    f"{f.volume_ml:.3f}",
                    f"{f.max_probability:.2f}",
                    ", ".join(f"{v:.1f}" for v in f.centroid_lps),
                )
                for f in result.findings
            ]
        )
        self.finished.emit(result)

    def _on_cursor_changed(self) -> None:
        cur = self.model.current
        if cur is None:
            return
        ijk = cur.axis_map.display_to_source(self.model.cursor, cur.volume.size_ijk)
        self.plot.set_marker(int(round(ijk[2])))

    def goto_slice(self, k: int) -> None:
        cur = self.model.current
        if cur is None:
            return
        ijk = cur.axis_map.display_to_source(self.model.cursor, cur.volume.size_ijk)
        ijk[2] = k
        x, y, z = cur.axis_map.source_to_display(ijk, cur.volume.size_ijk)
        self.model.set_cursor((x, y, z))

    def goto_finding(self, row: int) -> None:
        cur = self.model.current
        if cur is None or self.result is None or not 0 <= row < len(self.result.findings):
            return
        x, y, z = cur.axis_map.source_to_display(
            np.asarray(self.result.findings[row].centroid_ijk), cur.volume.size_ijk
        )
        self.model.set_cursor((x, y, z))

    def shutdown(self) -> None:
        self._closed = True
        self._cancel.cancel()
