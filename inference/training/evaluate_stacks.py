"""``evaluate`` for the stack models: a 3-D segmentation card (Dice of the lesion masks, lesions
found and missed) or a CNN + RNN card (windows or whole stacks called positive or negative).

Each run of consecutive slices of the split (a source's stack) goes through the engine's own
``run`` as a volume whose voxels the card's window maps back onto the dataset's pixels, so what is
measured is what the viewer and ``radlens analyze`` would show.

Importing this module does not import torch.
"""

from __future__ import annotations

import html
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.io.atomic import atomic_write
from inference.models.card import ModelCard, Task
from inference.progress import CancelToken, ProgressCallback
from inference.training.dataset_format import SliceDataset
from inference.training.metrics import calibration_curve, classification_metrics, dice, finite_or_none, roc_curve
from inference.training.sequences import contiguous_runs, read_rows, tiling_windows, window_rows
from inference.volume import Volume, VolumeMetadata

EXAMPLE_STACKS = 4
#: One example slice: the image, the true lesion, the model's mask.
ExampleSlice = tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]


def model_summary(card: ModelCard) -> dict[str, str]:
    """What an evaluation report says of the model it measured."""
    return {
        "name": card.name,
        "version": card.version,
        "card": str(card.path),
        "architecture": card.architecture,
        "task": card.task.value,
        "explanation": card.explanation.value,
    }


def stack_volume(ds: SliceDataset, rows: npt.NDArray[np.int64], card: ModelCard) -> Volume:
    """The dataset's centre slices of ``rows`` as a float volume in the card's units: its window
    (``normalise = "window"``) maps it back onto the dataset's 0–255 pixels, divided by 255."""
    centre = int(ds.images.shape[1]) // 2
    pixels = read_rows(ds.images, rows)[:, centre].astype(np.float32) / 255.0
    window = card.input.window or (0.5, 1.0)
    voxels = (window[0] - window[1] / 2 + pixels * window[1]).astype(np.float32)
    meta = VolumeMetadata(modality=card.modality[0] if card.modality else "")
    return Volume(voxels=voxels, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=np.eye(3), metadata=meta)


def _components(mask: npt.NDArray[np.bool_]) -> tuple[npt.NDArray[np.int32], int]:
    from scipy import ndimage

    labels, n = ndimage.label(mask)
    return np.asarray(labels, dtype=np.int32), int(n)


def lesion_detection(predicted: npt.NDArray[np.bool_], truth: npt.NDArray[np.bool_]) -> tuple[int, int, int]:
    """``(true lesions, of them touched by the prediction, predicted components touching no lesion)``
    (3-D connected components, faces and edges)."""
    truth_labels, n_truth = _components(truth)
    predicted_labels, n_predicted = _components(predicted)
    found = len(set(np.unique(truth_labels[predicted & truth]).tolist()) - {0})
    touching = set(np.unique(predicted_labels[predicted & truth]).tolist()) - {0}
    return n_truth, found, n_predicted - len(touching)


