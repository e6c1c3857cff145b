"""``run(model, volume, on_progress, cancel) -> Result``: one engine for the GUI and the CLI."""

from __future__ import annotations

import contextlib
import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from inference.engine.device import autocast_dtype, is_out_of_memory, select_device
from inference.engine.findings import find_components
from inference.engine.normalise import normalise, normalise_params
from inference.engine.result import Result
from inference.errors import InferenceCancelled, RadLensError
from inference.models.card import Explanation, ModelCard, Task
from inference.progress import CancelToken, ProgressCallback, no_progress
from inference.volume import Volume

if TYPE_CHECKING:
    import torch

#: Models with their own multi-stage logic: card ``pipeline`` → "module:function".
PIPELINES = {"deepbet": "inference.engine.deepbet_pipeline:run_deepbet"}

#: Slices whose probability is below this get no explanation map (it would explain nothing).
EXPLAIN_MIN_PROBABILITY = 0.05


@dataclass
class LoadedModel:
    card: ModelCard
    network: torch.nn.Module
    device: str


def load_model(card: ModelCard, device: str = "auto") -> LoadedModel:
    """Verify and load the card's weights onto the chosen device."""
    from inference.models.safe_load import load_network

    dev = select_device(device)
    return LoadedModel(card, load_network(card, dev), dev)


class _Batches:
    """Runs a callable over index ranges, halving the batch on out-of-memory, then falling back to CPU."""

    def __init__(self, lm: LoadedModel, batch_size: int, result: Result, cancel: CancelToken) -> None:
        self.lm = lm
        self.batch_size = max(1, batch_size)
        self.result = result
        self.cancel = cancel

    def run(self, n: int, step: Callable[[int, int], None], on_progress: ProgressCallback, what: str) -> None:
        start = 0
        while start < n:
            if self.cancel.cancelled:
                raise InferenceCancelled(f"cancelled after {start} of {n} {what}")
            stop = min(n, start + self.batch_size)
            try:
                step(start, stop)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                self._shrink(exc)
                continue
            start = stop
            on_progress(start / n, f"{what} {start}/{n}")

    def _shrink(self, exc: BaseException) -> None:
        import torch

        if self.lm.device.startswith("cuda"):
            torch.cuda.empty_cache()
        if self.batch_size > 1:
            self.batch_size //= 2
            self.result.messages.append(f"{self.lm.device} ran out of memory: batch size reduced to {self.batch_size}")
            return
        if self.lm.device != "cpu":
            self.result.messages.append(f"{self.lm.device} ran out of memory even at batch size 1: fell back to CPU")
            self.lm.network.to("cpu")
            self.lm.device = "cpu"
            self.result.device = "cpu"
            return
        raise RadLensError(f"out of memory on the CPU: {exc}") from exc


def _forward(lm: LoadedModel, x: torch.Tensor) -> Any:
    import torch

    dtype = autocast_dtype(lm.device)
    if dtype is None:
        return lm.network(x)
    with torch.autocast(device_type="cuda", dtype=dtype):  # type: ignore[arg-type]
        return lm.network(x)


def _slice_stack(vox: npt.NDArray[np.float32], start: int, stop: int, context: int) -> npt.NDArray[np.float32]:
    """``(b, 2c+1, rows, cols)``: each slice with its neighbours (edge slices repeated)."""
    n = vox.shape[0]
    idx = [min(max(k + d, 0), n - 1) for k in range(start, stop) for d in range(-context, context + 1)]
    return vox[idx].reshape(stop - start, 2 * context + 1, *vox.shape[1:])


def _probabilities(logits: torch.Tensor) -> torch.Tensor:
    import torch

    if logits.ndim == 1 or logits.shape[1] == 1:
        return torch.sigmoid(logits.reshape(logits.shape[0], -1)[:, 0].float())
    return torch.softmax(logits.float(), dim=1)[:, 1]


