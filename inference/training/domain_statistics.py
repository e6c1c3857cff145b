"""The training inputs' intensity statistics a card stores as ``[domain.intensity]``.

``radlens train`` takes them from its dataset's training split (one set of quantiles per source
volume, from the centre channel of its slices: already windowed and scaled as the model sees them);
:func:`statistics_from_volumes` takes them from whole volumes through the card's own normalisation
(how the shipped cards got theirs: ``scripts/domain_statistics.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.engine.input_statistics import model_input_quantiles, scaled_quantiles, training_statistics
from inference.models.card import InputSpec
from inference.models.domain import FeatureStats, IntensityStats
from inference.training.dataset_format import SliceDataset
from inference.volume import Volume


def statistics_from_volumes(volumes: Iterable[Volume], spec: InputSpec, source: str) -> IntensityStats:
    return training_statistics((model_input_quantiles(v.voxels, spec) for v in volumes), source)


def statistics_from_dataset(dataset: SliceDataset, split: str = "train") -> IntensityStats:
    """One set of quantiles per source of ``split`` (its slices' centre channel, 0–255)."""
    idx = dataset.split_indices(split)
    if not idx.size:
        raise ValueError(f"the dataset has no {split} slices")
    centre = dataset.images.shape[1] // 2
    per_source: list[npt.NDArray[np.float64]] = []
    sources = dataset.sources[idx]
    for s in np.unique(sources):
        members = idx[sources == s]
        per_source.append(scaled_quantiles(np.asarray(dataset.images[members, centre])))
    name = dataset.manifest.get("name") or dataset.root.name
    return training_statistics(per_source, f"{split} split of dataset {name} ({len(per_source)} sources)")


def features_from_dataset(
    dataset: SliceDataset, network: Any, device: str = "cpu", split: str = "train"
) -> FeatureStats:
    """The pooled features of ``network``'s ``gradcam_layer`` per source of ``split`` (up to
    :data:`~inference.engine.feature_statistics.SAMPLE_SLICES` evenly spaced slices each), as the
    engine takes them (:func:`~inference.engine.feature_statistics.pooled_features`)."""
    import torch

    from inference.engine.feature_statistics import SAMPLE_SLICES, training_features

    idx = dataset.split_indices(split)
    sources = dataset.sources[idx]
    per_source = []
    was_training = network.training
    network.eval()
    found: list[torch.Tensor] = []
    hook = network.gradcam_layer.register_forward_hook(lambda _m, _i, o: found.append(o.float().mean(dim=(2, 3))))
    try:
        for s in np.unique(sources):
            members = np.sort(idx[sources == s])
            pick = members[
                np.unique(np.linspace(0, len(members) - 1, min(len(members), SAMPLE_SLICES)).round().astype(int))
            ]
            x = torch.from_numpy(np.asarray(dataset.images[pick], dtype=np.float32) / 255.0).to(device)
            found.clear()
            with torch.inference_mode():
                network(x)
            per_source.append(torch.cat(found).mean(dim=0).cpu().numpy().astype(np.float64))
    finally:
        hook.remove()
        network.train(was_training)
    name = dataset.manifest.get("name") or dataset.root.name
    return training_features(per_source, f"{split} split of dataset {name} ({len(per_source)} sources)")
