"""A label map as a DICOM Segmentation (SEG) that references the instances it was computed on.

highdicom builds the object from the source headers (no pixel data is read): the SEG carries the
source's patient, study and frame of reference, one frame per source slice that holds a label,
each at that slice's ImagePositionPatient and referencing its SOP instance. So RadLens (or any
PACS viewer) puts every mask voxel back on the voxel it came from.

Segment numbers are the label values when those run 1, 2, … N (the usual case, and what
:func:`inference.io.seg_reader.read_dicom_seg_onto` reads back voxel for voxel); other values
are renumbered 1…N in ascending order, as DICOM requires consecutive segment numbers.

Segmented property codes (SNOMED CT) are chosen from the label's name: abnormal structures
(nodule, lesion, tumour, haemorrhage, "finding") under "Morphologically abnormal structure",
named organs under "Anatomical structure", anything else as "Tissue"/"Tissue".
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom

from inference.batch.dicom_file import highdicom_building, producer_attributes, save_atomically
from inference.batch.errors import OutputNotSupported
from inference.batch.source_headers import SourceHeaders, in_frame_order
from inference.engine.findings import label_values
from inference.io.stacks import Stack
from inference.models.card import DEFAULT_LABEL_COLOUR, ModelCard
from inference.volume import Volume

OUTPUT = "DICOM SEG"

#: Series numbers of SEGs are the source's plus this, so a PACS lists them next to their source.
SERIES_NUMBER_OFFSET = 1000

# (words in the label's name, SCT category, SCT type), first match wins.
_PROPERTY_RULES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("nodule",), "MorphologicallyAbnormalStructure", "Nodule"),
    (("tumour", "tumor", "neoplasm", "metasta"), "MorphologicallyAbnormalStructure", "Neoplasm"),
    (("haemorrhage", "hemorrhage", "bleed"), "MorphologicallyAbnormalStructure", "Hemorrhage"),
    (("mass",), "MorphologicallyAbnormalStructure", "Mass"),
    (("lesion", "finding", "abnormal", "anomaly"), "MorphologicallyAbnormalStructure", "Lesion"),
    (("brain",), "AnatomicalStructure", "Brain"),
    (("lung",), "AnatomicalStructure", "Lung"),
    (("liver",), "AnatomicalStructure", "Liver"),
    (("kidney",), "AnatomicalStructure", "Kidney"),
    (("heart",), "AnatomicalStructure", "Heart"),
    (("bone",), "Tissue", "Bone"),
)


def segmented_property(name: str) -> tuple[Any, Any]:
    """SNOMED CT ``(category, type)`` codes for a label called ``name``."""
    from pydicom.sr.codedict import codes

    lowered = name.lower()
    for words, category, kind in _PROPERTY_RULES:
        if any(w in lowered for w in words):
            return getattr(codes.SCT, category), getattr(codes.SCT, kind)
    return codes.SCT.Tissue, codes.SCT.Tissue


def _segment_numbers(present: list[int], labels: dict[int, tuple[str, tuple[int, int, int]]]) -> dict[int, int]:
    """Label value → segment number for every named label and every value ``present`` in the map."""
    values = sorted(set(present) | {int(v) for v in labels if v != 0})
    if any(v < 0 or v > 255 for v in values):
        raise ValueError(f"label values must lie in 1..255, got {values[0]}..{values[-1]}")
    return {v: n for n, v in enumerate(values, start=1)}


def _segment_descriptions(
    numbers: dict[int, int], labels: dict[int, tuple[str, tuple[int, int, int]]], card: ModelCard
) -> list[Any]:
    """One highdicom SegmentDescription per segment: name, codes, colour and the model that made it."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    algorithm = hd.AlgorithmIdentificationSequence(
        name=card.name[:64], family=codes.cid7162.ArtificialIntelligence, version=card.version[:64], source="RadLens"
    )
    out = []
    for value, number in numbers.items():
        name, colour = labels.get(value, (f"label {value}", DEFAULT_LABEL_COLOUR))
        category, kind = segmented_property(name)
        out.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=name[:64],
                segmented_property_category=category,
                segmented_property_type=kind,
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=algorithm,
                display_color=hd.color.CIELabColor.from_rgb(*colour),
            )
        )
    return out


def write_dicom_seg(
    stack: Stack,
    volume: Volume,
    label_map: npt.NDArray[np.uint8],
    labels: dict[int, tuple[str, tuple[int, int, int]]],
    card: ModelCard,
    out_path: Path,
    *,
    dataset_transform: Callable[[pydicom.Dataset], pydicom.Dataset] | None = None,
    sources: SourceHeaders | None = None,
) -> Path:
    """Write ``label_map`` (``[k, j, i]`` on ``volume``, loaded from ``stack``) as a binary DICOM SEG.

    ``labels`` maps a label value to its name and display colour; one segment is written per
    named value (and per unnamed value found in the map), frames without any label are left out.
    ``dataset_transform`` is applied to every source header before the SEG is built, so a
    de-identifying transform leaves the SEG referencing the remapped UIDs and carrying no
    identity of the source. ``sources`` shares the headers (read and transformed once) with the
    other outputs of the stack; it replaces ``dataset_transform``. The file appears atomically
    at ``out_path``.

    Raises :class:`OutputNotSupported` for non-DICOM input or part of a multi-frame object,
    :class:`OutputWriteError` when the file cannot be written.
    """
    import highdicom as hd

    if label_map.shape != volume.shape or volume.shape[0] != stack.n_slices:
        raise ValueError(
            f"label map {label_map.shape}, volume {volume.shape} and stack of {stack.n_slices} slices disagree"
        )
    datasets, frame_of_k = (sources or SourceHeaders(stack, dataset_transform)).frames(OUTPUT)
    present = label_values(label_map)
    numbers = _segment_numbers(present, labels)
    if all(value == number for value, number in numbers.items()):
        pixels = label_map  # values 1…N already (the usual case): no renumbering pass
    else:
        lut = np.zeros(256, dtype=np.uint8)
        for value, number in numbers.items():
            lut[value] = number
        pixels = lut[label_map]
    pixels = in_frame_order(pixels, frame_of_k)

    descriptions = _segment_descriptions(numbers, labels, card)
    if not descriptions:
        raise OutputNotSupported(OUTPUT, "no label is named and the label map is empty: there is no segment to write")
    with highdicom_building(OUTPUT):
        seg = hd.seg.Segmentation(
            source_images=datasets,
            pixel_array=pixels,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            **producer_attributes(SERIES_NUMBER_OFFSET + max(stack.series_number, 0), card),
            series_description=f"RadLens {card.name} segmentation"[:64],
            content_label="RADLENS",
            content_description=f"{card.name} {card.version}"[:64],
            # An all-empty map is still a valid SEG: every frame is written, empty.
            omit_empty_frames=bool(present),
        )
    return save_atomically(seg, out_path, "SEG")
