"""Evaluation metrics for slice classifiers and their explanation maps. Pure numpy.

Conventions shared by every function here:

* ``y_true`` holds 0/1 labels, ``y_score`` probabilities (or any score where higher means
  "more likely positive"); a sample is called positive when ``score >= threshold``.
* A metric that is undefined for the data (AUC with one class only, sensitivity without
  positives, ...) is ``nan``, never a made-up 0 or 1. :func:`finite_or_none` turns those into
  ``None`` for JSON.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

ArrayLike = npt.ArrayLike
FloatArray = npt.NDArray[np.float64]


def _labels_scores(y_true: ArrayLike, y_score: ArrayLike) -> tuple[npt.NDArray[np.bool_], FloatArray]:
    t = np.asarray(y_true).reshape(-1)
    s = np.asarray(y_score, dtype=np.float64).reshape(-1)
    if t.shape != s.shape:
        raise ValueError(f"y_true has {t.size} values, y_score has {s.size}")
    if t.size and not np.isin(t, (0, 1)).all():
        raise ValueError("y_true must hold only 0 and 1")
    if not np.isfinite(s).all():
        raise ValueError("y_score holds NaN or infinite values")
    return t.astype(bool), s


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else math.nan


@dataclass(frozen=True)
class Confusion:
    """Counts at one threshold."""

    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.tn + self.fn

    def matrix(self) -> npt.NDArray[np.int64]:
        """``[[tn, fp], [fn, tp]]``: rows are the truth (0, 1), columns the prediction."""
        return np.array([[self.tn, self.fp], [self.fn, self.tp]], dtype=np.int64)


def confusion(y_true: ArrayLike, y_score: ArrayLike, threshold: float = 0.5) -> Confusion:
    t, s = _labels_scores(y_true, y_score)
    p = s >= threshold
    return Confusion(tp=int(np.sum(p & t)), fp=int(np.sum(p & ~t)), tn=int(np.sum(~p & ~t)), fn=int(np.sum(~p & t)))


def confusion_matrix(y_true: ArrayLike, y_score: ArrayLike, threshold: float = 0.5) -> npt.NDArray[np.int64]:
    """``[[tn, fp], [fn, tp]]`` (scikit-learn's layout for labels 0, 1)."""
    return confusion(y_true, y_score, threshold).matrix()


def accuracy(y_true: ArrayLike, y_score: ArrayLike, threshold: float = 0.5) -> float:
    c = confusion(y_true, y_score, threshold)
    return _ratio(c.tp + c.tn, c.n)


def sensitivity(y_true: ArrayLike, y_score: ArrayLike, threshold: float = 0.5) -> float:
    """Recall of the positives, tp / (tp + fn); nan without positives."""
    c = confusion(y_true, y_score, threshold)
    return _ratio(c.tp, c.tp + c.fn)


def specificity(y_true: ArrayLike, y_score: ArrayLike, threshold: float = 0.5) -> float:
    """tn / (tn + fp); nan without negatives."""
    c = confusion(y_true, y_score, threshold)
    return _ratio(c.tn, c.tn + c.fp)


def precision(y_true: ArrayLike, y_score: ArrayLike, threshold: float = 0.5) -> float:
    """tp / (tp + fp); nan when nothing is called positive."""
    c = confusion(y_true, y_score, threshold)
    return _ratio(c.tp, c.tp + c.fp)


def f1(y_true: ArrayLike, y_score: ArrayLike, threshold: float = 0.5) -> float:
    """2·tp / (2·tp + fp + fn); nan when there are no positives and none are predicted."""
    c = confusion(y_true, y_score, threshold)
    return _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn)


