"""Findings as a DICOM Structured Report: a TID 1500 Measurement Report in a Comprehensive 3D SR.

highdicom builds the report from the source headers (no pixel data is read), so it carries the
source's patient, study and frame of reference and lists the source instances (and the SEG,
when one was written) as evidence. The observer is a device: RadLens, with the model's name,
version and weights checksum.

One TID 1411 volumetric measurement group per finding: a tracking identifier (a new UID and
"finding N: name"), the finding's SNOMED CT category and type (as the SEG codes its segments),
the algorithm (model name and version), its volume (SCT Volume, UCUM ml) and its maximum model
probability. The region is the finding's segment in the SEG when the SEG was written and that
segment holds this finding alone; a segment holds every finding of its label, so a finding that
shares its segment with others is located by a 3-D POINT at its centroid instead (as are all
findings when no SEG was written): referencing the shared segment would claim the other
findings' voxels as this finding's volume.

One TID 1501 group at the end holds the study-level result: the number of findings (so a report
without findings still says so: TID 1500 needs at least one measurement group) and the model's
study-level score when it gives one. Numbers belong in measurement groups: TID 1500's report-
level qualitative evaluations hold coded or text values only.

No standard code says what the model's numbers are, and borrowing one would overstate them
(DCM 111047 "Probability of cancer" is not what a nodule-detection output is; DCM 111012
"Certainty of Finding" is a CAD certainty in percent), so they carry private codes of the
coding scheme ``99RADLENS`` (declared in the Coding Scheme Identification Sequence):

* ``MAXPROB`` "Maximum model probability": the highest value of the model's output map (its
  probability map, or the explanation map the finding was thresholded from) inside the
  finding, in [0, 1]; not a calibrated probability of disease.
* ``STUDYSCORE`` "Model study-level score": the model's score for the whole stack, in [0, 1].
* ``NFINDINGS`` "Number of model findings": how many findings the model reported.
* ``OODSCORE`` "Model input out-of-distribution score": how far the input's intensity statistics lie
  from the model's training inputs (:mod:`inference.engine.input_statistics`); above the card's
  threshold the input is unlike the training data.
* ``INPUTSUIT`` "Model input suitability", a qualitative evaluation of the study-level group valued
  ``SUITABLE`` / ``SUITWARN`` ("Suitable with warnings") / ``UNSUITFORCED`` ("Unsuitable, run forced
  by the user"): the input check before inference (:mod:`inference.engine.suitability`); its
  warnings in words are in ``findings.json``, the PDF and the summary.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from inference.batch.dicom_file import highdicom_building, producer_attributes, save_atomically
from inference.batch.errors import OutputNotSupported
from inference.batch.output_maps import label_table, output_label_map
from inference.batch.seg_writer import segmented_property
from inference.batch.source_headers import SourceHeaders
from inference.engine.result import Finding, Result
from inference.errors import LoadError
from inference.io.stacks import Stack
from inference.models.card import ModelCard
from inference.volume import Volume

OUTPUT = "DICOM SR"

#: Series numbers of SRs are the source's plus this (SEGs take +1000), so a PACS lists them nearby.
SERIES_NUMBER_OFFSET = 2000

PRIVATE_SCHEME = "99RADLENS"
MAX_PROBABILITY = Code("MAXPROB", PRIVATE_SCHEME, "Maximum model probability")
STUDY_SCORE = Code("STUDYSCORE", PRIVATE_SCHEME, "Model study-level score")
FINDING_COUNT = Code("NFINDINGS", PRIVATE_SCHEME, "Number of model findings")
OOD_SCORE = Code("OODSCORE", PRIVATE_SCHEME, "Model input out-of-distribution score")
INPUT_SUITABILITY = Code("INPUTSUIT", PRIVATE_SCHEME, "Model input suitability")
SUITABILITY_VALUES = {
    "suitable": Code("SUITABLE", PRIVATE_SCHEME, "Suitable"),
    "suitable with warnings": Code("SUITWARN", PRIVATE_SCHEME, "Suitable with warnings"),
    "unsuitable (run forced)": Code("UNSUITFORCED", PRIVATE_SCHEME, "Unsuitable, run forced by the user"),
}
MILLILITRE = Code("ml", "UCUM", "milliliter")
NO_UNITS = Code("1", "UCUM", "no units")

#: CID 100 procedure by modality: the body region is not known, so it is said to be unspecified.
_PROCEDURES = {
    "CT": Code("25045-6", "LN", "CT unspecified body region"),
    "MR": Code("25056-3", "LN", "MRI unspecified body region"),
    "PT": Code("44136-0", "LN", "PET unspecified body region"),
    "NM": Code("49118-3", "LN", "NM unspecified body region"),
}
_IMAGING_PROCEDURE = Code("363679005", "SCT", "Imaging procedure")


def procedure_reported(modality: str) -> Code:
    return _PROCEDURES.get(modality.upper(), _IMAGING_PROCEDURE)


def _read_seg(seg_path: Path, study_uid: str) -> pydicom.Dataset:
    try:
        seg = pydicom.dcmread(seg_path, stop_before_pixels=True)
    except (OSError, InvalidDicomError) as exc:
        raise LoadError(seg_path, f"cannot read the SEG the SR should reference ({exc})") from exc
    if seg.get("Modality") != "SEG" or "SegmentSequence" not in seg:
        raise ValueError(f"{seg_path} is not a DICOM SEG")
    if seg.StudyInstanceUID != study_uid:
        raise ValueError(f"{seg_path} belongs to another study than the sources (another identity policy?)")
    return seg


def _segment_of_each_finding(
    findings: Sequence[Finding],
    seg: pydicom.Dataset,
    label_map: npt.NDArray[np.integer[Any]] | None,
    card: ModelCard,
) -> dict[int, int]:
    """Finding number (from 1) → segment number, for the findings that are alone in their segment."""
    numbers_by_name: dict[str, list[int]] = {}
    for item in seg.SegmentSequence:
        numbers_by_name.setdefault(str(item.SegmentLabel), []).append(int(item.SegmentNumber))
    per_label = Counter(f.label for f in findings)
    names = label_table(card)
    out = {}
    for n, f in enumerate(findings, start=1):
        if per_label[f.label] != 1 or label_map is None:
            continue
        # The SEG names the segment of value v as the label table does (unnamed values as seg_writer does).
        numbers = numbers_by_name.get(names.get(f.label, (f"label {f.label}",))[0][:64], [])
        # One finding of its label, and every voxel of the label is in it (none left out as too small).
        if len(numbers) == 1 and int(np.count_nonzero(label_map == f.label)) == f.voxel_count:
            out[n] = numbers[0]
    return out


def _finding_group(
    n: int,
    finding: Finding,
    *,
    algorithm: Any,
    series_uid: str,
    frame_of_reference_uid: str,
    seg: pydicom.Dataset | None,
    segment_number: int | None,
) -> Any:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    category, kind = segmented_property(finding.name)
    source_series = hd.sr.SourceSeriesForSegmentation(series_uid)
    region: dict[str, Any]
    if seg is not None and segment_number is not None:
        region = {
            "referenced_segment": hd.sr.ReferencedSegment(
                sop_class_uid=seg.SOPClassUID,
                sop_instance_uid=seg.SOPInstanceUID,
                segment_number=segment_number,
                source_series=source_series,
            )
        }
    else:
        region = {
            "referenced_volume_surface": hd.sr.VolumeSurface(
                graphic_type=hd.sr.GraphicTypeValues3D.POINT,
                graphic_data=np.array([finding.centroid_lps], dtype=np.float64),
                frame_of_reference_uid=frame_of_reference_uid,
                source_series=source_series,
            )
        }
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=f"finding {n}: {finding.name}"[:64]),
        finding_type=kind,
        finding_category=category,
        algorithm_id=algorithm,
        measurements=[
            hd.sr.Measurement(name=codes.SCT.Volume, value=float(finding.volume_ml), unit=MILLILITRE),
            hd.sr.Measurement(name=MAX_PROBABILITY, value=float(finding.max_probability), unit=NO_UNITS),
        ],
        **region,
    )


def _study_group(result: Result, algorithm: Any) -> Any:
    """TID 1501: the number of findings, and the model's study-level score when it gives one."""
    import highdicom as hd

    measurements = [hd.sr.Measurement(name=FINDING_COUNT, value=len(result.findings), unit=NO_UNITS)]
    if result.study_score is not None:
        measurements.append(hd.sr.Measurement(name=STUDY_SCORE, value=float(result.study_score), unit=NO_UNITS))
    if result.ood_score is not None:
        measurements.append(hd.sr.Measurement(name=OOD_SCORE, value=float(result.ood_score), unit=NO_UNITS))
    suitability = SUITABILITY_VALUES.get(result.suitability)
    evaluations = [hd.sr.QualitativeEvaluation(INPUT_SUITABILITY, suitability)] if suitability is not None else None
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier="study-level result"),
        algorithm_id=algorithm,
        measurements=measurements,
        qualitative_evaluations=evaluations,
    )


