"""Simulated lesions of several kinds in one volume, each kind in the region where it belongs.

Absolute kinds (``solid``, ``part-solid``, ``mass``: lung or soft-tissue HU) go to the region the
dataset asks for (the lungs when there are any, by default); relative kinds (``hyperdense``,
``hypodense``: contrast against the local tissue) always go to soft tissue. The number of lesions
per kind is drawn from the same generator, so a seed gives the same mixture.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.volume import Volume

Region = Callable[[Volume], npt.NDArray[np.bool_]]


def parse_kinds(kind: str | Sequence[str]) -> list[str]:
    """``"solid,hyperdense"`` or a list → the list of kinds, checked; ValueError names a bad one."""
    from inference.training.lesions import LESION_KINDS

    kinds = [k.strip() for k in kind.split(",")] if isinstance(kind, str) else [str(k).strip() for k in kind]
    kinds = [k for k in kinds if k]
    if not kinds:
        raise ValueError("no lesion kind given")
    for k in kinds:
        if k not in LESION_KINDS:
            raise ValueError(f"unknown lesion kind {k!r}; choose from {', '.join(LESION_KINDS)}")
    return list(dict.fromkeys(kinds))


def _region_for(kind: str, volume: Volume, setting: str, own: Region | None) -> tuple[str, npt.NDArray[np.bool_]]:
    from inference.training.lesions import RELATIVE_KINDS, default_region, lung_region, soft_tissue_region

    if kind in RELATIVE_KINDS or setting == "soft-tissue":
        return "soft-tissue", soft_tissue_region(volume)
    if own is not None:
        return "lungs", own(volume)
    if setting == "lungs":
        return "lungs", lung_region(volume)
    return default_region(volume)


def insert_mixed(
    volume: Volume,
    rng: np.random.Generator,
    kinds: Sequence[str],
    per_volume: int,
    *,
    setting: str = "auto",
    own_region: Region | None = None,
    keep_out: npt.NDArray[np.uint8] | None = None,
) -> tuple[Volume, npt.NDArray[np.uint8], list[dict[str, Any]], str]:
    """Insert ``per_volume`` lesions, their kinds drawn uniformly from ``kinds``.

    With ``setting="auto"``, a scan without lungs gets only the relative kinds of ``kinds`` when
    it names both sorts (a solid nodule's HU is that of brain: it would be invisible there).

    ``keep_out``: voxels (non-zero) no lesion may touch, e.g. a phantom's own nodules. Returns the
    volume, the lesion mask (lesions numbered 1, 2, … across kinds), their specs and the regions
    used (comma-separated names). Raises :class:`LesionPlacementError` when one kind finds no room.
    """
    from scipy import ndimage

    from inference.training.lesions import RELATIVE_KINDS, default_region, insert_lesions

    kinds = list(kinds)
    relative = [k for k in kinds if k in RELATIVE_KINDS]
    mixed = setting == "auto" and own_region is None and relative and len(relative) < len(kinds)
    # Lung kinds need lungs: in a scan without them (a head), draw only the soft-tissue kinds.
    if mixed and default_region(volume)[0] != "lungs":
        kinds = relative
    counts = np.bincount(rng.integers(len(kinds), size=per_volume), minlength=len(kinds))
    mask = np.zeros(volume.shape, dtype=np.uint8)
    specs: list[dict[str, Any]] = []
    regions: list[str] = []
    for kind, count in zip(kinds, counts, strict=True):
        if count == 0:
            continue
        name, region = _region_for(kind, volume, setting, own_region)
        taken = mask > 0 if keep_out is None else (mask > 0) | (keep_out > 0)
        if taken.any():
            region = region & ~ndimage.binary_dilation(taken, iterations=3)
        volume, inserted, kind_specs = insert_lesions(volume, rng, int(count), kind, region)
        offset = len(specs)
        mask = np.where(inserted > 0, inserted + offset, mask).astype(np.uint8)
        for s in kind_specs:
            d = s.to_dict()
            d["label"] = int(d["label"]) + offset
            specs.append(d)
        if name not in regions:
            regions.append(name)
    meta = replace(volume.metadata, extra={**volume.metadata.extra, "simulated_lesions": specs})
    return replace(volume, metadata=meta), mask, specs, ",".join(regions)
