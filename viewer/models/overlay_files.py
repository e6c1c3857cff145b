"""An overlay file read into a layer for the open volume: labels or a map, on its grid or refused.

Pure reading, no Qt: the controller runs :func:`read_overlay` on a worker thread and adds the
layer on the GUI thread.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inference.volume import Volume
from viewer.models.layers import HeatmapLayer, LabelLayer, voxels_on_grid


def read_overlay(volume: Volume, path: str | Path) -> LabelLayer | HeatmapLayer:
    """``path`` as a layer over ``volume``. Labels: a DICOM SEG, or a NIfTI/NRRD/MHA of whole
    numbers. A map, drawn as a heatmap: a DICOM Parametric Map, or an image file with fractional
    values (RadLens's ``heatmap-pm.dcm`` and ``heatmap.nii.gz``). Raises (with the reason) for a
    file on another grid or series, or one that cannot be read."""
    from inference.io.image_file import is_image_file, read_image_file
    from inference.io.map_reader import is_parametric_map, read_parametric_map_onto
    from inference.io.seg_reader import read_dicom_seg_onto

    name = Path(path).name
    if is_image_file(path):
        voxels = voxels_on_grid(read_image_file(path), volume)
        if fractional(voxels):
            return HeatmapLayer(name=name, values=voxels, levels=map_levels(voxels))
        return LabelLayer(name=name, labels=voxels)
    if is_parametric_map(path):  # matched to the open series by the instances it references
        pm = read_parametric_map_onto(volume, path)
        values = np.nan_to_num(pm.values, nan=0.0)
        return HeatmapLayer(name=f"{name} ({pm.label})", values=values, levels=map_levels(values), units=pm.units)
    seg = read_dicom_seg_onto(volume, path)  # a DICOM SEG, matched the same way
    return LabelLayer(name=name, labels=seg.labels, names=dict(seg.names), colours=dict(seg.colours))


def fractional(voxels: np.ndarray) -> bool:
    """Whether an overlay file holds a map rather than labels: floating-point values, some not whole."""
    if not np.issubdtype(voxels.dtype, np.floating):
        return False
    return bool(np.any(np.isfinite(voxels) & (voxels != np.round(voxels))))


def map_levels(values: np.ndarray) -> tuple[float, float]:
    """[0, 1] for a map within it (probabilities, explanations), else its own finite range."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return (0.0, 1.0)
    lo, hi = float(finite.min()), float(finite.max())
    if lo >= 0.0 and hi <= 1.0:
        return (0.0, 1.0)
    return (lo, hi if hi > lo else lo + 1.0)