def evaluate_segmentation(
    card: ModelCard, lm: Any, ds: SliceDataset, idx: npt.NDArray[np.int64], on_progress: ProgressCallback,
    cancel: CancelToken,
) -> tuple[dict[str, Any], list[ExampleSlice]]:  # fmt: skip
    """Per stack Dice, lesions found and missed, voxel and slice figures; and example slices."""
    from inference.engine.run import run

    runs = contiguous_runs(ds, idx)
    per_stack: list[dict[str, Any]] = []
    tp = fp = fn = 0
    slice_truth: list[npt.NDArray[np.bool_]] = []
    slice_called: list[npt.NDArray[np.bool_]] = []
    lesions = found = false_components = 0
    examples: list[ExampleSlice] = []
    seconds = 0.0
    for n, rows in enumerate(runs):
        cancel.raise_if_cancelled()
        volume = stack_volume(ds, rows, card)
        t0 = time.perf_counter()
        result = run(lm, volume, cancel=cancel)
        seconds += time.perf_counter() - t0
        assert result.label_map is not None
        predicted = result.label_map > 0
        truth = np.asarray(read_rows(ds.masks, rows)).astype(bool)
        tp += int((predicted & truth).sum())
        fp += int((predicted & ~truth).sum())
        fn += int((~predicted & truth).sum())
        slice_truth.append(np.asarray(truth.any(axis=(1, 2)), dtype=bool))
        slice_called.append(np.asarray(predicted.any(axis=(1, 2)), dtype=bool))
        n_truth, n_found, n_false = lesion_detection(predicted, truth)
        lesions, found, false_components = lesions + n_truth, found + n_found, false_components + n_false
        per_stack.append(
            {
                "source": int(ds.sources[rows[0]]),
                "slices": int(rows.size),
                "dice": dice(predicted, truth) if truth.any() else None,
                "lesions": n_truth,
                "lesions_found": n_found,
                "false_components": n_false,
            }
        )
        if truth.any() and len(examples) < EXAMPLE_STACKS:
            k = int(np.argmax(truth.sum(axis=(1, 2))))
            examples.append((volume.voxels[k], truth[k], predicted[k]))
        on_progress((n + 1) / max(1, len(runs)), f"segmenting stack {n + 1}/{len(runs)}")
    dices = [s["dice"] for s in per_stack if s["dice"] is not None]
    st, sc = np.concatenate(slice_truth), np.concatenate(slice_called)
    metrics = {
        "n_stacks": len(runs),
        "n_slices": int(idx.size),
        "dice": float(np.mean(dices)) if dices else math.nan,
        "dice_median": float(np.median(dices)) if dices else math.nan,
        "dice_pooled": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else math.nan,
        "voxel_sensitivity": tp / (tp + fn) if tp + fn else math.nan,
        "voxel_precision": tp / (tp + fp) if tp + fp else math.nan,
        "lesions": lesions,
        "lesions_found": found,
        "lesion_sensitivity": found / lesions if lesions else math.nan,
        "false_components_per_stack": false_components / max(1, len(runs)),
        "slice_sensitivity": float(sc[st].mean()) if st.any() else math.nan,
        "slice_specificity": float((~sc[~st]).mean()) if (~st).any() else math.nan,
        "throughput_slices_per_s": idx.size / seconds if seconds > 0 else math.nan,
        "stacks": per_stack,
    }
    return metrics, examples


def evaluate_stack_classifier(
    card: ModelCard, lm: Any, ds: SliceDataset, idx: npt.NDArray[np.int64], window: int | None,
    on_progress: ProgressCallback, cancel: CancelToken,
) -> dict[str, Any]:  # fmt: skip
    """Study scores of windows of ``window`` consecutive slices (whole stacks when ``None``) against
    "a slice of it has a lesion"."""
    from inference.engine.run import run

    runs = contiguous_runs(ds, idx)
    if window is not None:
        runs = [r for r in runs if r.size >= window]
        pieces = [window_rows(runs, w) for w in tiling_windows(runs, window)]
    else:
        pieces = runs
    labels_all = np.asarray(ds.labels)
    scores, labels = [], []
    seconds = 0.0
    for n, rows in enumerate(pieces):
        cancel.raise_if_cancelled()
        t0 = time.perf_counter()
        result = run(lm, stack_volume(ds, rows, card), cancel=cancel)
        seconds += time.perf_counter() - t0
        scores.append(float(result.study_score or 0.0))
        labels.append(int(labels_all[rows].max()))
        on_progress((n + 1) / max(1, len(pieces)), f"scoring {n + 1}/{len(pieces)}")
    y, p = np.asarray(labels, dtype=np.int64), np.asarray(scores, dtype=np.float64)
    metrics = classification_metrics(y, p, float(card.threshold))
    fpr, tpr, _ = roc_curve(y, p)
    metrics.update(
        {
            "n_stacks": len(pieces),
            "window_slices": window,
            "n_slices": int(sum(r.size for r in pieces)),
            "ece": calibration_curve(y, p, 10).ece,
            "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()},
            "throughput_slices_per_s": sum(r.size for r in pieces) / seconds if seconds > 0 else math.nan,
        }
    )
    return metrics


