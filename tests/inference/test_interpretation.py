"""One reading of a Result for every output: scores per slice, the map drawn, the verdict in the task's words."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from inference.batch.key_images import choose_key_slices
from inference.engine.findings import find_components
from inference.engine.interpretation import input_summary, interpret, slice_scores
from inference.engine.result import Result
from inference.models.card import parse_card
from inference.volume import Volume

BASE: dict[str, Any] = {
    "name": "m", "version": "1", "modality": ["CT"], "architecture": "cnn", "weights": "w",
    "sha256": "0" * 64, "licence": "t", "intended_use": "t", "threshold": 0.4,
}  # fmt: skip


def _volume() -> Volume:
    return Volume(np.zeros((6, 8, 8), np.int16), (2.0, 2.0, 5.0), (0.0, 0.0, 0.0), np.eye(3))


def test_a_segmentation_reports_volumes_per_label_and_never_positive() -> None:
    card = parse_card({**BASE, "task": "segmentation", "labels": [{"value": 1, "name": "brain"}]}, Path("c.toml"))
    labels = np.zeros((6, 8, 8), np.uint8)
    labels[1:3, 2:6, 2:6] = 1  # 32 voxels of 0.02 mL
    probability = labels.astype(np.float32) * 0.9
    result = Result("m", "1", "cpu", label_map=labels, probability_map=probability, study_score=0.9)
    result.findings = find_components(_volume(), labels, probability, {1: "brain"})
    reading = interpret(result, card)
    assert reading.verdict == "segmented" and reading.headline == "brain 0.6 mL"
    assert "positive" not in reading.headline and reading.volumes_ml == {"brain": 0.64}
    np.testing.assert_allclose(reading.slice_scores, [0, 0.9, 0.9, 0, 0, 0], rtol=1e-6)  # type: ignore[arg-type]
    assert reading.map_name == "probability" and reading.map is probability
    empty = interpret(Result("m", "1", "cpu", label_map=np.zeros_like(labels)), card)
    assert empty.verdict == "nothing found" and empty.headline == "no brain found"


def test_a_classifier_compares_its_score_with_the_threshold() -> None:
    card = parse_card({**BASE, "task": "slice-classification", "explanation": "gradcam"}, Path("c.toml"))
    probs = np.array([0.1, 0.7, 0.2, 0.05, 0.3, 0.0], np.float32)
    heat = np.zeros((6, 8, 8), np.float32)
    heat[1, 3, 3] = 0.7
    result = Result("m", "1", "cpu", slice_probabilities=probs, study_score=0.7, heatmaps={"gradcam": heat})
    reading = interpret(result, card)
    assert reading.verdict == "positive" and "study score 0.70 — positive" in reading.headline
    assert reading.map_name == "gradcam" and reading.score_axis == "probability"
    np.testing.assert_array_equal(slice_scores(result), probs.astype(np.float64))
    assert choose_key_slices(result, 1) == [1]  # the key images read the same scores
    result.study_score = 0.39
    assert interpret(result, card).verdict == "negative"
    assert input_summary(result) == "input not checked"
    result.suitability, result.ood_score = "suitable with warnings", 4.25
    assert input_summary(result) == "input suitable with warnings; out-of-distribution score 4.2"
