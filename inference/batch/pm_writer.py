"""A model's map (explanation or probability) as a DICOM Parametric Map on the source's grid.

highdicom builds the object from the source headers, as for the SEG: one frame per source slice,
each at that slice's ImagePositionPatient and referencing its SOP instance, in the source's
study and frame of reference, so a DICOM viewer lays the map over the images it came from.

The stored values are the ones ``heatmap.nii.gz`` holds (0…255, steps of 1/255: see
:func:`inference.batch.stack_outputs.quantised_heatmap`) in 16-bit words (the IOD allows 16 or
32 bits), with a Real World Value Mapping of slope 1/255, so readers see the map's values in
[0, 1]. Frames are RLE Lossless: every DICOM toolkit decodes it, and a mostly-zero map shrinks
about 50 times.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom

from inference.batch.dicom_file import highdicom_building, producer_attributes, save_atomically
from inference.batch.source_headers import SourceHeaders, in_frame_order
from inference.io.stacks import Stack
from inference.models.card import ModelCard
from inference.volume import Volume

OUTPUT = "DICOM parametric map"

#: Series numbers of parametric maps are the source's plus this (SEGs: 1000, SRs: 2000).
SERIES_NUMBER_OFFSET = 3000
#: Stored value → real-world value (the NIfTI heatmap's scl_slope).
SLOPE = 1.0 / 255.0


def write_parametric_map(
    stack: Stack,
    volume: Volume,
    stored: npt.NDArray[np.uint8],
    card: ModelCard,
    out_path: Path,
    *,
    what: str,
    dataset_transform: Callable[[pydicom.Dataset], pydicom.Dataset] | None = None,
    sources: SourceHeaders | None = None,
) -> Path:
    """Write ``stored`` (``[k, j, i]`` on ``volume``, loaded from ``stack``; real value = stored / 255)
    as a DICOM Parametric Map. ``what`` names the map (``"attention"``, ``"gradcam"``,
    ``"probability"``): its LUT label and explanation. ``dataset_transform`` and ``sources`` as
    for :func:`inference.batch.seg_writer.write_dicom_seg`. The file appears atomically.

    Raises :class:`OutputNotSupported` for non-DICOM input or part of a multi-frame object,
    :class:`OutputWriteError` when the file cannot be written.
    """
    import highdicom as hd
    from pydicom.uid import RLELossless

    if stored.shape != volume.shape or volume.shape[0] != stack.n_slices or stored.dtype != np.uint8:
        raise ValueError(
            f"map {stored.shape} {stored.dtype}, volume {volume.shape} and stack of {stack.n_slices} slices "
            "disagree (the map must be uint8 steps of 1/255 on the volume's grid)"
        )
    datasets, frame_of_k = (sources or SourceHeaders(stack, dataset_transform)).frames(OUTPUT)
    pixels = in_frame_order(stored, frame_of_k).astype(np.uint16)
    mapping = hd.pm.RealWorldValueMapping(
        lut_label=what[:16],
        lut_explanation=_explanation(card, what)[:64],
        unit=hd.sr.CodedConcept("1", "UCUM", "no units"),
        value_range=(0, 255),
        slope=SLOPE,
        intercept=0.0,
    )
    with highdicom_building(OUTPUT):
        pm = hd.pm.ParametricMap(
            source_images=datasets,
            pixel_array=pixels,
            **producer_attributes(SERIES_NUMBER_OFFSET + max(stack.series_number, 0), card),
            contains_recognizable_visual_features=False,
            real_world_value_mappings=[mapping],
            window_center=127.5,  # stored values: the whole range 0…255
            window_width=256.0,
            transfer_syntax_uid=RLELossless,
            series_description=f"RadLens {card.name} {what} map"[:64],
            content_label="RADLENS",
            content_description=f"{card.name} {card.version}"[:64],
        )
    _add_laterality(pm, datasets[0])
    return save_atomically(pm, out_path, "parametric map")


def _explanation(card: ModelCard, what: str) -> str:
    if what == "probability":
        return f"{card.name} {card.version}: foreground probability"
    return f"{card.name} {card.version}: {what} map x slice probability"


def _add_laterality(pm: pydicom.Dataset, first: pydicom.Dataset) -> None:
    """The source's body part and laterality (highdicom copies neither); without either, an empty
    Laterality (General Series, Type 2C: required unless the body part is known to be unpaired,
    which an absent body part does not say)."""
    for keyword in ("BodyPartExamined", "Laterality"):
        if first.get(keyword):
            setattr(pm, keyword, first.get(keyword))
    if "BodyPartExamined" not in pm and "Laterality" not in pm:
        pm.Laterality = None