def _midranks(x: FloatArray) -> FloatArray:
    """1-based ranks of ``x``, tied values sharing the mean of their ranks."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    # start index of each run of equal values
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    ends = np.r_[starts[1:], xs.size]
    run_rank = (starts + ends + 1) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = np.repeat(run_rank, ends - starts)
    return ranks


def auc(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """Area under the ROC curve via the Mann–Whitney U statistic: the probability that a random
    positive scores higher than a random negative, ties counting one half. nan with one class."""
    t, s = _labels_scores(y_true, y_score)
    n_pos = int(t.sum())
    n_neg = t.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = _midranks(s)
    u = ranks[t].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def roc_curve(y_true: ArrayLike, y_score: ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``(fpr, tpr, thresholds)``, one point per distinct score (descending), starting at
    (0, 0) with threshold +inf and ending at (1, 1). With one class the missing rate is nan."""
    t, s = _labels_scores(y_true, y_score)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, t_sorted = s[order], t[order]
    last_of_run = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True]) if s.size else np.array([], int)
    tps = np.cumsum(t_sorted)[last_of_run].astype(np.float64)
    fps = (last_of_run + 1 - tps).astype(np.float64)
    n_pos, n_neg = float(t.sum()), float(t.size - t.sum())
    tpr = np.r_[0.0, tps] / n_pos if n_pos else np.full(tps.size + 1, math.nan)
    fpr = np.r_[0.0, fps] / n_neg if n_neg else np.full(fps.size + 1, math.nan)
    thresholds = np.r_[math.inf, s_sorted[last_of_run]]
    return fpr, tpr, thresholds


@dataclass(frozen=True)
class Calibration:
    """Equal-width probability bins: per bin the mean predicted probability, the observed
    fraction of positives and the count (empty bins have count 0 and nan means)."""

    edges: FloatArray
    mean_predicted: FloatArray
    fraction_positive: FloatArray
    counts: npt.NDArray[np.int64]

    @property
    def ece(self) -> float:
        n = int(self.counts.sum())
        if n == 0:
            return math.nan
        used = self.counts > 0
        gaps = np.abs(self.fraction_positive[used] - self.mean_predicted[used])
        return float(np.sum(self.counts[used] * gaps) / n)


