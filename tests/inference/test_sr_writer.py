"""Findings as a DICOM SR (TID 1500 Measurement Report), alone and as an output of ``write_stack_outputs``.

Oracles: dciodvfy (Debian dicom3tools) for conformance, highdicom's ``srread`` and pydicom for
reading the report back, the findings of the result it was written from, RadLens's SEG reader for
the voxels of a referenced segment and the SEG's own headers for consistent UID remapping.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from scipy import ndimage

from inference.batch.errors import OutputNotSupported, OutputWriteError
from inference.batch.identity import Identity, IdentityPolicy
from inference.batch.seg_writer import write_dicom_seg
from inference.batch.sr_writer import FINDING_COUNT, MAX_PROBABILITY, STUDY_SCORE, write_findings_sr
from inference.batch.stack_outputs import label_table, output_label_map, write_stack_outputs
from inference.engine.findings import find_components
from inference.engine.result import Finding, Result
from inference.engine.run import run
from inference.io.dicom_loader import load_stack
from inference.io.nifti_writer import write_nifti
from inference.io.scan import scan
from inference.io.seg_reader import read_dicom_seg_onto
from inference.io.stacks import Stack
from inference.models.card import LabelSpec, ModelCard, load_card
from inference.sample_study import write_sample_study
from inference.volume import Volume
from tests.inference.test_batch_writers import CARD_PATH, _dciodvfy

SAMPLE_NAME, SAMPLE_ID = "RADLENS^PHANTOM", "RADLENS-PHANTOM"
VOLUME = "118565006"  # SCT Volume
NODULE, LESION = "27925004", "52988006"  # SCT Nodule, Lesion


@dataclasses.dataclass(frozen=True)
class Sample:
    stack: Stack
    volume: Volume


def _load(path: Path) -> Sample:
    (stack,) = scan(path).stacks()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # geometry notes are not the subject here
        return Sample(stack, load_stack(stack))


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    return _load(write_sample_study(tmp_path_factory.mktemp("sr") / "sample"))


@pytest.fixture(scope="module")
def card() -> ModelCard:
    return load_card(CARD_PATH)


@pytest.fixture(scope="module")
def demo_result(sample: Sample, card: ModelCard) -> Result:
    """The bundled CT model on the sample: several nodules, all of label 1 (so all in one segment)."""
    result = run(card, sample.volume, device="cpu")
    assert len(result.findings) >= 2 and {f.label for f in result.findings} == {1}
    return result


def _source_uids(s: Sample) -> list[str]:
    return list(s.volume.metadata.extra["sop_instance_uids"])


def _measurement(group: hd.sr.Template, code: str) -> float:
    (item,) = [m for m in group.get_measurements() if m.name.value == code]
    return float(item.value)


def _point(group: hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations) -> tuple[str, np.ndarray]:
    """(frame of reference UID, LPS mm) of a group whose region is a 3-D point."""
    assert group.reference_type.value == "121231"  # DCM Volume Surface
    surface = group.roi
    assert isinstance(surface, hd.sr.VolumeSurface) and surface.graphic_type == hd.sr.GraphicTypeValues3D.POINT
    (data,) = surface.graphic_data
    return str(surface.frame_of_reference_uid), np.asarray(data).reshape(3)


def _segment(group: hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations) -> tuple[str, str, int, str]:
    """(SOP class, SOP instance, segment number, source series) a group's referenced segment names."""
    assert group.reference_type.value == "121191"  # DCM Referenced Segment
    ref = group.referenced_segment
    assert ref is not None
    (image,) = [item for item in ref if item.name.value == "121191"]
    (number,) = image.referenced_segment_numbers
    (series,) = [item for item in ref if item.name.value == "121232"]  # Source Series for Segmentation
    return str(image.referenced_sop_class_uid), str(image.referenced_sop_instance_uid), int(number), str(series.value)


