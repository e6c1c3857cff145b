"""Train/validation/test splits of a dataset's sources: by source, stratified by label, drawn from a seed."""

from __future__ import annotations

import numpy as np

from inference.training.dataset_format import SPLITS, DatasetError

__all__ = ["split_sources"]


def split_sources(groups: dict[str, int], fractions: tuple[float, float, float], seed: int) -> dict[str, str]:
    """Assign each group (name → stratum label) to train/val/test, stratified, by largest remainder."""
    total = sum(fractions)
    if total <= 0 or any(f < 0 for f in fractions):
        raise DatasetError(f"split fractions must be non-negative and not all zero, got {fractions}")
    fr = [f / total for f in fractions]
    rng = np.random.default_rng(seed)
    out: dict[str, str] = {}
    for stratum in sorted(set(groups.values())):
        names = sorted(n for n, s in groups.items() if s == stratum)
        order = [names[int(i)] for i in rng.permutation(len(names))]
        n = len(order)
        exact = [f * n for f in fr]
        counts = [int(np.floor(e)) for e in exact]
        for i in sorted(range(3), key=lambda i: -(exact[i] - counts[i]))[: n - sum(counts)]:
            counts[i] += 1
        if counts[0] == 0 and n > 0 and fr[0] > 0:
            donor = max(range(1, 3), key=lambda i: counts[i])
            counts[donor] -= 1
            counts[0] += 1
        start = 0
        for split, count in zip(SPLITS, counts, strict=True):
            for name in order[start : start + count]:
                out[name] = split
            start += count
    return out
