"""The evaluation report: ROC and calibration plots, example slices with their explanation maps
and lesion outlines, and an HTML page that shows them with the metrics.

Plots are drawn with matplotlib's Agg canvas directly (``Figure`` + ``FigureCanvasAgg``), never
through ``pyplot``, so no global backend is chosen and no window can open; matplotlib is
imported only inside the functions that draw. Every file is written atomically.
"""

from __future__ import annotations

import html
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from inference.io.atomic import atomic_write
from inference.training.metrics import Calibration, finite_or_none

if TYPE_CHECKING:
    from matplotlib.figure import Figure

REPORT_FILES = ("metrics.json", "roc.png", "calibration.png", "examples.png", "report.html")


@dataclass(frozen=True)
class Example:
    """One slice for the example grid."""

    index: int  # row in the dataset
    image: npt.NDArray[np.float32]  # (H, W) in [0, 1] (the centre channel)
    mask: npt.NDArray[np.uint8]  # (H, W)
    label: int
    probability: float
    explanation: npt.NDArray[np.float32] | None  # (H, W) in [0, 1]


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def plot_roc(fpr: npt.ArrayLike, tpr: npt.ArrayLike, auc: float) -> bytes:
    fig = _figure(4.5, 4.5)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="0.6", linewidth=1, label="chance")
    label = f"model (AUC {auc:.3f})" if math.isfinite(auc) else "model (AUC undefined)"
    ax.plot(np.asarray(fpr), np.asarray(tpr), color="tab:blue", linewidth=2, label=label, drawstyle="default")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("1 − specificity (false-positive rate)")
    ax.set_ylabel("sensitivity (true-positive rate)")
    ax.set_title("ROC")
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def plot_calibration(cal: Calibration) -> bytes:
    fig = _figure(4.5, 5.5)
    ax, hist = fig.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    ax.plot([0, 1], [0, 1], linestyle="--", color="0.6", linewidth=1, label="perfect calibration")
    used = cal.counts > 0
    ece = cal.ece
    ax.plot(
        cal.mean_predicted[used],
        cal.fraction_positive[used],
        marker="o",
        color="tab:orange",
        label=f"model (ECE {ece:.3f})" if math.isfinite(ece) else "model",
    )
    ax.set_ylim(0, 1)
    ax.set_ylabel("observed fraction positive")
    ax.set_title("Calibration")
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    centres = (cal.edges[:-1] + cal.edges[1:]) / 2
    hist.bar(centres, cal.counts, width=np.diff(cal.edges) * 0.9, color="0.5")
    hist.set_xlim(0, 1)
    hist.set_xlabel("predicted probability")
    hist.set_ylabel("slices")
    fig.tight_layout()
    return _png(fig)