def _check_findings(
    sr: hd.sr.Comprehensive3DSR, findings: list[Finding]
) -> list[hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations]:
    """One volumetric group per finding, in order, with its type, volume and maximum probability."""
    groups = sr.content.get_volumetric_roi_measurement_groups()
    assert len(groups) == len(findings)
    for n, (group, finding) in enumerate(zip(groups, findings, strict=True), start=1):
        assert group.tracking_identifier == f"finding {n}: {finding.name}"
        assert group.tracking_uid is not None
        assert group.finding_type.value == (NODULE if finding.name == "nodule" else LESION)
        assert _measurement(group, VOLUME) == pytest.approx(finding.volume_ml, rel=1e-12)
        (volume,) = [m for m in group.get_measurements() if m.name.value == VOLUME]
        assert volume.unit.value == "ml" and volume.unit.scheme_designator == "UCUM"
        assert _measurement(group, MAX_PROBABILITY.value) == pytest.approx(finding.max_probability, rel=1e-12)
    return groups


def _study_level(sr: hd.sr.Comprehensive3DSR) -> dict[str, float]:
    (group,) = sr.content.get_image_measurement_groups()
    assert group.tracking_identifier == "study-level result"
    return {m.name.value: float(m.value) for m in group.get_measurements()}


def test_sr_of_the_demo_model_holds_every_finding_at_its_centroid_and_lists_its_evidence(
    sample: Sample, card: ModelCard, demo_result: Result, tmp_path: Path
) -> None:
    labels = output_label_map(demo_result, card)
    assert labels is not None
    seg_path = write_dicom_seg(sample.stack, sample.volume, labels, label_table(card), card, tmp_path / "seg.dcm")
    path = write_findings_sr(sample.stack, sample.volume, demo_result, card, tmp_path / "sr.dcm", seg_path=seg_path)
    assert path == tmp_path / "sr.dcm" and sorted(p.name for p in tmp_path.iterdir()) == ["seg.dcm", "sr.dcm"]
    report = _dciodvfy(path)
    assert "Comprehensive3DSR" in report

    sr = hd.sr.srread(path)
    assert isinstance(sr, hd.sr.Comprehensive3DSR) and sr.Modality == "SR"
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    first = pydicom.dcmread(sample.stack.headers[0].path, stop_before_pixels=True)
    assert sr.StudyInstanceUID == sample.stack.study_uid and str(sr.PatientName) == SAMPLE_NAME  # no transform
    assert sr.Manufacturer == "RadLens" and sr.SeriesDescription == f"RadLens {card.name} findings"
    (device,) = sr.content.get_observer_contexts()
    assert device.observer_type.value == "121007"  # DCM Device
    assert device.observer_identifying_attributes.name == card.name
    assert sr.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == "99RADLENS"

    # Several nodules share segment 1: each is located by its centroid, not by the shared segment.
    for group, finding in zip(_check_findings(sr, demo_result.findings), demo_result.findings, strict=True):
        for_uid, point = _point(group)
        assert for_uid == first.FrameOfReferenceUID == sample.volume.metadata.frame_of_reference_uid
        np.testing.assert_allclose(point, finding.centroid_lps, atol=1e-4)  # FL: float32 in the file
        np.testing.assert_allclose(point, sample.volume.index_to_lps(finding.centroid_ijk), atol=1e-3)
    study = _study_level(sr)
    assert study[FINDING_COUNT.value] == len(demo_result.findings)
    assert study[STUDY_SCORE.value] == pytest.approx(demo_result.study_score, rel=1e-12)

    seg = pydicom.dcmread(seg_path, stop_before_pixels=True)
    evidence = {(str(series), str(sop)) for _, series, sop, _ in sr.get_evidence()}
    assert evidence == {(sample.stack.series_uid, uid) for uid in _source_uids(sample)} | {
        (seg.SeriesInstanceUID, seg.SOPInstanceUID)
    }
    assert {study for study, *_ in sr.get_evidence(current_procedure_only=True)} == {sample.stack.study_uid}


def _two_labels_three_findings(volume: Volume) -> np.ndarray:
    """Label 1 ("nodule") in two separate blobs, label 2 ("lesion") in one."""
    kji = np.indices(volume.shape).transpose(1, 2, 3, 0).astype(np.float64)
    labels = np.zeros(volume.shape, np.uint8)
    for value, centre, radius in ((1, (20, 60, 60), 5), (1, (50, 130, 70), 4), (2, (40, 90, 140), 6)):
        labels[((kji - centre) ** 2).sum(axis=-1) <= radius**2] = value
    return labels


