"""What a model's :class:`Result` says, worded once for the viewer, the key images, the PDF, the SR and the summary.

- **Per-slice scores**: the model's slice probabilities, else the highest value of its primary map
  on each slice, else the number of labelled voxels per slice.
- **Primary map** (the one drawn): the explanation heatmap if there is one, else the probability map.
- **Label map**: the model's own; a slice classifier's is its heatmap at the threshold (made by the writers).
- **Verdict** per task: a classifier's study score against its threshold ("positive"/"negative");
  a segmentation model reports the volume of each label it found and never calls a study positive.
- **Input notes**: the input check's verdict, warnings and out-of-distribution score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.engine.result import Result
from inference.models.card import ModelCard, Task


def _per_slice_max(array: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    flat = np.nan_to_num(np.asarray(array, dtype=np.float64).reshape(array.shape[0], -1), nan=0.0)
    out: npt.NDArray[np.float64] = flat.max(axis=1) if flat.shape[1] else np.zeros(array.shape[0])
    return out


def primary_map(result: Result) -> tuple[str, npt.NDArray[np.float32] | None]:
    """``(name, map)``: the explanation heatmap if any, else the probability map (None when neither)."""
    if result.heatmaps:
        name = next(iter(result.heatmaps))
        return name, result.heatmaps[name]
    return "probability", result.probability_map


def slice_scores(result: Result, label_map: npt.NDArray[np.uint8] | None = None) -> npt.NDArray[np.float64] | None:
    """One score per slice ``k`` (see the module); None when the result has nothing per slice."""
    if result.slice_probabilities is not None:
        probabilities: npt.NDArray[np.float64] = np.nan_to_num(
            np.asarray(result.slice_probabilities, dtype=np.float64), nan=0.0
        )
        return probabilities
    _, shown = primary_map(result)
    if shown is not None:
        return _per_slice_max(shown)
    labels = label_map if label_map is not None else result.label_map
    if labels is not None:
        counts: npt.NDArray[np.float64] = (labels.reshape(labels.shape[0], -1) != 0).sum(axis=1, dtype=np.float64)
        return counts
    return None


def label_volumes(result: Result) -> dict[str, float]:
    """mL per finding name (every component of a label added up), in the order first found."""
    out: dict[str, float] = {}
    for f in result.findings:
        out[f.name] = out.get(f.name, 0.0) + f.volume_ml
    return out


@dataclass(frozen=True)
class Interpretation:
    task: Task
    verdict: str  # "positive", "negative", "segmented", "nothing found", "" (no score)
    headline: str  # one line, e.g. "study score 0.87 — positive (threshold 0.40)" or "brain 1402.3 mL"
    score_axis: str  # what the per-slice scores are ("probability", "max probability", "labelled voxels")
    slice_scores: npt.NDArray[np.float64] | None
    map_name: str
    map: npt.NDArray[np.float32] | None
    volumes_ml: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # the input check's warnings, then the engine's messages


def interpret(result: Result, card: ModelCard) -> Interpretation:
    name, shown = primary_map(result)
    scores = slice_scores(result)
    axis = (
        "probability"
        if result.slice_probabilities is not None
        else "max probability"
        if shown is not None
        else "labelled voxels"
    )
    notes = (*result.input_warnings, *result.messages)
    volumes = label_volumes(result)
    if card.task == Task.SEGMENTATION:
        if volumes:
            headline = ", ".join(f"{label} {ml:.1f} mL" for label, ml in volumes.items())
            verdict = "segmented"
        else:
            headline, verdict = f"no {', '.join(lab.name for lab in card.labels) or 'label'} found", "nothing found"
        return Interpretation(card.task, verdict, headline, axis, scores, name, shown, volumes, notes)
    if result.study_score is None:
        return Interpretation(card.task, "", "no study-level score", axis, scores, name, shown, volumes, notes)
    positive = result.study_score >= card.threshold
    verdict = "positive" if positive else "negative"
    side = "at or above" if positive else "below"
    headline = f"study score {result.study_score:.2f} — {verdict} ({side} the model's threshold {card.threshold:g})"
    return Interpretation(card.task, verdict, headline, axis, scores, name, shown, volumes, notes)


def input_summary(result: Result) -> str:
    """The input check in one line for reports: its verdict and out-of-distribution score."""
    if not result.suitability:
        return "input not checked"
    ood = "" if result.ood_score is None else f"; out-of-distribution score {result.ood_score:.1f}"
    return f"input {result.suitability}{ood}"