def plot_examples(examples: list[Example], threshold: float = 0.5) -> bytes:
    """Two rows per example column: the slice with the lesion outline, and the same slice with
    the explanation map over it and its peak marked (+)."""
    n = max(1, len(examples))
    fig = _figure(2.1 * n, 4.6)
    axes = fig.subplots(2, n, squeeze=False)
    for col in range(n):
        top, bottom = axes[0][col], axes[1][col]
        for ax in (top, bottom):
            ax.set_xticks([])
            ax.set_yticks([])
        if col >= len(examples):
            top.text(0.5, 0.5, "no slices", ha="center", va="center")
            continue
        ex = examples[col]
        called = "pos" if ex.probability >= threshold else "neg"
        top.set_title(
            f"#{ex.index} truth {'lesion' if ex.label else 'none'}\np={ex.probability:.2f} ({called})", fontsize=8
        )
        for ax in (top, bottom):
            ax.imshow(ex.image, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            if ex.mask.any():
                ax.contour(ex.mask.astype(np.float32), levels=[0.5], colors="lime", linewidths=0.8)
        if ex.explanation is not None:
            bottom.imshow(ex.explanation, cmap="jet", vmin=0.0, vmax=1.0, alpha=0.45, interpolation="bilinear")
            if float(ex.explanation.max()) > float(ex.explanation.min()):
                r, c = np.unravel_index(int(np.argmax(ex.explanation)), ex.explanation.shape)
                bottom.plot([c], [r], marker="+", color="white", markersize=10, markeredgewidth=2)
        else:
            bottom.text(0.5, 0.05, "no map", ha="center", va="bottom", color="white", transform=bottom.transAxes)
    fig.tight_layout()
    return _png(fig)


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return "–" if not math.isfinite(value) else f"{value:.4g}"
    return html.escape(str(value))


def render_html(metrics: dict[str, Any]) -> str:
    """A self-contained page (images by relative path) with the headline metrics."""
    model = metrics.get("model", {})
    rows = [
        ("slices", metrics.get("n_slices")),
        ("positive / negative", f"{metrics.get('n_positive')} / {metrics.get('n_negative')}"),
        ("threshold", metrics.get("threshold")),
        ("AUC", metrics.get("auc")),
        ("accuracy", metrics.get("accuracy")),
        ("F1", metrics.get("f1")),
        ("sensitivity", metrics.get("sensitivity")),
        ("specificity", metrics.get("specificity")),
        ("precision", metrics.get("precision")),
        ("expected calibration error (10 bins)", metrics.get("ece")),
        ("pointing game (explanation peak inside the lesion)", metrics.get("pointing_game")),
        ("map Dice (explanation ≥ 0.5 vs lesion mask)", metrics.get("map_dice")),
        ("throughput (slices/s, scoring)", metrics.get("throughput_slices_per_s")),
        ("throughput (slices/s, explanations)", metrics.get("explain_slices_per_s")),
        ("device", metrics.get("device")),
    ]
    conf = metrics.get("confusion", {})
    table = "\n".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in rows)
    title = f"{model.get('name', 'model')} {model.get('version', '')}".strip()
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Evaluation: {html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 70em; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: left; }}
th {{ background: #f4f4f4; font-weight: normal; }}
.note {{ color: #a00; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>Evaluation: {html.escape(title)}</h1>
<p>Dataset <code>{_fmt(metrics.get("dataset"))}</code>, split <b>{_fmt(metrics.get("split"))}</b>;
card <code>{_fmt(model.get("card"))}</code> ({_fmt(model.get("architecture"))},
explanation {_fmt(model.get("explanation"))}).</p>
<p class="note">Research software: not for clinical use.</p>
<h2>Metrics</h2>
<table>{table}</table>
<h2>Confusion matrix</h2>
<table>
<tr><th></th><th>called negative</th><th>called positive</th></tr>
<tr><th>no lesion</th><td>{_fmt(conf.get("tn"))}</td><td>{_fmt(conf.get("fp"))}</td></tr>
<tr><th>lesion</th><td>{_fmt(conf.get("fn"))}</td><td>{_fmt(conf.get("tp"))}</td></tr>
</table>
<h2>ROC and calibration</h2>
<p><img src="roc.png" alt="ROC curve"> <img src="calibration.png" alt="calibration curve"></p>
<h2>Examples</h2>
<p>Top row: the slice with the lesion outline (green). Bottom row: the explanation map
(scaled per slice to its own maximum; not a probability) with its peak (+).</p>
<p><img src="examples.png" alt="example slices with explanation maps"></p>
</body></html>
"""


def write_report(
    out_dir: str | Path,
    metrics: dict[str, Any],
    roc: tuple[npt.ArrayLike, npt.ArrayLike],
    calibration: Calibration,
    examples: list[Example],
) -> Path:
    """Write metrics.json, roc.png, calibration.png, examples.png and report.html (last) into
    ``out_dir``, each atomically; returns the path of report.html."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    auc = metrics.get("auc")
    auc_f = float(auc) if isinstance(auc, int | float) else math.nan
    atomic_write(out / "roc.png", plot_roc(roc[0], roc[1], auc_f))
    atomic_write(out / "calibration.png", plot_calibration(calibration))
    atomic_write(out / "examples.png", plot_examples(examples, float(metrics.get("threshold", 0.5))))
    atomic_write(out / "metrics.json", json.dumps(finite_or_none(metrics), indent=1, allow_nan=False) + "\n")
    return atomic_write(out / "report.html", render_html(finite_or_none(metrics)))
