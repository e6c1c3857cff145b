"""The training inputs' intensity statistics a card stores as ``[domain.intensity]``.

``radlens train`` takes them from its dataset's training split (one set of quantiles per source
volume, from the centre channel of its slices: already windowed and scaled as the model sees them);
:func:`statistics_from_volumes` takes them from whole volumes through the card's own normalisation
(how the shipped cards got theirs: ``scripts/domain_statistics.py``).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from inference.engine.input_statistics import model_input_quantiles, scaled_quantiles, training_statistics
from inference.models.card import InputSpec
from inference.models.domain import IntensityStats
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
