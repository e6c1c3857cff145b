"""Reading a DICOM Parametric Map back onto the series it was computed on.

Frames are matched to the volume's slices by the SOP instance each one's Derivation Image
Sequence references, as a SEG's are (:func:`inference.io.seg_reader.matching_slices`); stored
values become real-world values through the map's Real World Value Mapping (slope and
intercept, per frame or shared). Slices the map has no frame for are NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.errors import LoadError
from inference.io.seg_reader import SegmentationMismatchError, matching_slices
from inference.volume import Volume

PARAMETRIC_MAP_STORAGE = "1.2.840.10008.5.1.4.1.1.30"


@dataclass(frozen=True)
class ParametricMapValues:
    values: npt.NDArray[np.float32]  # [k, j, i] on the volume's grid; NaN where the map has no frame
    label: str  # the mapping's LUT label ("attention", "probability"…)
    units: str  # the mapping's unit (code meaning), "" for none


def is_parametric_map(path: str | Path) -> bool:
    """Whether ``path`` is a DICOM file of the Parametric Map storage class (its header alone is read)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
    except (OSError, InvalidDicomError, ValueError):
        return False
    return str(ds.get("SOPClassUID", "")) == PARAMETRIC_MAP_STORAGE


def _mapping(item: Any) -> tuple[float, float, Any] | None:
    sequence = getattr(item, "RealWorldValueMappingSequence", None)
    if not sequence:
        return None
    first = sequence[0]
    if "RealWorldValueSlope" not in first:
        return None  # a LUT-based mapping: not what RadLens writes or reads
    return float(first.RealWorldValueSlope), float(first.get("RealWorldValueIntercept", 0.0)), first


def read_parametric_map_onto(volume: Volume, path: str | Path) -> ParametricMapValues:
    """Real-world values ``[k, j, i]`` for ``volume`` from a Parametric Map that references its slices."""
    import pydicom

    p = Path(path)
    try:
        pm = pydicom.dcmread(p)
        if str(pm.get("SOPClassUID", "")) != PARAMETRIC_MAP_STORAGE:
            raise ValueError("its SOP class is not Parametric Map Storage")
        frames = pm.PerFrameFunctionalGroupsSequence
        refs = [str(f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID) for f in frames]
        pixels = np.asarray(pm.pixel_array).reshape(len(frames), int(pm.Rows), int(pm.Columns))
    except Exception as exc:
        raise LoadError(p, f"not a readable DICOM parametric map ({type(exc).__name__}: {str(exc)[:200]})") from exc
    uids, _present = matching_slices(volume, p, str(pm.get("FrameOfReferenceUID", "") or ""), set(refs))
    if pixels.shape[1:] != volume.shape[1:]:
        raise SegmentationMismatchError(
            p, f"frames of {pixels.shape[1:]} pixels do not match the series' {volume.shape[1:]}"
        )
    shared = pm.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in pm else None
    shared_mapping = _mapping(shared) if shared is not None else None
    values = np.full(volume.shape, np.nan, dtype=np.float32)
    index = {u: k for k, u in enumerate(uids)}
    item = None
    for frame, uid, plane in zip(frames, refs, pixels, strict=True):
        found = _mapping(frame) or shared_mapping
        if found is None:
            raise LoadError(p, "a frame has no linear Real World Value Mapping (slope and intercept)")
        slope, intercept, item = found
        if uid in index:
            values[index[uid]] = plane * np.float32(slope) + np.float32(intercept)
    units = ""
    if item is not None and getattr(item, "MeasurementUnitsCodeSequence", None):
        unit = item.MeasurementUnitsCodeSequence[0]
        units = "" if str(unit.CodeValue) == "1" else str(unit.get("CodeMeaning", unit.CodeValue))
    label = str(item.get("LUTLabel", "")) if item is not None else ""
    return ParametricMapValues(values, label or "map", units)