def test_a_finding_alone_in_its_segment_references_that_segment(
    sample: Sample, card: ModelCard, tmp_path: Path
) -> None:
    two = dataclasses.replace(card, labels=(LabelSpec(1, "nodule", (230, 25, 75)), LabelSpec(2, "lesion", (1, 2, 3))))
    labels = _two_labels_three_findings(sample.volume)
    names = {lab.value: lab.name for lab in two.labels}
    findings = find_components(sample.volume, labels, None, names)
    assert sorted(f.label for f in findings) == [1, 1, 2]
    result = Result(two.name, two.version, "cpu", label_map=labels, findings=findings)
    seg_path = write_dicom_seg(sample.stack, sample.volume, labels, label_table(two), two, tmp_path / "seg.dcm")
    path = write_findings_sr(sample.stack, sample.volume, result, two, tmp_path / "sr.dcm", seg_path=seg_path)
    _dciodvfy(path)

    sr = hd.sr.srread(path)
    seg = pydicom.dcmread(seg_path, stop_before_pixels=True)
    back = read_dicom_seg_onto(sample.volume, seg_path)
    voxel_ml = float(np.prod(sample.volume.spacing)) / 1000.0
    for group, finding in zip(_check_findings(sr, findings), findings, strict=True):
        if finding.label == 2:
            sop_class, sop_instance, number, series = _segment(group)
            assert (sop_class, sop_instance) == (seg.SOPClassUID, seg.SOPInstanceUID)
            assert series == sample.stack.series_uid
            assert back.names[number] == "lesion"
            # The referenced segment's voxels are the finding's: same centroid, same volume.
            kji = np.argwhere(back.labels == number)
            centroid = sample.volume.index_to_lps(kji.mean(axis=0)[::-1])
            np.testing.assert_allclose(centroid, finding.centroid_lps, atol=1e-6)
            assert len(kji) * voxel_ml == pytest.approx(finding.volume_ml)
        else:  # two nodules share segment 1
            _, point = _point(group)
            np.testing.assert_allclose(point, finding.centroid_lps, atol=1e-4)
    assert _study_level(sr) == {FINDING_COUNT.value: 3.0}  # no study-level score given
    assert (seg.SeriesInstanceUID, seg.SOPInstanceUID) in {(str(se), str(so)) for _, se, so, _ in sr.get_evidence()}


def test_anonymized_sr_carries_no_source_uid_or_identity_and_matches_the_seg(
    sample: Sample, card: ModelCard, demo_result: Result, tmp_path: Path
) -> None:
    identity = Identity(IdentityPolicy.ANONYMIZE, b"a test key")
    labels = output_label_map(demo_result, card)
    assert labels is not None
    s, v = sample.stack, sample.volume
    seg_path = write_dicom_seg(
        s, v, labels, label_table(card), card, tmp_path / "seg.dcm", dataset_transform=identity.dataset
    )
    path = write_findings_sr(
        s, v, demo_result, card, tmp_path / "sr.dcm", seg_path=seg_path, dataset_transform=identity.dataset
    )
    _dciodvfy(path)
    data = path.read_bytes()
    first = pydicom.dcmread(s.headers[0].path, stop_before_pixels=True)
    assert str(first.PatientName) == SAMPLE_NAME  # the source itself is untouched
    originals = {s.study_uid, s.series_uid, str(first.FrameOfReferenceUID), *_source_uids(sample)}
    for uid in originals:
        assert uid.encode() not in data, uid
    for text in (SAMPLE_NAME, SAMPLE_ID, "PHANTOM", "phantom", str(first.StudyDate)):
        assert text.encode() not in data, text

    sr = hd.sr.srread(path)
    seg = pydicom.dcmread(seg_path, stop_before_pixels=True)
    assert sr.StudyInstanceUID == identity.uid(s.study_uid) == seg.StudyInstanceUID
    assert str(sr.PatientName) == str(seg.PatientName) == identity.pseudonym(SAMPLE_ID, SAMPLE_NAME)
    assert sr.PatientID == seg.PatientID
    # The SR's evidence is the SEG and the very instances the SEG references, under the same remapping.
    (referenced,) = seg.ReferencedSeriesSequence
    seg_sources = {str(item.ReferencedSOPInstanceUID) for item in referenced.ReferencedInstanceSequence}
    evidence = {(str(series), str(sop)) for _, series, sop, _ in sr.get_evidence()}
    remapped_series = identity.uid(s.series_uid)
    assert evidence == {(remapped_series, u) for u in seg_sources} | {(seg.SeriesInstanceUID, seg.SOPInstanceUID)}
    for group in sr.content.get_volumetric_roi_measurement_groups():
        for_uid, _ = _point(group)
        assert for_uid == seg.FrameOfReferenceUID


