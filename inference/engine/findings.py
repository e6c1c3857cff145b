"""Connected components of a label map as findings: centroid (mm), volume (mL), peak probability."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from inference.engine.result import Finding
from inference.volume import Volume


def find_components(
    volume: Volume,
    label_map: npt.NDArray[np.integer[Any]],
    probability: npt.NDArray[np.floating[Any]] | None,
    names: dict[int, str],
    min_voxels: int = 1,
) -> list[Finding]:
    """One finding per 26-connected component of each label, largest first."""
    from scipy import ndimage

    voxel_ml = float(np.prod(volume.spacing)) / 1000.0
    out: list[Finding] = []
    for label in sorted(int(v) for v in np.unique(label_map) if v != 0):
        components, n = ndimage.label(label_map == label, structure=np.ones((3, 3, 3), dtype=bool))
        if n == 0:
            continue
        flat = components.ravel()
        counts = np.bincount(flat, minlength=n + 1)[1:]
        kk, jj, ii = np.nonzero(components)
        member = components[kk, jj, ii]
        sums = [np.bincount(member, weights=axis, minlength=n + 1)[1:] for axis in (kk, jj, ii)]
        centres = list(zip(*(s / np.maximum(counts, 1) for s in sums), strict=True))
        if probability is not None:
            peaks = np.full(n + 1, -np.inf)
            np.maximum.at(peaks, member, probability[kk, jj, ii])
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