def write_findings_sr(
    stack: Stack,
    volume: Volume,
    result: Result,
    card: ModelCard,
    out_path: Path,
    *,
    seg_path: Path | None = None,
    label_map: npt.NDArray[np.uint8] | None = None,
    dataset_transform: Callable[[pydicom.Dataset], pydicom.Dataset] | None = None,
    sources: SourceHeaders | None = None,
) -> Path:
    """Write ``result``'s findings (computed on ``volume``, loaded from ``stack``) as a TID 1500 SR.

    ``seg_path`` names the DICOM SEG written for the same result: it is listed as evidence and
    a finding alone in its segment references that segment. ``label_map`` is the map the SEG was
    written from (:func:`~inference.batch.output_maps.output_label_map` of ``result`` when not
    given). ``dataset_transform`` is applied to every source header before the report is built,
    as for the SEG (pass the same transform), so a de-identifying transform leaves the SR in the
    remapped study, referencing the remapped instances and the SEG. ``sources`` shares the
    headers with the other outputs of the stack (it replaces ``dataset_transform``). The file
    appears atomically at ``out_path``.

    Raises :class:`OutputNotSupported` for non-DICOM input or sources highdicom cannot report on,
    :class:`OutputWriteError` when the file cannot be written.
    """
    import highdicom as hd
    from highdicom.coding_schemes import CodingSchemeIdentificationItem
    from pydicom.sr.codedict import codes

    headers = sources or SourceHeaders(stack, dataset_transform)
    headers.check(OUTPUT)
    instances = headers.instances()
    first = instances[0]
    # From the transformed header, never from the volume: that holds the source's own UID.
    frame_of_reference_uid = str(first.get("FrameOfReferenceUID", ""))
    if not frame_of_reference_uid:
        raise OutputNotSupported(OUTPUT, "the sources have no frame of reference to place findings in")
    seg = _read_seg(Path(seg_path), str(first.StudyInstanceUID)) if seg_path is not None else None
    segments: dict[int, int] = {}
    if seg is not None:
        labels = label_map if label_map is not None else output_label_map(result, card)
        segments = _segment_of_each_finding(result.findings, seg, labels, card)

    algorithm = hd.sr.AlgorithmIdentification(
        name=card.name[:64],
        version=card.version[:64],
        parameters=[f"threshold={card.threshold:g}"],
        family=codes.cid7162.ArtificialIntelligence,
        manufacturer="RadLens",
    )
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=generate_uid(entropy_srcs=["radlens-model", card.sha256]),  # one device per weights
        name=card.name[:64],
        manufacturer_name="RadLens",
        model_name=f"{card.name} {card.version}"[:64],
        serial_number=card.sha256[:16],
    )
    modality = str(volume.metadata.modality or stack.modality or first.get("Modality", ""))
    with highdicom_building(OUTPUT):
        groups: list[Any] = [
            _finding_group(
                n,
                f,
                algorithm=algorithm,
                series_uid=str(first.SeriesInstanceUID),
                frame_of_reference_uid=frame_of_reference_uid,
                seg=seg,
                segment_number=segments.get(n),
            )
            for n, f in enumerate(result.findings, start=1)
        ]
        groups.append(_study_group(result, algorithm))
        report = hd.sr.MeasurementReport(
            observation_context=hd.sr.ObservationContext(
                observer_device_context=hd.sr.ObserverContext(
                    observer_type=codes.DCM.Device, observer_identifying_attributes=device
                )
            ),
            procedure_reported=procedure_reported(modality),
            imaging_measurements=groups,
        )
        sr = hd.sr.Comprehensive3DSR(
            evidence=[*instances, *([seg] if seg is not None else [])],
            content=report,
            **producer_attributes(SERIES_NUMBER_OFFSET + max(stack.series_number, 0), card),
            is_complete=True,
            series_description=f"RadLens {card.name} findings"[:64],
            coding_schemes=[
                CodingSchemeIdentificationItem(
                    designator=PRIVATE_SCHEME,
                    name="RadLens private codes",
                    responsible_organization="RadLens",
                )
            ],
        )
    return save_atomically(sr, out_path, "SR")
