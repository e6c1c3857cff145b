"""A volume turned into a slice dataset's samples: axial slices along the patient axes closest to
its own (no resampling), windowed as the card will be (:class:`~inference.models.intensity.ScaleIntensity`)
at the dataset's 0–255 levels, resized to ``size`` (bilinear, ``align_corners=False``; masks
nearest), and ``context_slices`` neighbours on each side as extra channels (2.5-D; edge slices
repeat).

Importing this module does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.models.intensity import DATASET_LEVELS, ScaleIntensity
from inference.training.quality import is_near_empty
from inference.volume import Volume

__all__ = ["SlicedVolume", "axial_view", "slice_volume"]


def _resize(
    stack: npt.NDArray[np.float32], size: tuple[int, int], nearest: bool, area: bool = False
) -> npt.NDArray[np.float32]:
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(stack))
    if area:
        # Coverage of each output pixel (adaptive average pooling; bilinear when upsampling).
        h, w = stack.shape[2:]
        if size[0] <= h and size[1] <= w:
            out = F.adaptive_avg_pool2d(t, size)
        else:
            out = F.interpolate(t, size=size, mode="bilinear", align_corners=False)
    elif nearest:
        out = F.interpolate(t, size=size, mode="nearest")
    else:
        out = F.interpolate(t, size=size, mode="bilinear", align_corners=False)
    return np.asarray(out.numpy(), dtype=np.float32)


def _choose(rng: np.random.Generator, candidates: list[int], cap: int | None) -> list[int]:
    if cap is None or len(candidates) <= cap:
        return candidates
    picked = rng.choice(len(candidates), size=cap, replace=False)
    return sorted(candidates[int(p)] for p in picked)


@dataclass
class SlicedVolume:
    """One volume's samples: images ``(n, 2c + 1, h, w)`` uint8, labels, masks, source slice numbers."""

    images: npt.NDArray[np.uint8]
    labels: npt.NDArray[np.uint8]
    masks: npt.NDArray[np.uint8]
    slice_index: npt.NDArray[np.int32]
    near_empty: int


def slice_volume(
    voxels: npt.NDArray[Any],
    mask: npt.NDArray[np.uint8] | None,
    label: int | None,
    *,
    size: tuple[int, int],
    window: tuple[float, float],
    context_slices: int,
    balanced: bool,
    positives_cap: int | None,
    negatives_cap: int | None,
    rng: np.random.Generator,
    slice_numbers: npt.NDArray[np.int32] | None = None,
    whole: bool = False,
) -> SlicedVolume:
    """Slices ``[z]`` of axial ``voxels[z, y, x]`` as windowed, resized 2.5-D samples.

    With a ``mask``: positives are slices the mask crosses; negatives are slices more than
    ``context_slices + 1`` slices from any of them (``balanced``: as many as positives).
    Without: every slice carries ``label``. Near-empty slices are skipped and counted.
    ``whole``: every slice, in order (the stack models learn from runs of them): positives where
    the mask crosses, every other slice negative, near-empty ones counted but kept.
    """
    nz = voxels.shape[0]
    # The card's window at the dataset's levels: what the engine computes, times 255 (stored as uint8).
    windowed = ScaleIntensity.window(*window, top=DATASET_LEVELS)(voxels)
    near = [is_near_empty(np.rint(windowed[z]).astype(np.uint8)) for z in range(nz)]
    keep = [z for z in range(nz) if not near[z]]
    n_near = nz - len(keep)
    if whole:
        label_of = (
            np.asarray(mask.reshape(nz, -1).any(axis=1), dtype=bool) if mask is not None else np.full(nz, bool(label))
        )
        positives = [z for z in range(nz) if label_of[z]]
        negatives = [z for z in range(nz) if not label_of[z]]
    elif mask is not None:
        has: npt.NDArray[np.bool_] = np.asarray(mask.reshape(nz, -1).any(axis=1), dtype=bool)
        pos_z = np.flatnonzero(has)
        margin = context_slices + 1
        far = np.ones(nz, dtype=bool)
        for z in pos_z:
            far[max(0, z - margin) : z + margin + 1] = False
        positives = [z for z in keep if has[z]]
        negatives = [z for z in keep if far[z]]
        negatives_cap2 = negatives_cap
        if balanced:
            negatives_cap2 = len(positives) if negatives_cap is None else min(negatives_cap, len(positives))
        positives = _choose(rng, positives, positives_cap)
        negatives = _choose(rng, negatives, negatives_cap2)
    else:
        assert label is not None
        all_z = _choose(rng, keep, positives_cap if label == 1 else negatives_cap)
        positives, negatives = (all_z, []) if label == 1 else ([], all_z)
    chosen = sorted(positives + negatives)
    pos_set = set(positives)
    c = context_slices
    if not chosen:
        h, w = size
        return SlicedVolume(
            np.zeros((0, 2 * c + 1, h, w), np.uint8),
            np.zeros(0, np.uint8),
            np.zeros((0, h, w), np.uint8),
            np.zeros(0, np.int32),
            n_near,
        )
    idx = np.clip(np.asarray(chosen)[:, None] + np.arange(-c, c + 1)[None, :], 0, nz - 1)
    stack = windowed[idx]  # (n, C, y, x)
    images = np.clip(np.rint(_resize(stack, size, nearest=False)), 0, DATASET_LEVELS).astype(np.uint8)
    if mask is not None:
        m = (mask[np.asarray(chosen)] > 0).astype(np.float32)[:, None]
        masks = (_resize(m, size, nearest=True)[:, 0] > 0.5).astype(np.uint8)
        # A lesion smaller than an output pixel can fall between nearest samples: keep every
        # pixel it covers at all, so that no positive sample has an empty mask.
        lost = [n for n, z in enumerate(chosen) if z in pos_set and not masks[n].any()]
        if lost:
            covered = _resize(m[lost], size, nearest=False, area=True)[:, 0] > 0
            masks[lost] = covered.astype(np.uint8)
    else:
        masks = np.zeros((len(chosen), *size), dtype=np.uint8)
    labels = np.asarray([1 if z in pos_set else 0 for z in chosen], dtype=np.uint8)
    numbers = np.asarray(chosen, dtype=np.int32) if slice_numbers is None else slice_numbers[np.asarray(chosen)]
    return SlicedVolume(images, labels, masks, numbers.astype(np.int32), n_near)


def axial_view(volume: Volume) -> tuple[Any, npt.NDArray[np.int32]]:
    """The axis map to axial ``[z, y, x]`` and, per display slice z, its source k (or z when not axial)."""
    from inference.io.orientation import closest_lps_axes

    amap = closest_lps_axes(volume.direction)
    nz = amap.display_shape(volume.size_ijk)[2]
    z = np.arange(nz, dtype=np.int32)
    if amap.source_axis[2] == 2 and amap.flip[2]:
        z = (nz - 1 - z).astype(np.int32)
    return amap, z
