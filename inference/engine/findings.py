"""Connected components of a label map as findings: centroid (mm), volume (mL), peak probability."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from inference.engine.result import Finding
from inference.volume import Volume


def occupied_box(label_map: npt.NDArray[Any]) -> tuple[slice, slice, slice] | None:
    """The smallest ``[k, j, i]`` box holding every non-zero voxel, or None when there is none.

    One pass over the map per axis, on bytes: findings are usually small, so everything after
    this works on the box instead of the whole volume."""
    any_k = label_map.any(axis=(1, 2))
    ks = np.flatnonzero(any_k)
    if ks.size == 0:
        return None
    slab = label_map[ks[0] : ks[-1] + 1]
    js = np.flatnonzero(slab.any(axis=(0, 2)))
    is_ = np.flatnonzero(slab.any(axis=(0, 1)))
    return slice(ks[0], ks[-1] + 1), slice(js[0], js[-1] + 1), slice(is_[0], is_[-1] + 1)


def label_values(label_map: npt.NDArray[Any]) -> list[int]:
    """The non-zero values in ``label_map``, ascending (only its :func:`occupied_box` is searched)."""
    box = occupied_box(label_map)
    if box is None:
        return []
    return [int(v) for v in np.unique(label_map[box]) if v != 0]


def find_components(
    volume: Volume,
    label_map: npt.NDArray[np.integer[Any]],
    probability: npt.NDArray[np.floating[Any]] | None,
    names: dict[int, str],
    min_voxels: int = 1,
) -> list[Finding]:
    """One finding per 26-connected component of each label, largest first."""
    from scipy import ndimage

    box = occupied_box(label_map)
    if box is None:
        return []
    origin = np.array([box[0].start, box[1].start, box[2].start], dtype=np.float64)
    sub = label_map[box]
    sub_probability = probability[box] if probability is not None else None
    voxel_ml = float(np.prod(volume.spacing)) / 1000.0
    out: list[Finding] = []
    for label in label_values(sub):
        components, n = ndimage.label(sub == label, structure=np.ones((3, 3, 3), dtype=bool))
        if n == 0:
            continue
        kk, jj, ii = np.nonzero(components)
        member = components[kk, jj, ii]
        counts = np.bincount(member, minlength=n + 1)[1:]
        sums = [np.bincount(member, weights=axis, minlength=n + 1)[1:] for axis in (kk, jj, ii)]
        centres = np.stack(sums, axis=1) / np.maximum(counts, 1)[:, None] + origin
        if sub_probability is not None:
            peaks = np.full(n + 1, -np.inf)
            np.maximum.at(peaks, member, sub_probability[kk, jj, ii])
            peaks = peaks[1:]
        else:
            peaks = np.ones(n, dtype=np.float32)
        for count, (k, j, i), peak in zip(counts, centres, peaks, strict=True):
            if count < min_voxels:
                continue
            lps = volume.index_to_lps([i, j, k])
            out.append(
                Finding(
                    label=label,
                    name=names.get(label, f"label {label}"),
                    centroid_ijk=(float(i), float(j), float(k)),
                    centroid_lps=(float(lps[0]), float(lps[1]), float(lps[2])),
                    volume_ml=float(count) * voxel_ml,
                    voxel_count=int(count),
                    max_probability=float(peak),
                )
            )
    out.sort(key=lambda f: -f.voxel_count)
    return out
