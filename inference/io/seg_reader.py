"""Reading a DICOM SEG back onto the series it segments.

The SEG's frames are matched to the volume's slices by the SOP instance UIDs they reference;
a SEG of another frame of reference, or one that references none of the volume's slices, is
refused with the reason.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from inference.errors import LoadError
from inference.volume import Volume


class SegmentationMismatchError(LoadError):
    """The segmentation does not belong to the open series."""


@dataclass(frozen=True)
class SegmentationLabels:
    labels: npt.NDArray[np.uint8]  # [k, j, i] on the volume's grid; segment number per voxel
    names: dict[int, str]
    colours: dict[int, tuple[int, int, int]]


def matching_slices(volume: Volume, path: Path, for_uid: str, referenced: set[str]) -> tuple[list[str], list[str]]:
    """``(the volume's SOP instance UID per slice k, those of them in referenced, in k order)`` for a
    derived object (SEG, parametric map) at ``path`` in frame of reference ``for_uid`` that references
    the instances ``referenced``; :class:`SegmentationMismatchError` when it belongs elsewhere."""
    mine = volume.metadata.frame_of_reference_uid
    if mine and for_uid and for_uid != mine:
        raise SegmentationMismatchError(path, "it is in another frame of reference than the open series")
    uids = [str(u) for u in volume.metadata.extra.get("sop_instance_uids", [])]
    if len(uids) != volume.shape[0] or len(set(uids)) != len(uids):
        raise SegmentationMismatchError(path, "the open volume has no single-frame DICOM instances to match it to")
    present = [u for u in uids if u in referenced]
    if not present:
        raise SegmentationMismatchError(path, "it references none of the open series' slices")
    return uids, present


def read_dicom_seg_onto(volume: Volume, path: str | Path) -> SegmentationLabels:
    """Labels ``[k, j, i]`` for ``volume`` from a DICOM SEG that references its slices."""
    import highdicom as hd

    p = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seg = hd.seg.segread(str(p))
    except Exception as exc:
        raise LoadError(p, f"not a readable DICOM SEG ({type(exc).__name__}: {str(exc)[:200]})") from exc
    referenced = {str(u) for _study, _series, u in seg.get_source_image_uids()}
    uids, present = matching_slices(volume, p, str(getattr(seg, "FrameOfReferenceUID", "") or ""), referenced)
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=present, combine_segments=True, skip_overlap_checks=True
    )
    if pixels.shape[1:] != volume.shape[1:]:
        raise SegmentationMismatchError(
            p, f"frames of {pixels.shape[1:]} pixels do not match the series' {volume.shape[1:]}"
        )
    labels = np.zeros(volume.shape, dtype=np.uint8)
    index = {u: k for k, u in enumerate(uids)}
    for n, uid in enumerate(present):
        labels[index[uid]] = pixels[n].astype(np.uint8)
    names: dict[int, str] = {}
    colours: dict[int, tuple[int, int, int]] = {}
    palette = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48))
    for number in seg.get_segment_numbers():
        desc = seg.get_segment_description(number)
        names[int(number)] = str(desc.segment_label)
        colours[int(number)] = palette[(int(number) - 1) % len(palette)]
    return SegmentationLabels(labels, names, colours)
