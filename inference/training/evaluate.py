"""``evaluate(model, dataset, split, out_dir) -> metrics``: a model on a dataset split.

Segmentation and stack-classification cards (the 3-D U-Net, the CNN + RNN) are evaluated stack by
stack through the engine (:mod:`inference.training.evaluate_stacks`: Dice, lesions found, windows
or stacks called); a slice classifier as follows.

Scores every slice of the split (batched, ``torch.inference_mode``), explains the positive
slices with the card's explanation (Grad-CAM or the attention map), and computes
classification metrics (AUC, accuracy, F1, sensitivity, specificity, confusion matrix, ROC,
calibration and ECE), the pointing game and the "map Dice" (explanation ≥ 0.5 vs the lesion
mask) and the throughput. With ``out_dir`` the report is written there (metrics.json,
report.html, roc.png, calibration.png, examples.png), never into the dataset folder.

Importing this module does not import torch.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from inference.errors import RadLensError
from inference.models.card import Explanation, ModelCard, Task, load_card
from inference.progress import CancelToken, ProgressCallback, no_progress
from inference.training.dataset_format import DatasetError, SliceDataset, read_dataset
from inference.training.evaluate_stacks import model_summary
from inference.training.metrics import (
    calibration_curve,
    classification_metrics,
    dice,
    pointing_hits,
    roc_curve,
)
from inference.training.report import Example, write_report

if TYPE_CHECKING:
    import torch

#: Explanation maps are thresholded here for the "map Dice".
MAP_DICE_THRESHOLD = 0.5
EXAMPLE_POSITIVES = 5
EXAMPLE_NEGATIVES = 3


class EvaluationError(RadLensError):
    """The model or the data cannot be evaluated as asked."""


def resolve_card(model: ModelCard | str | Path) -> ModelCard:
    """A card from a card object, a card file, a run folder (its ``card.toml``), or a
    registered model's name (``name`` or ``name@version``)."""
    if isinstance(model, ModelCard):
        return model
    p = Path(model).expanduser()
    if p.is_dir():
        cards = sorted(c for c in p.glob("card*.toml")) + sorted(p.glob("card*.json"))
        if not cards:
            hint = (
                " (training has not finished: resume it with radlens train --resume)"
                if (p / "checkpoint_last.pt").exists()
                else ""
            )
            raise EvaluationError(f"{p}: no card.toml in this folder{hint}")
        return load_card(cards[0])
    if p.is_file():
        return load_card(p)
    if isinstance(model, str) and "/" not in model and "\\" not in model:
        from inference.models.registry import discover

        try:
            return discover().get(model)
        except RadLensError as exc:
            raise EvaluationError(f"{model}: neither a card file, a run folder nor a registered model ({exc})") from exc
    raise EvaluationError(f"{p}: no such card file or run folder")


def _batches(idx: npt.NDArray[np.int64], batch_size: int) -> list[npt.NDArray[np.int64]]:
    return [idx[i : i + batch_size] for i in range(0, idx.size, batch_size)]


def _load_batch(ds: SliceDataset, rows: npt.NDArray[np.int64], device: str, size: tuple[int, int]) -> torch.Tensor:
    import torch

    from inference.engine.grid import resize
    from inference.training.batches import check_finite_inputs, to_input

    order = np.argsort(rows)  # memory-mapped reads in file order
    images = np.empty((rows.size, *ds.images.shape[1:]), dtype=ds.images.dtype)
    images[order] = ds.images[rows[order]]
    x = to_input(torch.from_numpy(images), device)
    check_finite_inputs(x, torch.from_numpy(rows), "evaluation")
    return resize(x, size)


def _explain(network: torch.nn.Module, x: torch.Tensor, explanation: Explanation) -> npt.NDArray[np.float32]:
    if explanation == Explanation.ATTENTION:
        from inference.models.explain import attention_map

        return attention_map(network, x)
    from inference.models.explain import grad_cam

    return grad_cam(network, x)


