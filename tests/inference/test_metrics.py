"""Evaluation metrics against hand-computed values and brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest

from inference.training import metrics as M

Y = np.array([1, 1, 1, 0, 0, 0, 0, 1])
S = np.array([0.9, 0.6, 0.4, 0.7, 0.2, 0.1, 0.5, 0.5])
# at threshold 0.5: predicted positive = [1, 1, 0, 1, 0, 0, 1, 1]
# tp = 3 (0.9, 0.6, 0.5), fn = 1 (0.4), fp = 2 (0.7, 0.5), tn = 2 (0.2, 0.1)


def test_threshold_metrics_by_hand() -> None:
    c = M.confusion(Y, S, 0.5)
    assert (c.tp, c.fp, c.tn, c.fn) == (3, 2, 2, 1)
    assert M.confusion_matrix(Y, S, 0.5).tolist() == [[2, 2], [1, 3]]
    assert M.accuracy(Y, S) == pytest.approx(5 / 8)
    assert M.sensitivity(Y, S) == pytest.approx(3 / 4)
    assert M.specificity(Y, S) == pytest.approx(2 / 4)
    assert M.precision(Y, S) == pytest.approx(3 / 5)
    assert M.f1(Y, S) == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))
    # a higher threshold: only 0.9 and 0.7 are called positive
    assert M.confusion(Y, S, 0.65) == M.Confusion(tp=1, fp=1, tn=3, fn=3)


def test_auc_by_hand_with_a_tie() -> None:
    # positives 0.9, 0.6, 0.4, 0.5; negatives 0.7, 0.2, 0.1, 0.5
    # pairs won: 0.9 → 4; 0.6 → 3; 0.4 → 2; 0.5 → 2 + ½ (tie with 0.5) → 11.5 of 16
    assert M.auc(Y, S) == pytest.approx(11.5 / 16)
    assert M.auc([0, 1], [0.3, 0.3]) == pytest.approx(0.5)
    assert M.auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert M.auc([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1]) == 0.0
    assert math.isnan(M.auc([1, 1], [0.2, 0.4]))


def _brute_auc(y: np.ndarray, s: np.ndarray) -> float:
    pos, neg = s[y == 1], s[y == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins / (pos.size * neg.size))


@pytest.mark.parametrize("seed", range(5))
def test_auc_equals_brute_force_on_random_data_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 300))
    y = rng.integers(0, 2, n)
    y[0], y[1] = 0, 1
    s = np.round(rng.random(n) + 0.3 * y, 1)  # rounding makes many ties
    assert M.auc(y, s) == pytest.approx(_brute_auc(y, s), abs=1e-12)


def test_auc_equals_the_area_under_the_roc_points() -> None:
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.random(200) + 0.5 * y, 2)
    fpr, tpr, thr = M.roc_curve(y, s)
    assert fpr[0] == 0 and tpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1 and thr[0] == math.inf
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0) and np.all(np.diff(thr) < 0)
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))  # trapezoids handle ties as ½
    assert area == pytest.approx(M.auc(y, s), abs=1e-12)


def test_roc_points_by_hand() -> None:
    fpr, tpr, thr = M.roc_curve([1, 0, 1, 0], [0.8, 0.6, 0.6, 0.1])
    assert thr.tolist() == [math.inf, 0.8, 0.6, 0.1]
    assert tpr.tolist() == [0.0, 0.5, 1.0, 1.0]
    assert fpr.tolist() == [0.0, 0.0, 0.5, 1.0]


def test_calibration_and_ece_by_hand() -> None:
    y = np.array([0, 1, 1, 1, 0, 1])
    p = np.array([0.05, 0.15, 0.8, 0.85, 0.95, 1.0])
    cal = M.calibration_curve(y, p, 10)
    assert cal.counts.tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 2, 2]  # 1.0 falls in the last bin
    assert cal.mean_predicted[8] == pytest.approx(0.825)
    assert cal.fraction_positive[8] == pytest.approx(1.0)
    assert cal.fraction_positive[9] == pytest.approx(0.5)
    assert math.isnan(cal.mean_predicted[4])
    # |0 - .05| + |1 - .15| + 2·|1 - .825| + 2·|.5 - .975|, over 6
    expected = (0.05 + 0.85 + 2 * 0.175 + 2 * 0.475) / 6
    assert cal.ece == pytest.approx(expected)
    assert M.expected_calibration_error(y, p) == pytest.approx(expected)
    assert M.expected_calibration_error([0, 1], [0.0, 1.0]) == 0.0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        M.calibration_curve([0, 1], [0.2, 1.5])


def test_dice_by_hand() -> None:
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[0, :3] = True  # 3 pixels
    b[0, 1:] = True  # 3 pixels, 2 shared
    assert M.dice(a, b) == pytest.approx(2 * 2 / 6)
    assert M.dice(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0
    assert M.dice(a, np.zeros((4, 4))) == 0.0
    assert M.mean_dice(np.stack([a, a]), np.stack([b, a])) == pytest.approx((4 / 6 + 1) / 2)


def test_pointing_game_by_hand() -> None:
    masks = np.zeros((4, 8, 8), np.uint8)
    masks[:, 2:4, 2:4] = 1
    maps = np.zeros((4, 8, 8), np.float32)
    maps[0, 3, 3] = 1.0  # peak inside → hit
    maps[1, 6, 6] = 1.0  # peak outside → miss
    maps[1, 2, 2] = 0.9
    # maps[2] all zero: no evidence → miss
    maps[3, 2, 3] = 0.5  # peak inside
    assert M.pointing_hits(maps, masks).tolist() == [True, False, False, True]
    assert M.pointing_game(maps, masks) == pytest.approx(0.5)
    empty = masks.copy()
    empty[3] = 0  # a slice without a lesion is left out
    assert M.pointing_game(maps, empty) == pytest.approx(1 / 3)
    assert math.isnan(M.pointing_game(maps, np.zeros_like(masks)))


def test_undefined_metrics_are_nan_and_json_safe() -> None:
    m = M.classification_metrics([0, 0], [0.1, 0.2])
    assert math.isnan(m["auc"]) and math.isnan(m["sensitivity"]) and m["specificity"] == 1.0
    safe = M.finite_or_none({"a": math.nan, "b": [1.0, math.inf], "c": np.float32(0.5), "d": np.arange(2)})
    assert safe == {"a": None, "b": [1.0, None], "c": 0.5, "d": [0, 1]}


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="0 and 1"):
        M.auc([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="NaN"):
        M.accuracy([0, 1], [0.1, math.nan])
    with pytest.raises(ValueError, match="y_score has 3"):
        M.f1([0, 1], [0.1, 0.2, 0.3])


def test_f1_optimal_threshold() -> None:
    from inference.training.metrics import classification_metrics, f1_optimal_threshold

    y = [0, 0, 1, 0, 1, 1, 1]
    s = [0.1, 0.3, 0.35, 0.4, 0.7, 0.8, 0.9]
    t = f1_optimal_threshold(y, s)
    assert t == 0.35  # all four positives, one false positive: F1 8/9
    best = classification_metrics(y, s, t)["f1"]
    assert all(classification_metrics(y, s, other)["f1"] <= best for other in [*s, 0.0, 1.0])
    assert f1_optimal_threshold([1, 1, 0], [0.6, 0.6, 0.6]) == 0.6  # ties take every equal score
    assert f1_optimal_threshold([0, 0], [0.2, 0.9]) == 0.5
