"""Runs models on the open volume in a worker thread and turns results into layers, a plot and findings.

Every run goes through :class:`~inference.engine.session.ModelSession` (the input check first, the
loaded models cached) and every result is read through :func:`~inference.engine.interpretation.interpret`,
as in ``radlens analyze``. When the open stack does not suit the chosen model, ``confirm`` (a dialog
in the interactive viewer) is asked whether to run it anyway; without it the refusal is shown.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6 import QtCore

from inference.engine.interpretation import interpret
from inference.engine.result import Result
from inference.errors import OperationCancelled, UnsuitableInputError
from inference.models.card import ModelCard, Task
from inference.models.registry import Registry, discover
from inference.progress import CancelToken
from inference.volume import Volume
from viewer.controllers.worker import create_worker
from viewer.models.layers import HeatmapLayer, LabelLayer, Layer
from viewer.models.viewer_model import ViewerModel
from viewer.views.analysis_panel import AnalysisPanel, ModelEntry, SliceScorePlot


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
        self.stack: Any = None  # the scanned stack the open volume came from (None: not known)
        self.modality = ""  # chosen by the user for a file that records none
        self.confirm: Callable[[str], bool] | None = None  # asked before a run on an unsuitable input
        self.suitability: dict[str, Any] = {}  # card key -> Suitability of the open volume
        self._session: Any = None
        self._check_generation = 0
        self._checker: Any = None
        self._generation = 0
        self._cancel = CancelToken()
        self._worker: Any = None
        self.running = False
        self._preloading = False
        self._closed = False
        panel.run_requested.connect(self.run)
        panel.cancel_requested.connect(self.cancel)
        panel.finding_activated.connect(self.goto_finding)
        panel.modality_chosen.connect(self._on_modality_chosen)
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

    def reload_models(self, registry: Registry) -> None:
        """Use ``registry`` (a model was added or removed): the picker lists it, checked anew."""
        self._registry = registry
        self.suitability = {}
        if self.model.current is not None:
            self.panel.set_models(self._entries())
            self._check_models()

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = discover()
        return self._registry

    @property
    def session(self) -> Any:
        """The viewer's :class:`~inference.engine.session.ModelSession` (one core left to the GUI)."""
        if self._session is None:
            from inference.engine.session import ModelSession

            self._session = ModelSession(self.device, leave_free_cores=1)
        return self._session

    def current_modality(self) -> str:
        cur = self.model.current
        return (cur.volume.metadata.modality if cur is not None else "") or self.modality

    def cards_for_current(self) -> list[ModelCard]:
        """Every model, those for the open stack's modality first (the default one before them),
        then, once checked, those that suit it before those that do not."""
        if self.model.current is None:
            return []
        modality = self.current_modality()
        default = self.registry.default_for(modality) if modality else None

        def order(c: ModelCard) -> tuple[bool, bool, bool, str]:
            checked = self.suitability.get(c.key)
            unsuitable = checked is not None and not checked.suitable
            return (unsuitable, bool(modality) and not c.accepts(modality), c is not default, c.name)

        return sorted(self.registry.cards, key=order)

    def _entries(self) -> list[ModelEntry]:
        entries = []
        for c in self.cards_for_current():
            text = f"{c.description or c.intended_use} Licence: {c.licence}."
            if c.not_for_clinical_use:
                text += " Not for clinical use."
            checked = self.suitability.get(c.key)
            reason = "; ".join(checked.reasons) if checked is not None else ""
            label = f"{c.name} {c.version} ({c.task.value})"
            entries.append(ModelEntry(c.key, label, text, reason, checked is not None))
        return entries

    def _on_volume_changed(self) -> None:
        self.cancel()
        self.result = None
        self.result_card = None
        self.result_layers = []
        self.suitability = {}
        self.plot.set_scores(None)
        self.panel.reset()
        cur = self.model.current
        needs_modality = cur is not None and not cur.volume.metadata.modality
        if not needs_modality:
            self.modality = ""
        self.panel.show_modality_choice(needs_modality, self.modality)
        entries = self._entries()
        self.panel.set_models(entries)
        if entries and "torch" not in sys.modules and not self._preloading:
            # Importing torch holds the GIL for a while: do it once, a moment after the volume is
            # shown, rather than when the user presses Run and watches the progress bar.
            self._preloading = True
            QtCore.QTimer.singleShot(1000, self._preload_engine)
        self.panel.device_label.setText(f"device: {self.device}")
        self._check_models()

    def _on_modality_chosen(self, modality: str) -> None:
        self.modality = modality
        self.suitability = {}
        self.panel.set_models(self._entries())
        self._check_models()

    def _check_models(self) -> None:
        """Check the open volume against every model's input domain off the GUI thread; the picker
        is reordered (suitable first) and the others marked with their reason when it is done."""
        cur = self.model.current
        self._check_generation += 1
        if cur is None or self._closed:
            return
        generation, volume, stack, modality = self._check_generation, cur.volume, self.stack, self.modality
        cards = list(self.registry.cards)

        def work() -> dict[str, Any]:
            from inference.engine.suitability import check_suitability

            return {c.key: check_suitability(c, volume, stack, modality=modality, model_chosen=True) for c in cards}

        def done(found: dict[str, Any]) -> None:
            now = self.model.current
            if generation != self._check_generation or now is None or now.volume is not volume:
                return
            self.suitability = found
            self.panel.set_models(self._entries())

        worker = create_worker(work, _start_thread=False)
        worker.returned.connect(done)
        self._checker = worker
        worker.start()

    def run(self, key: str, force: bool = False) -> None:
        """Run model ``key`` on the open volume; ``force``: even if the input check finds it unsuitable."""
        cur = self.model.current
        if cur is None:
            return
        card = self.registry.get(key)
        self.cancel()
        self._generation += 1
        generation = self._generation
        self._cancel = token = CancelToken()
        volume, stack, modality, session = cur.volume, self.stack, self.modality, self.session
        self.running = True
        self.panel.set_running(True)
        self.panel.verdict.setText("")
        self.panel.set_progress(0.0, f"running {card.name}…")

        def work() -> Result:
            return session.analyse(  # type: ignore[no-any-return]
                card,
                volume,
                stack=stack,
                modality=modality,
                model_chosen=True,  # the user picked it: an unrecorded modality is taken from it
                force=force,
                on_progress=lambda f, m: self._progress.emit(generation, f, m),
                cancel=token,
            )

        worker = create_worker(work, _start_thread=False)
        worker.returned.connect(lambda res: self._on_result(generation, volume, card, res))
        worker.errored.connect(lambda exc: self._on_error(generation, exc, card))
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

    def _on_error(self, generation: int, exc: BaseException, card: ModelCard | None = None) -> None:
        if generation != self._generation:
            return
        self.running = False
        self.panel.set_running(False)
        if isinstance(exc, UnsuitableInputError) and card is not None:
            question = (
                f"{card.name} was not made for this input:\n\n- " + "\n- ".join(exc.reasons) + "\n\n"
                "Its result may be meaningless. Run it anyway?"
            )
            if self.confirm is not None and self.confirm(question):
                self.run(card.key, force=True)
                return
            self.panel.set_progress(0.0, "not run: " + "; ".join(exc.reasons))
            self.failed.emit(str(exc))
            return
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
        reading = interpret(result, card)
        threshold = None if card.task == Task.SEGMENTATION else card.threshold
        self.plot.set_scores(reading.slice_scores, threshold, reading.score_axis)
        self._on_cursor_changed()
        verdict = f"{card.name}: {reading.headline} ({result.device}, {result.timings.get('total', 0):.1f} s)"
        if result.input_warnings:
            verdict += "\nInput: " + "\nInput: ".join(result.input_warnings)
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