def plot_segmentations(examples: list[ExampleSlice]) -> bytes:
    """Each example slice with the true lesion (green) and the model's mask (red) outlined."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = max(1, len(examples))
    fig = Figure(figsize=(2.6 * n, 2.9), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, example in zip(axes, examples + [None] * (n - len(examples)), strict=True):
        ax.set_xticks([])
        ax.set_yticks([])
        if example is None:
            ax.text(0.5, 0.5, "no lesion in the split", ha="center", va="center")
            continue
        image, truth, predicted = example
        ax.imshow(image, cmap="gray", interpolation="nearest")
        for mask, colour in ((truth, "lime"), (predicted, "red")):
            if mask.any():
                ax.contour(mask.astype(np.float32), levels=[0.5], colors=colour, linewidths=0.9)
        ax.set_title(f"Dice {dice(predicted, truth):.2f}", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "–" if not math.isfinite(value) else f"{value:.4g}"
    return "–" if value is None else html.escape(str(value))


def write_stack_report(out: Path, metrics: dict[str, Any], picture: bytes | None) -> Path:
    """metrics.json, examples.png (segmentation) and report.html (last), each atomically."""
    out.mkdir(parents=True, exist_ok=True)
    if picture is not None:
        atomic_write(out / "examples.png", picture)
    atomic_write(out / "metrics.json", json.dumps(finite_or_none(metrics), indent=1, allow_nan=False) + "\n")
    model = metrics.get("model", {})
    skip = {"model", "stacks", "roc", "confusion", "dataset", "split"}
    rows = "\n".join(
        f"<tr><th>{html.escape(k.replace('_', ' '))}</th><td>{_fmt(v)}</td></tr>"
        for k, v in metrics.items()
        if k not in skip and not isinstance(v, dict | list)
    )
    stacks = "\n".join(
        "<tr>" + "".join(f"<td>{_fmt(s.get(k))}</td>" for k in ("source", "slices", "dice", "lesions", "lesions_found",
                                                              "false_components")) + "</tr>"
        for s in metrics.get("stacks", [])
    )  # fmt: skip
    per_stack = (
        "<h2>Stacks</h2><table><tr><th>source</th><th>slices</th><th>Dice</th><th>lesions</th><th>found</th>"
        f"<th>false components</th></tr>{stacks}</table>"
        if stacks
        else ""
    )
    picture_html = (
        "<h2>Examples</h2><p>Each stack's slice with the most lesion: the true lesion in green, the model's "
        'mask in red.</p><p><img src="examples.png" alt="example slices"></p>'
        if picture is not None
        else ""
    )
    title = html.escape(f"{model.get('name', 'model')} {model.get('version', '')}".strip())
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Evaluation: {title}</title>
<style>body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 70em; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }} th, td {{ border: 1px solid #ccc; padding: 0.3em 0.7em; }}
th {{ background: #f4f4f4; font-weight: normal; text-align: left; }} .note {{ color: #a00; }}</style></head><body>
<h1>Evaluation: {title}</h1>
<p>Dataset <code>{_fmt(metrics.get("dataset"))}</code>, split <b>{_fmt(metrics.get("split"))}</b>;
card <code>{_fmt(model.get("card"))}</code> ({_fmt(model.get("architecture"))}, {_fmt(model.get("task"))}).</p>
<p class="note">Research software: not for clinical use.</p>
<h2>Metrics</h2><table>{rows}</table>
{per_stack}
{picture_html}
</body></html>
"""
    return atomic_write(out / "report.html", page)


def evaluate_stacks(
    card: ModelCard, ds: SliceDataset, idx: npt.NDArray[np.int64], split: str, out: Path | None, device: str,
    window: int | None, on_progress: ProgressCallback, cancel: CancelToken,
) -> dict[str, Any]:  # fmt: skip
    """The whole evaluation of a segmentation or stack-classification card on ``idx`` (one split)."""
    from inference.engine.run import load_model

    t0 = time.perf_counter()
    on_progress(0.0, f"loading {card.name}")
    lm = load_model(card, device)
    result: dict[str, Any] = {
        "model": model_summary(card),
        "dataset": str(ds.root),
        "split": split,
        "device": lm.device,
    }
    picture = None
    if card.task == Task.SEGMENTATION:
        metrics, examples = evaluate_segmentation(card, lm, ds, idx, on_progress, cancel)
        if out is not None:
            picture = plot_segmentations(examples)
    else:
        metrics = evaluate_stack_classifier(card, lm, ds, idx, window, on_progress, cancel)
    result.update(metrics)
    result["seconds"] = time.perf_counter() - t0
    if out is not None:
        result["report"] = str(out / "report.html")
        write_stack_report(out, result, picture)
    return result
