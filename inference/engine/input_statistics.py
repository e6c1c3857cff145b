"""How far an input lies from a model's training inputs: an out-of-distribution (OOD) score.

The statistic is the distribution of the *model's input* intensities inside what was imaged
(values above :data:`BACKGROUND`): the volume normalised as the card says (window, percentiles…),
so the same numbers come out of `radlens train` (its dataset's slices are already windowed) and
out of the engine, whatever the scanner's units. Its quantiles at
:data:`~inference.models.domain.QUANTILE_LEVELS` are compared with the training inputs' mean
quantiles, each difference in units of the training inputs' spread at that level (at least
:data:`MIN_SPREAD`), and averaged::

    score = mean_l |q_l(input) - mean_l(train)| / max(sd_l(train), MIN_SPREAD)

0 is the average training input; the training inputs themselves score about 0.5–1.5. The card's
``threshold`` (default ``max(3, 1.5 × the largest training input's score)``) is where the warning
starts: an input above it is further from the training data than any training input was, by half
again. It says nothing about whether the model's answer is right; it says the model has not seen
inputs like this one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.models.card import InputSpec
from inference.models.domain import QUANTILE_LEVELS, IntensityStats

#: Smallest spread per quantile (model-input units, where [0, 1] is the normalised range): a level
#: that was the same in every training input (air clipped to 0) does not make every other value infinite.
MIN_SPREAD = 0.02
#: Voxels sampled per volume: the quantiles of a million voxels are as good as of all of them.
SAMPLE_VOXELS = 1_000_000
#: Model-input values at or below this are background (air, the dark outside of an MR head): left
#: out, so the statistic describes what was imaged and not how large the field of view was.
BACKGROUND = 0.02

OOD_WARNING = "this scan is unlike the data the model was trained on: its results may be unreliable"


def _sample(voxels: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    flat = np.asarray(voxels).reshape(-1)
    step = max(1, flat.size // SAMPLE_VOXELS)
    return np.asarray(flat[::step], dtype=np.float32)


def model_input_quantiles(voxels: npt.NDArray[Any], spec: InputSpec) -> npt.NDArray[np.float64]:
    """The quantiles of ``voxels`` after the card's normalisation (on a sample of the voxels)."""
    from inference.models.intensity import intensity_for

    sample = _sample(voxels)
    values = intensity_for(sample, spec)(sample)
    return _foreground_quantiles(values.astype(np.float64))


def _foreground_quantiles(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    inside = values[values > BACKGROUND]
    return np.quantile(inside if inside.size >= 0.01 * values.size and inside.size else values, QUANTILE_LEVELS)


def scaled_quantiles(images: npt.NDArray[Any], full_scale: float = 255.0) -> npt.NDArray[np.float64]:
    """Quantiles of already-normalised images stored as ``0..full_scale`` (a slice dataset's uint8)."""
    return _foreground_quantiles(_sample(images).astype(np.float64) / full_scale)


def ood_score(quantiles: npt.NDArray[np.float64], stats: IntensityStats) -> float:
    """Mean distance of ``quantiles`` from the training mean, in training spreads (see the module)."""
    mean = np.asarray(stats.quantiles, dtype=np.float64)
    spread = np.maximum(np.asarray(stats.spread, dtype=np.float64), MIN_SPREAD)
    return float(np.mean(np.abs(np.asarray(quantiles, dtype=np.float64) - mean) / spread))


def training_statistics(per_input: Iterable[npt.NDArray[np.float64]], source: str) -> IntensityStats:
    """The card's ``[domain.intensity]`` from the quantiles of each training input."""
    rows = np.asarray(list(per_input), dtype=np.float64)
    if rows.ndim != 2 or rows.shape[0] == 0:
        raise ValueError("no training input to take statistics from")
    mean = rows.mean(axis=0)
    spread = rows.std(axis=0, ddof=1) if rows.shape[0] > 1 else np.zeros_like(mean)
    stats = IntensityStats(tuple(float(v) for v in mean), tuple(float(v) for v in spread), 3.0, len(rows), source)
    largest = max(ood_score(r, stats) for r in rows)
    return IntensityStats(stats.quantiles, stats.spread, max(3.0, 1.5 * largest), len(rows), source)