def _classify_slices(
    lm: LoadedModel, volume: Volume, result: Result, on_progress: ProgressCallback, cancel: CancelToken, explain: bool
) -> None:
    import torch

    from inference.engine.grid import resize

    card = lm.card
    spec = card.input
    t0 = time.perf_counter()
    # Normalised per batch, in torch: no float copy of the whole volume, each plane resized once.
    offset, scale, clip = normalise_params(volume.voxels, spec)
    n, rows, cols = volume.voxels.shape
    size = spec.size or (rows, cols)
    result.timings["preprocess"] = time.perf_counter() - t0
    probs = np.zeros(n, dtype=np.float32)
    want_map = explain and card.explanation != Explanation.NONE
    heat = np.zeros(volume.voxels.shape, dtype=np.float32) if want_map else None
    # Small batches are faster on a CPU (no large temporaries to page in); GPUs like them big.
    batch = spec.batch_size if lm.device != "cpu" else min(spec.batch_size, 8)
    batches = _Batches(lm, batch, result, cancel)
    c = spec.context_slices

    def model_input(start: int, stop: int) -> torch.Tensor:
        a, b = max(start - c, 0), min(stop + c, n)
        planes = torch.from_numpy(np.ascontiguousarray(volume.voxels[a:b])).float()
        planes.sub_(offset).mul_(scale)
        if clip:
            planes.clamp_(0.0, 1.0)
        planes = resize(planes[:, None], size)[:, 0]
        idx = torch.tensor([min(max(k + d, 0), n - 1) - a for k in range(start, stop) for d in range(-c, c + 1)])
        return planes[idx].reshape(stop - start, 2 * c + 1, *size)

    def step(start: int, stop: int) -> None:
        x = model_input(start, stop).to(lm.device)
        with torch.inference_mode():
            p = _probabilities(_forward(lm, x)).cpu().numpy()
        probs[start:stop] = p
        if heat is None:
            return
        if card.explanation == Explanation.ATTENTION:
            from inference.models.explain import attention_map

            maps = attention_map(lm.network, x)
        else:
            keep = np.flatnonzero(p >= EXPLAIN_MIN_PROBABILITY)
            maps = np.zeros((stop - start, *size), dtype=np.float32)
            if keep.size:
                from inference.models.explain import grad_cam

                maps[keep] = grad_cam(lm.network, x[torch.from_numpy(keep).to(lm.device)])
        back = resize(torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))[:, None], (rows, cols))[:, 0]
        # Scaled by the slice's probability: a map on a slice the model calls normal stays faint.
        heat[start:stop] = back.numpy() * p[:, None, None]

    t1 = time.perf_counter()
    with torch.no_grad() if heat is None else contextlib.nullcontext():
        batches.run(n, step, on_progress, "slices")
    result.timings["inference"] = time.perf_counter() - t1
    result.slice_probabilities = probs
    result.study_score = float(probs.max()) if n else 0.0
    if heat is not None:
        np.clip(heat, 0.0, 1.0, out=heat)
        result.heatmaps[card.explanation.value] = heat
        mask = (heat >= card.threshold).astype(np.uint8)
        names = {lab.value: lab.name for lab in card.labels} or {1: "finding"}
        result.findings = find_components(volume, mask, heat, names)


def _classify_volume(
    lm: LoadedModel, volume: Volume, result: Result, on_progress: ProgressCallback, cancel: CancelToken
) -> None:
    import torch

    from inference.engine.grid import resize

    spec = lm.card.input
    vox = normalise(volume.voxels, spec)
    n, rows, cols = vox.shape
    size = spec.size or (rows, cols)
    x = resize(torch.from_numpy(_slice_stack(vox, 0, n, spec.context_slices)), size)
    cancel.raise_if_cancelled()
    on_progress(0.1, "reading the whole stack")
    t1 = time.perf_counter()
    with torch.inference_mode():
        out = _forward(lm, x[None].to(lm.device))
    study_logit, slice_logits = out if isinstance(out, tuple) else (out, None)
    result.timings["inference"] = time.perf_counter() - t1
    result.study_score = float(torch.sigmoid(study_logit.float().reshape(-1)[0]))
    if slice_logits is not None:
        result.slice_probabilities = torch.sigmoid(slice_logits.float().reshape(-1)).cpu().numpy().astype(np.float32)
    on_progress(1.0, "done")


