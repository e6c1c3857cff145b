"""The network's own view of an input: its pooled features, compared with the training inputs'.

For the slice classifiers RadLens builds (``cnn``, ``cnn-attention``, ``keras-baseline``): the
feature map of the layer Grad-CAM explains (``gradcam_layer``, the deepest convolutional block),
averaged over its positions and over :data:`SAMPLE_SLICES` evenly spaced slices of the volume.
The card's ``[domain.features]`` holds the training inputs' mean and spread per channel; the score
is the mean distance in spreads, as for the intensity statistics
(:mod:`inference.engine.input_statistics`), each spread at least a quarter of the median spread.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.models.card import InputSpec
from inference.models.domain import FeatureStats
from inference.volume import Volume

SAMPLE_SLICES = 16


def pooled_features(network: Any, volume: Volume, spec: InputSpec, device: str = "cpu") -> npt.NDArray[np.float64]:
    """The mean pooled feature vector of ``network``'s ``gradcam_layer`` over sampled slices of ``volume``."""
    import torch

    from inference.engine.planes import SlicePlanes
    from inference.models.intensity import intensity_for

    n, rows, cols = volume.shape
    ks = np.unique(np.linspace(0, n - 1, min(n, SAMPLE_SLICES)).round().astype(int))
    size = spec.size or (rows, cols)
    planes = SlicePlanes(volume.voxels, intensity_for(volume.voxels, spec), (size[0], size[1]), spec.context_slices)
    x = torch.cat([planes.batch(int(k), int(k) + 1).clone() for k in ks]).contiguous().to(device)
    found: list[torch.Tensor] = []

    def keep(_module: Any, _inputs: Any, output: torch.Tensor) -> None:
        found.append(output.float().mean(dim=(2, 3)))

    hook = network.gradcam_layer.register_forward_hook(keep)
    try:
        with torch.inference_mode():
            network(x)
    finally:
        hook.remove()
    return np.asarray(torch.cat(found).mean(dim=0).cpu().numpy(), dtype=np.float64)


def feature_score(features: npt.NDArray[np.float64], stats: FeatureStats) -> float:
    mean = np.asarray(stats.mean, dtype=np.float64)
    spread = np.asarray(stats.spread, dtype=np.float64)
    floor = max(1e-6, 0.25 * float(np.median(spread)))
    return float(np.mean(np.abs(features - mean) / np.maximum(spread, floor)))


def training_features(per_input: Iterable[npt.NDArray[np.float64]], source: str) -> FeatureStats:
    rows = np.asarray(list(per_input), dtype=np.float64)
    if rows.ndim != 2 or rows.shape[0] < 2:
        raise ValueError("feature statistics need at least two training inputs")
    mean = tuple(float(v) for v in rows.mean(axis=0))
    spread = tuple(float(v) for v in rows.std(axis=0, ddof=1))
    stats = FeatureStats(mean, spread, 3.0, len(rows), source)
    largest = max(feature_score(r, stats) for r in rows)
    return FeatureStats(stats.mean, stats.spread, max(3.0, 1.5 * largest), len(rows), source)