@pytest.mark.parametrize("score", [0.03, None])
def test_no_findings_is_still_a_valid_report_that_says_so(
    sample: Sample, card: ModelCard, tmp_path: Path, score: float | None
) -> None:
    result = Result(card.name, card.version, "cpu", study_score=score)
    path = write_findings_sr(sample.stack, sample.volume, result, card, tmp_path / "sr.dcm")
    _dciodvfy(path)
    sr = hd.sr.srread(path)
    assert sr.content.get_volumetric_roi_measurement_groups() == []
    expected = {FINDING_COUNT.value: 0.0} | ({STUDY_SCORE.value: score} if score is not None else {})
    assert _study_level(sr) == pytest.approx(expected)
    evidence = {str(sop) for *_, sop, _ in sr.get_evidence()}
    assert evidence == set(_source_uids(sample))


def test_sr_is_refused_for_nifti_input_and_the_batch_notes_why(
    sample: Sample, card: ModelCard, demo_result: Result, tmp_path: Path
) -> None:
    write_nifti(sample.volume, tmp_path / "ct.nii.gz")
    nifti = _load(tmp_path / "ct.nii.gz")
    assert nifti.stack.kind == "file"
    with pytest.raises(OutputNotSupported, match="not DICOM") as info:
        write_findings_sr(nifti.stack, nifti.volume, demo_result, card, tmp_path / "sr.dcm")
    assert info.value.output == "DICOM SR"
    assert not (tmp_path / "sr.dcm").exists()

    out = write_stack_outputs(
        tmp_path / "out", stack=nifti.stack, volume=nifti.volume, result=demo_result, card=card,
        identity=Identity(), formats=("sr",),
    )  # fmt: skip
    (note,) = out.notes
    assert not out.files and note == "sr: the input is not DICOM, so there are no instances for an SR to reference"


def test_stack_outputs_write_the_sr_after_the_seg_and_reference_it(
    sample: Sample, card: ModelCard, demo_result: Result, tmp_path: Path
) -> None:
    only = [max(demo_result.findings, key=lambda f: f.voxel_count)]
    labels = output_label_map(demo_result, card)
    assert labels is not None
    # A result whose label map holds just the largest nodule: it is alone in segment 1.
    (k, j, i) = np.rint(only[0].centroid_ijk[::-1]).astype(int)
    components, _ = ndimage.label(labels, structure=np.ones((3, 3, 3), bool))
    single = (components == components[k, j, i]).astype(np.uint8)
    result = dataclasses.replace(demo_result, heatmaps={}, label_map=single, findings=only)
    both = write_stack_outputs(
        tmp_path / "both", stack=sample.stack, volume=sample.volume, result=result, card=card,
        identity=Identity(), formats=("sr", "seg"),
    )  # fmt: skip
    assert both.files == ["seg.dcm", "findings-sr.dcm"] and both.notes == []
    sr = hd.sr.srread(tmp_path / "both" / "findings-sr.dcm")
    seg = pydicom.dcmread(tmp_path / "both" / "seg.dcm", stop_before_pixels=True)
    (group,) = sr.content.get_volumetric_roi_measurement_groups()
    assert _segment(group)[1:3] == (seg.SOPInstanceUID, 1)
    assert str(sr.PatientName) == "" and sr.PatientID == ""  # the default identity policy

    alone = write_stack_outputs(
        tmp_path / "alone", stack=sample.stack, volume=sample.volume, result=result, card=card,
        identity=Identity(), formats=("sr",),
    )  # fmt: skip
    assert alone.files == ["findings-sr.dcm"]
    (group,) = hd.sr.srread(tmp_path / "alone" / "findings-sr.dcm").content.get_volumetric_roi_measurement_groups()
    np.testing.assert_allclose(_point(group)[1], only[0].centroid_lps, atol=1e-4)


def test_sr_write_failure_names_the_file(sample: Sample, card: ModelCard, demo_result: Result, tmp_path: Path) -> None:
    target = tmp_path / "missing-folder" / "sr.dcm"
    with pytest.raises(OutputWriteError) as info:
        write_findings_sr(sample.stack, sample.volume, demo_result, card, target)
    assert info.value.path == target