def _segment(
    lm: LoadedModel, volume: Volume, result: Result, on_progress: ProgressCallback, cancel: CancelToken
) -> None:
    import torch

    from inference.engine.grid import resize, spacing_to_shape
    from inference.engine.sliding_window import segment_probabilities

    card = lm.card
    spec = card.input
    t0 = time.perf_counter()
    vox = normalise(volume.voxels, spec)
    src_shape = (vox.shape[0], vox.shape[1], vox.shape[2])
    t = torch.from_numpy(vox)[None, None]
    if spec.target_spacing is not None:
        t = resize(t, spacing_to_shape(src_shape, volume.spacing, spec.target_spacing))
    result.timings["preprocess"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    probs = segment_probabilities(lm, t, on_progress, cancel, result)  # (1, K, d, h, w) on CPU, float32
    result.timings["inference"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    del t
    probs = resize(probs, src_shape)
    if probs.shape[1] == 1:
        fg = probs[0, 0]
        labels = (fg >= card.threshold).to(torch.uint8)
    else:
        labels = probs[0].argmax(0).to(torch.uint8)
        fg = 1.0 - probs[0, 0]
    result.label_map = labels.numpy()
    result.probability_map = fg.numpy().astype(np.float32, copy=False)
    names = {lab.value: lab.name for lab in card.labels}
    result.findings = find_components(volume, result.label_map, result.probability_map, names)
    result.study_score = float(result.probability_map.max()) if result.probability_map.size else 0.0
    result.timings["postprocess"] = time.perf_counter() - t2


def run(
    model: LoadedModel | ModelCard,
    volume: Volume,
    on_progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
    *,
    device: str = "auto",
    explain: bool = True,
) -> Result:
    """Run a model on a volume; every output is mapped back onto ``volume``'s voxel grid."""
    cancel = cancel or CancelToken()
    t_start = time.perf_counter()
    lm = model if isinstance(model, LoadedModel) else None
    card = model.card if isinstance(model, LoadedModel) else model
    if volume.voxels.ndim != 3:
        raise RadLensError(f"model {card.name} needs a greyscale volume, got voxels of shape {volume.voxels.shape}")
    if card.modality and volume.metadata.modality and not card.accepts(volume.metadata.modality):
        shown = volume.metadata.modality or "unknown"
        raise RadLensError(f"model {card.name} is for {'/'.join(card.modality)}, this volume is {shown}")
    if card.pipeline:
        target = PIPELINES.get(card.pipeline)
        if target is None:
            raise RadLensError(f"model {card.name}: unknown pipeline {card.pipeline!r}")
        module, func = target.split(":")
        pipeline = getattr(importlib.import_module(module), func)
        pipeline_result: Result = pipeline(card, volume, on_progress, cancel, device)
        pipeline_result.timings["total"] = time.perf_counter() - t_start
        return pipeline_result
    if lm is None:
        on_progress(0.0, f"loading {card.name}")
        lm = load_model(card, device)
    result = Result(model=card.name, model_version=card.version, device=lm.device)
    if card.task == Task.SLICE_CLASSIFICATION:
        _classify_slices(lm, volume, result, on_progress, cancel, explain)
    elif card.task == Task.VOLUME_CLASSIFICATION:
        _classify_volume(lm, volume, result, on_progress, cancel)
    else:
        _segment(lm, volume, result, on_progress, cancel)
    result.timings["total"] = time.perf_counter() - t_start
    return result