def _maps_to_data_grid(maps: npt.NDArray[np.float32], size: tuple[int, int]) -> npt.NDArray[np.float32]:
    import torch

    from inference.engine.grid import resize

    if maps.shape[-2:] == size:
        return maps
    t = resize(torch.from_numpy(np.ascontiguousarray(maps))[:, None], size)[:, 0]
    return t.clamp_(0.0, 1.0).numpy().astype(np.float32)


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def evaluate(
    model: ModelCard | str | Path,
    dataset: SliceDataset | str | Path,
    split: str = "test",
    out_dir: str | Path | None = None,
    explain: bool = True,
    *,
    device: str = "auto",
    batch_size: int | None = None,
    on_progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
    window: int | None = None,
) -> dict[str, Any]:
    """Evaluate a model on one split of a dataset (a stack classifier on windows of ``window``
    consecutive slices, or on whole stacks when ``None``); returns the metrics (``nan``
    where undefined) and, with ``out_dir``, writes the report there.

    :raises EvaluationError: a model that is not a slice classifier or does not fit the data,
        an ``out_dir`` inside the dataset folder.
    :raises DatasetError: a missing dataset or an empty split.
    """
    import torch

    from inference.engine.device import autocast_dtype, select_device
    from inference.models.safe_load import load_network

    cancel = cancel or CancelToken()
    t_start = time.perf_counter()
    card = resolve_card(model)
    ds = dataset if isinstance(dataset, SliceDataset) else read_dataset(dataset)
    out = Path(out_dir).expanduser().resolve() if out_dir is not None else None
    if out is not None and out.is_relative_to(ds.root.resolve()):
        raise EvaluationError(f"--out {out} is inside the dataset folder {ds.root}; choose a folder outside it")
    idx = ds.split_indices(split)
    if idx.size == 0:
        raise DatasetError(f"{ds.root}: the {split} split is empty (no source has split = {split!r})")
    if card.task != Task.SLICE_CLASSIFICATION:
        from inference.engine.device import select_device
        from inference.training.evaluate_stacks import evaluate_stacks

        found = evaluate_stacks(card, ds, idx, split, out, select_device(device), window, on_progress, cancel)
        on_progress(1.0, f"{split}: {found['n_stacks']} stacks")
        return found
    channels = int(ds.images.shape[1])
    if card.input.channels != channels:
        raise EvaluationError(
            f"model {card.name} takes {card.input.channels} channel(s) (context_slices = "
            f"{card.input.context_slices}) but the dataset's slices have {channels}"
        )
    data_size = ds.size
    size = card.input.size or data_size
    bs = max(1, batch_size or card.input.batch_size)
    labels = np.asarray(ds.labels[idx]).astype(np.int64)

    dev = select_device(device)
    on_progress(0.0, f"loading {card.name}")
    network = load_network(card, dev)
    amp = autocast_dtype(dev)

    # 1. scores
    probs = np.zeros(idx.size, dtype=np.float64)
    batches = _batches(idx, bs)
    want_maps = explain and card.explanation != Explanation.NONE
    to_explain = np.zeros(0, dtype=np.int64)
    total_work = len(batches) + (math.ceil((int(labels.sum()) + EXAMPLE_NEGATIVES) / bs) if want_maps else 0)
    score_seconds = 0.0
    pos = 0
    for b, rows in enumerate(batches):
        cancel.raise_if_cancelled()
        x = _load_batch(ds, rows, dev, size)
        _sync(dev)
        t0 = time.perf_counter()
        with torch.inference_mode():
            if amp is None:
                logits = network(x)
            else:
                with torch.autocast(device_type="cuda", dtype=amp):  # type: ignore[arg-type]
                    logits = network(x)
            p = torch.sigmoid(logits.float().reshape(x.shape[0], -1)[:, 0]).double().cpu().numpy()
        _sync(dev)
        score_seconds += time.perf_counter() - t0
        probs[pos : pos + rows.size] = p
        pos += rows.size
        on_progress((b + 1) / total_work, f"scoring {pos}/{idx.size} slices")

    threshold = float(card.threshold)
    result: dict[str, Any] = {
        "model": model_summary(card),
        "dataset": str(ds.root),
        "split": split,
        "n_slices": int(idx.size),
    }
    cm = classification_metrics(labels, probs, threshold)
    result.update({k: v for k, v in cm.items() if k not in ("n",)})
    result["n_positive"], result["n_negative"] = cm["n_positive"], cm["n_negative"]
    fpr, tpr, thr = roc_curve(labels, probs)
    cal = calibration_curve(labels, probs, 10)
    result["ece"] = cal.ece
    result["roc"] = {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": thr.tolist()}
    result["calibration"] = {
        "edges": cal.edges.tolist(),
        "mean_predicted": cal.mean_predicted.tolist(),
        "fraction_positive": cal.fraction_positive.tolist(),
        "counts": cal.counts.tolist(),
    }

    # 2. examples: the most and least confident positives, the most suspicious negatives
    pos_local = np.flatnonzero(labels == 1)
    neg_local = np.flatnonzero(labels == 0)
    by_pos = pos_local[np.argsort(-probs[pos_local], kind="stable")]
    by_neg = neg_local[np.argsort(-probs[neg_local], kind="stable")]
    top = by_pos[: EXAMPLE_POSITIVES - 2].tolist()
    low = [i for i in by_pos[::-1][:2].tolist() if i not in top]  # the misses, if any
    example_local = [int(i) for i in top + low + by_neg[:EXAMPLE_NEGATIVES].tolist()]
    example_maps: dict[int, npt.NDArray[np.float32]] = {}

    # 3. explanations of the positive slices: pointing game and map Dice
    hits: list[bool] = []
    dices: list[float] = []
    explain_seconds = 0.0
    n_explained = 0
    if want_maps:
        to_explain = np.array(sorted(set(pos_local.tolist()) | set(example_local)), dtype=np.int64)
    explain_batches = _batches(to_explain, bs)
    total_work = len(batches) + len(explain_batches)
    if want_maps:
        was_training = network.training
        network.eval()
        for b, local in enumerate(explain_batches):
            cancel.raise_if_cancelled()
            rows = idx[local]
            x = _load_batch(ds, rows, dev, size)
            _sync(dev)
            t0 = time.perf_counter()
            maps = _explain(network, x, card.explanation)
            _sync(dev)
            explain_seconds += time.perf_counter() - t0
            n_explained += rows.size
            maps = _maps_to_data_grid(maps, data_size)
            masks = np.asarray(ds.masks[rows]).astype(bool)
            lesion = labels[local] == 1
            has_mask = masks.reshape(masks.shape[0], -1).any(axis=1)
            keep = lesion & has_mask
            if keep.any():
                hits.extend(pointing_hits(maps[keep], masks[keep]).tolist())
                dices.extend(dice(m >= MAP_DICE_THRESHOLD, k) for m, k in zip(maps[keep], masks[keep], strict=True))
            for j, li in enumerate(local.tolist()):
                if li in example_local:
                    example_maps[li] = maps[j]
            on_progress((len(batches) + b + 1) / total_work, f"explaining {n_explained}/{to_explain.size} slices")
        network.train(was_training)
    result["pointing_game"] = float(np.mean(hits)) if hits else math.nan
    result["pointing_game_n"] = len(hits)
    result["map_dice"] = float(np.mean(dices)) if dices else math.nan
    result["map_dice_threshold"] = MAP_DICE_THRESHOLD
    result["throughput_slices_per_s"] = idx.size / score_seconds if score_seconds > 0 else math.nan
    result["explain_slices_per_s"] = n_explained / explain_seconds if explain_seconds > 0 else math.nan
    result["device"] = dev
    result["batch_size"] = bs

    if out is not None:
        examples = []
        ctx = card.input.context_slices
        for li in example_local:
            row = int(idx[li])
            img = np.asarray(ds.images[row, min(ctx, channels - 1)], dtype=np.float32) / 255.0
            examples.append(
                Example(
                    index=row,
                    image=img,
                    mask=np.asarray(ds.masks[row], dtype=np.uint8),
                    label=int(labels[li]),
                    probability=float(probs[li]),
                    explanation=example_maps.get(li),
                )
            )
        result["seconds"] = time.perf_counter() - t_start
        result["report"] = str(out / "report.html")
        write_report(out, result, (fpr, tpr), cal, examples)
    result["seconds"] = time.perf_counter() - t_start
    on_progress(1.0, f"AUC {result['auc']:.3f}, {idx.size} slices")
    return result
