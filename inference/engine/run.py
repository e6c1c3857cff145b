"""``run(model, volume, on_progress, cancel) -> Result``: one engine for the GUI and the CLI."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from inference.engine.device import is_out_of_memory, keep_freed_memory
from inference.engine.findings import find_components
from inference.engine.loaded_model import LoadedModel, forward, load_model
from inference.engine.pipelines import pipeline_for
from inference.engine.planes import SlicePlanes
from inference.engine.result import Result
from inference.errors import InferenceCancelled, RadLensError
from inference.models.card import Explanation, ModelCard, Task
from inference.models.intensity import intensity_for
from inference.progress import CancelToken, ProgressCallback, no_progress
from inference.volume import Volume

__all__ = [
    "CPU_BATCH",
    "CPU_BATCH_EXPLAINED",
    "EXPLAIN_MIN_PROBABILITY",
    "ArrayAllocator",
    "LoadedModel",
    "load_model",
    "run",
]

#: ``allocate(shape, dtype)`` → a zero-filled array the result may keep (see :func:`run`).
ArrayAllocator = Callable[[tuple[int, ...], Any], npt.NDArray[Any]]

if TYPE_CHECKING:
    import torch

#: Slices whose probability is below this get no explanation map (it would explain nothing): their
#: part of the heatmap stays zero, and neither Grad-CAM nor the attention's upsampling runs for them.
EXPLAIN_MIN_PROBABILITY = 0.05

#: Largest slice batch on the CPU; with explanations (Grad-CAM keeps every activation of a batch
#: for its backward pass), the smaller one.
CPU_BATCH, CPU_BATCH_EXPLAINED = 12, 8


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
            self.lm.network.to("cpu")  # forward_network() is made again for the CPU
            self.lm.device = "cpu"
            self.result.device = "cpu"
            return
        raise RadLensError(f"out of memory on the CPU: {exc}") from exc


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


def _zeros(shape: tuple[int, ...], dtype: Any) -> npt.NDArray[Any]:
    return np.zeros(shape, dtype=dtype)


def _classify_slices(
    lm: LoadedModel,
    volume: Volume,
    result: Result,
    on_progress: ProgressCallback,
    cancel: CancelToken,
    explain: bool,
    allocate: ArrayAllocator = _zeros,
) -> None:
    import torch

    from inference.engine.grid import resize

    card = lm.card
    spec = card.input
    t0 = time.perf_counter()
    intensity = intensity_for(volume.voxels, spec)
    n, rows, cols = volume.voxels.shape
    size = spec.size or (rows, cols)
    result.timings["preprocess"] = time.perf_counter() - t0
    probs = np.zeros(n, dtype=np.float32)
    want_map = explain and card.explanation != Explanation.NONE
    heat = allocate(volume.voxels.shape, np.float32) if want_map else None
    above = np.zeros(volume.voxels.shape, dtype=np.uint8) if want_map else None  # heat ≥ threshold
    # Small batches are faster on a CPU (no large temporaries to page in); GPUs like them big.
    cpu_batch = CPU_BATCH_EXPLAINED if want_map else CPU_BATCH
    batch = spec.batch_size if lm.device != "cpu" else min(spec.batch_size, cpu_batch)
    batches = _Batches(lm, batch, result, cancel)
    # Each plane normalised and resized once (not once per batch it appears in), no float copy of the volume.
    planes = SlicePlanes(volume.voxels, intensity, (size[0], size[1]), spec.context_slices)

    def model_input(start: int, stop: int) -> torch.Tensor:
        view = planes.batch(start, stop)  # overlapping planes: one copy, in the layout the convolutions like
        if lm.channels_last:
            return view.contiguous(memory_format=torch.channels_last)
        return view.contiguous().to(lm.device)

    def step(start: int, stop: int) -> None:
        x = model_input(start, stop)
        with torch.inference_mode():
            p = _probabilities(forward(lm, x)).cpu().numpy()
        probs[start:stop] = p
        if heat is None:
            return
        # Only slices the model finds something on get a map; the others keep the zeros they were
        # allocated with (below 5%, a map scaled by the probability would be a faint haze).
        keep = np.flatnonzero(p >= EXPLAIN_MIN_PROBABILITY)
        if not keep.size:
            return
        kept = torch.from_numpy(keep).to(lm.device)
        if card.explanation == Explanation.ATTENTION:
            from inference.models.explain import attention_map, last_attention_map

            # The attention of the forward pass just run, when the network keeps it (one pass, not two).
            found = last_attention_map(lm.forward_network(), x.shape)
            maps = found[keep] if found is not None else attention_map(lm.network, x[kept])
        else:
            from inference.models.explain import grad_cam

            maps = grad_cam(lm.network, x[kept])
        back = resize(torch.from_numpy(np.ascontiguousarray(maps, dtype=np.float32))[:, None], (rows, cols))[:, 0]
        # Scaled by the slice's probability: a map on a slice the model calls doubtful stays faint.
        # Clipped and thresholded batch by batch, while these slices are still in the cache.
        assert above is not None
        for j, k in enumerate(keep.tolist()):
            part = heat[start + k]
            np.multiply(back[j].numpy(), p[k], out=part)
            np.clip(part, 0.0, 1.0, out=part)
            np.greater_equal(part, card.threshold, out=above[start + k].view(np.bool_))

    t1 = time.perf_counter()
    # Inference mode around the whole loop (planes too) unless Grad-CAM needs gradients in it.
    with torch.inference_mode() if heat is None else contextlib.nullcontext():
        batches.run(n, step, on_progress, "slices")
    result.timings["inference"] = time.perf_counter() - t1
    result.slice_probabilities = probs
    result.study_score = float(probs.max()) if n else 0.0
    if heat is not None and above is not None:
        result.heatmaps[card.explanation.value] = heat
        names = {lab.value: lab.name for lab in card.labels} or {1: "finding"}
        result.findings = find_components(volume, above, heat, names)


def _classify_volume(
    lm: LoadedModel, volume: Volume, result: Result, on_progress: ProgressCallback, cancel: CancelToken
) -> None:
    import torch

    from inference.engine.grid import resize

    spec = lm.card.input
    vox = intensity_for(volume.voxels, spec)(volume.voxels)
    n, rows, cols = vox.shape
    size = spec.size or (rows, cols)
    x = resize(torch.from_numpy(_slice_stack(vox, 0, n, spec.context_slices)), size)
    cancel.raise_if_cancelled()
    on_progress(0.1, "reading the whole stack")
    t1 = time.perf_counter()
    with torch.inference_mode():
        out = forward(lm, x[None].to(lm.device))
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
    vox = intensity_for(volume.voxels, spec)(volume.voxels)
    src_shape = (vox.shape[0], vox.shape[1], vox.shape[2])
    t = torch.from_numpy(vox)[None, None]
    if spec.target_spacing is not None:
        t = resize(t, spacing_to_shape(src_shape, volume.spacing, spec.target_spacing))
    elif spec.size is not None:  # trained on slices resized in-plane (a RadLens slice dataset's stacks)
        t = resize(t, (src_shape[0], *spec.size))
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
    allocate: ArrayAllocator | None = None,
    check_modality: bool = True,
) -> Result:
    """Run a model on a volume; every output is mapped back onto ``volume``'s voxel grid.

    ``allocate(shape, dtype)``, when given, makes the zero-filled arrays of volume size the result
    keeps (a slice classifier's explanation map), e.g. in shared memory for another process.
    ``check_modality=False``: the caller checked the input (:class:`inference.engine.session.ModelSession`)
    and the user forced the run or the modality was taken from the model."""
    cancel = cancel or CancelToken()
    t_start = time.perf_counter()
    lm = model if isinstance(model, LoadedModel) else None
    card = model.card if isinstance(model, LoadedModel) else model
    if volume.voxels.ndim != 3:
        raise RadLensError(f"model {card.name} needs a greyscale volume, got voxels of shape {volume.voxels.shape}")
    if check_modality and card.modality and volume.metadata.modality and not card.accepts(volume.metadata.modality):
        shown = volume.metadata.modality or "unknown"
        raise RadLensError(f"model {card.name} is for {'/'.join(card.modality)}, this volume is {shown}")
    if card.pipeline:
        pipeline_result = pipeline_for(card)(card, volume, on_progress, cancel, device)
        pipeline_result.timings["total"] = time.perf_counter() - t_start
        return pipeline_result
    if lm is None:
        on_progress(0.0, f"loading {card.name}")
        lm = load_model(card, device)
    if lm.device == "cpu":
        keep_freed_memory()  # batches reuse their tensors' pages instead of faulting fresh ones in
    result = Result(model=card.name, model_version=card.version, device=lm.device)
    if card.task == Task.SLICE_CLASSIFICATION:
        _classify_slices(lm, volume, result, on_progress, cancel, explain, allocate or _zeros)
    elif card.task == Task.VOLUME_CLASSIFICATION:
        _classify_volume(lm, volume, result, on_progress, cancel)
    else:
        _segment(lm, volume, result, on_progress, cancel)
    result.timings["total"] = time.perf_counter() - t_start
    return result