def calibration_curve(y_true: ArrayLike, y_prob: ArrayLike, n_bins: int = 10) -> Calibration:
    """Reliability diagram data over ``n_bins`` equal-width bins of [0, 1]; bin i holds
    probabilities in [i/n, (i+1)/n), the last bin includes 1.0."""
    t, p = _labels_scores(y_true, y_prob)
    if p.size and (p.min() < 0.0 or p.max() > 1.0):
        raise ValueError("calibration needs probabilities in [0, 1]")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip((p * n_bins).astype(np.int64), 0, n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins).astype(np.int64)
    sum_p = np.bincount(idx, weights=p, minlength=n_bins)
    sum_t = np.bincount(idx, weights=t.astype(np.float64), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.where(counts > 0, sum_p / np.maximum(counts, 1), math.nan)
        frac = np.where(counts > 0, sum_t / np.maximum(counts, 1), math.nan)
    return Calibration(edges, mean_p, frac, counts)


def expected_calibration_error(y_true: ArrayLike, y_prob: ArrayLike, n_bins: int = 10) -> float:
    """ECE: Σ_bins (n_b / N) · |fraction positive_b − mean probability_b| over equal-width bins."""
    return calibration_curve(y_true, y_prob, n_bins).ece


def dice(pred: ArrayLike, truth: ArrayLike) -> float:
    """2|A∩B| / (|A| + |B|) of two boolean masks; 1.0 when both are empty."""
    a = np.asarray(pred).astype(bool)
    b = np.asarray(truth).astype(bool)
    if a.shape != b.shape:
        raise ValueError(f"dice: mask shapes differ: {a.shape} vs {b.shape}")
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return 1.0
    return float(2.0 * np.logical_and(a, b).sum() / total)


def mean_dice(preds: ArrayLike, truths: ArrayLike) -> float:
    """Mean per-slice Dice over (N, H, W) stacks; nan for N = 0."""
    p = np.asarray(preds)
    t = np.asarray(truths)
    if p.shape != t.shape:
        raise ValueError(f"dice: mask shapes differ: {p.shape} vs {t.shape}")
    if p.shape[0] == 0:
        return math.nan
    return float(np.mean([dice(a, b) for a, b in zip(p, t, strict=True)]))


def pointing_hits(maps: ArrayLike, masks: ArrayLike) -> npt.NDArray[np.bool_]:
    """Per slice: does the map's peak (the first maximum in row-major order) lie inside the mask?

    A map with no peak (constant, e.g. all zeros: no evidence anywhere) is a miss.
    """
    m = np.asarray(maps, dtype=np.float64)
    k = np.asarray(masks).astype(bool)
    if m.shape != k.shape or m.ndim != 3:
        raise ValueError(f"pointing game: maps {m.shape} and masks {k.shape} must both be (N, H, W)")
    flat = m.reshape(m.shape[0], -1)
    peak = np.argmax(flat, axis=1)
    has_peak = flat.max(axis=1, initial=-math.inf) > flat.min(axis=1, initial=math.inf)
    inside = k.reshape(k.shape[0], -1)[np.arange(k.shape[0]), peak] if k.shape[0] else np.zeros(0, bool)
    return np.asarray(inside & has_peak & np.isfinite(flat).all(axis=1), dtype=bool)


def pointing_game(maps: ArrayLike, masks: ArrayLike) -> float:
    """Fraction of slices with a lesion whose explanation peak falls inside the lesion mask.

    Slices whose mask is empty are left out (there is nothing to point at); nan when none remain.
    """
    m = np.asarray(maps)
    k = np.asarray(masks).astype(bool)
    if m.shape != k.shape or m.ndim != 3:
        raise ValueError(f"pointing game: maps {m.shape} and masks {k.shape} must both be (N, H, W)")
    keep = k.reshape(k.shape[0], -1).any(axis=1)
    if not keep.any():
        return math.nan
    return float(pointing_hits(m[keep], k[keep]).mean())


def f1_optimal_threshold(y_true: ArrayLike, y_score: ArrayLike) -> float:
    """The threshold (one of the scores) that maximises F1; 0.5 when there are no positives.

    Ties go to the highest threshold (fewer false positives for the same F1).
    """
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(y_score, dtype=np.float64)
    if not y.any() or s.size == 0:
        return 0.5
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    tp = np.cumsum(y)
    fp = np.cumsum(~y)
    last = np.r_[s[1:] != s[:-1], True]  # a threshold takes every sample with an equal score
    f1 = 2 * tp / (2 * tp + fp + (y.sum() - tp))
    f1 = np.where(last, f1, -1.0)
    best = int(np.argmax(f1))
    return float(s[best])


def classification_metrics(y_true: ArrayLike, y_score: ArrayLike, threshold: float = 0.5) -> dict[str, Any]:
    """The headline numbers in one dict (nan where undefined)."""
    c = confusion(y_true, y_score, threshold)
    return {
        "n": c.n,
        "n_positive": c.tp + c.fn,
        "n_negative": c.tn + c.fp,
        "threshold": float(threshold),
        "auc": auc(y_true, y_score),
        "accuracy": _ratio(c.tp + c.tn, c.n),
        "f1": _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn),
        "sensitivity": _ratio(c.tp, c.tp + c.fn),
        "specificity": _ratio(c.tn, c.tn + c.fp),
        "precision": _ratio(c.tp, c.tp + c.fp),
        "confusion": {"tp": c.tp, "fp": c.fp, "tn": c.tn, "fn": c.fn},
    }


def finite_or_none(value: Any) -> Any:
    """Recursively replace nan/inf floats (and numpy scalars/arrays) by JSON-safe values."""
    if isinstance(value, dict):
        return {str(k): finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    if isinstance(value, np.ndarray):
        return finite_or_none(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
