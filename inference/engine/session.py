"""``ModelSession``: the one way the viewer, ``radlens analyze`` and the export run a model.

A session holds the device, the CPU thread policy and the loaded models (cached by card and
device, so the weights are read and sha256-checked once per session, not once per run). Its
:meth:`ModelSession.analyse` checks the input first (:func:`~inference.engine.suitability.check_suitability`):
an unsuitable input raises :class:`~inference.errors.UnsuitableInputError` unless forced, and the
check's verdict, warnings and out-of-distribution score travel on the :class:`Result`. The
out-of-memory back-off (halve the batch, then fall back to the CPU) lives in the engine's batch
loop (:mod:`inference.engine.run`), under this one entry point.
"""

from __future__ import annotations

import threading
from typing import Any

from inference.engine.result import Result
from inference.engine.suitability import Suitability, Verdict, check_suitability
from inference.errors import UnsuitableInputError
from inference.models.card import ModelCard
from inference.progress import CancelToken, ProgressCallback, no_progress
from inference.volume import Volume


class ModelSession:
    """``ModelSession(device="auto", leave_free_cores=1)``: ``leave_free_cores=None`` leaves torch's
    thread count alone (the batch run sets its own)."""

    def __init__(self, device: str = "auto", *, leave_free_cores: int | None = None) -> None:
        self.requested_device = device
        self.leave_free_cores = leave_free_cores
        self._device: str | None = None
        self._models: dict[tuple[str, str, str], Any] = {}
        self._lock = threading.Lock()

    @property
    def device(self) -> str:
        """The device runs go to (resolved once; an explicit missing device is a DeviceError)."""
        if self._device is None:
            from inference.engine.device import configure_cpu_threads, select_device

            self._device = select_device(self.requested_device)
            if self._device == "cpu" and self.leave_free_cores is not None:
                configure_cpu_threads(leave_free=self.leave_free_cores)
        return self._device

    def model(self, card: ModelCard, device: str | None = None) -> Any:
        """The loaded model for ``card`` on this session's device, or ``device`` (a pipeline card loads
        its own networks)."""
        if card.pipeline:
            return card
        device = device or self.device
        key = (card.key, card.sha256, device)
        with self._lock:
            if key not in self._models:
                from inference.engine.run import load_model

                self._models[key] = load_model(card, device)
            return self._models[key]

    @staticmethod
    def check(
        card: ModelCard, volume: Volume, stack: Any = None, *, modality: str = "", model_chosen: bool = False
    ) -> Suitability:
        return check_suitability(card, volume, stack, modality=modality, model_chosen=model_chosen)

    def analyse(
        self,
        card: ModelCard,
        volume: Volume,
        *,
        stack: Any = None,
        modality: str = "",
        model_chosen: bool = False,
        force: bool = False,
        suitability: Suitability | None = None,
        on_progress: ProgressCallback = no_progress,
        cancel: CancelToken | None = None,
        explain: bool = True,
        allocate: Any = None,
    ) -> Result:
        """Check ``volume`` against ``card``'s input domain, then run the model on it.

        :raises UnsuitableInputError: the input is unsuitable and ``force`` is False."""
        from inference.engine.run import run

        checked = suitability or self.check(card, volume, stack, modality=modality, model_chosen=model_chosen)
        if not checked.suitable and not force:
            raise UnsuitableInputError(card.name, checked.reasons)

        def run_on(device: str) -> Result:
            return run(
                self.model(card, device),
                volume,
                on_progress,
                cancel,
                device=device,
                explain=explain,
                allocate=allocate,
                check_modality=False,  # checked above: refused, forced, or taken from the model
            )

        loaded = self.model(card)
        if card.domain.features is not None and not card.pipeline:
            from inference.engine.suitability import judge_features

            judge_features(card, loaded.network, loaded.device, volume, checked)
        try:
            result = run_on(self.device)
        except Exception as exc:
            # The engine's batch loop halves batches and falls back by itself; a run that still
            # runs out of GPU memory (a pipeline's whole-volume network) is run again on the CPU.
            from inference.engine.device import is_out_of_memory

            if self.device == "cpu" or not is_out_of_memory(exc):
                raise
            _free_gpu_memory()
            result = run_on("cpu")
            result.messages.append(f"{self.device} ran out of memory: the model ran on the CPU instead")
        return attach(result, checked)


def _free_gpu_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def attach(result: Result, checked: Suitability) -> Result:
    """Put the check's verdict, warnings and OOD score on ``result`` (a forced run says so)."""
    forced = not checked.suitable
    result.suitability = f"{Verdict.UNSUITABLE.value} (run forced)" if forced else checked.verdict.value
    result.input_warnings = [*(f"forced: {r}" for r in checked.reasons), *checked.warnings]
    result.ood_score = checked.ood_score
    result.ood_scores = dict(checked.ood_scores)
    return result
