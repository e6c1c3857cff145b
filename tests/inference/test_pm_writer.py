"""A model's map as a DICOM Parametric Map, alone and as an output of ``write_stack_outputs``.

Oracles: dciodvfy (Debian dicom3tools) for conformance, highdicom and pydicom for reading it back,
the source headers for positions and references.
"""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from inference.batch.errors import OutputNotSupported
from inference.batch.identity import Identity, IdentityPolicy
from inference.batch.pm_writer import SLOPE, write_parametric_map
from inference.batch.stack_outputs import quantised_heatmap, write_stack_outputs
from inference.engine.result import Result
from inference.errors import LoadError
from inference.io.map_reader import is_parametric_map, read_parametric_map_onto
from inference.io.nifti_writer import write_nifti
from inference.io.seg_reader import SegmentationMismatchError
from inference.models.card import ModelCard, load_card
from tests.inference.test_batch_writers import (
    CARD_PATH,
    REAL_ID,
    REAL_NAME,
    Series,
    _dciodvfy,
    _frames,
    _load,
    write_series,
)


@pytest.fixture(scope="module")
def card() -> ModelCard:
    return load_card(CARD_PATH)


@pytest.fixture(scope="module")
def series(
    tmp_path_factory: pytest.TempPathFactory, ct_head: tuple[np.ndarray, tuple[float, float, float]]
) -> dict[str, Series]:
    """The sample study, a slab of the real CT head, and an oblique and a feet-first phantom."""
    root = tmp_path_factory.mktemp("pm")
    directions = ("oblique", "feet-first")
    return write_series(
        root, ct_head, head_slices=slice(50, 58), phantom_shape=(9, 48, 40), directions=directions, uid_prefix="pm-"
    )


def _map(shape: tuple[int, int, int]) -> np.ndarray:
    """A float map in [0, 1] that differs on every slice, row and column, with zeros and a plateau at 1."""
    k, j, i = np.indices(shape, dtype=np.float32)
    heat = np.sin(0.7 * k + 0.05 * j) * np.cos(0.09 * i) * 1.3
    return np.asarray(heat, dtype=np.float32)


def _frames_by_slice(pm: pydicom.Dataset, uids: list[str]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Slice k of the source → (ImagePositionPatient, real-world values) of the map's frame for it."""
    mapping = pm.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
    slope, intercept = float(mapping.RealWorldValueSlope), float(mapping.RealWorldValueIntercept)
    pixels = pm.pixel_array.reshape(-1, pm.Rows, pm.Columns)
    frames = zip(_frames(pm), pixels, strict=True)
    return {uids.index(uid): (position, plane * slope + intercept) for (uid, position), plane in frames}


@pytest.mark.parametrize("name", ["sample", "head", "oblique", "feet-first"])
def test_parametric_map_is_valid_and_puts_each_value_on_its_source_slice(
    series: dict[str, Series], card: ModelCard, tmp_path: Path, name: str
) -> None:
    s = series[name]
    stored = quantised_heatmap(_map(s.volume.shape))
    assert stored.min() == 0 and stored.max() == 255
    path = write_parametric_map(s.stack, s.volume, stored, card, tmp_path / "heatmap-pm.dcm", what="attention")
    assert [p.name for p in tmp_path.iterdir()] == ["heatmap-pm.dcm"]
    _dciodvfy(path)

    pm = pydicom.dcmread(path)
    assert pm.SOPClassUID == "1.2.840.10008.5.1.4.1.1.30"  # Parametric Map Storage
    assert pm.file_meta.TransferSyntaxUID == pydicom.uid.RLELossless
    assert pm.BitsAllocated == 16 and pm.Manufacturer == "RadLens"
    first = pydicom.dcmread(s.stack.headers[0].path, stop_before_pixels=True)
    assert pm.StudyInstanceUID == s.stack.study_uid
    assert pm.FrameOfReferenceUID == first.FrameOfReferenceUID == s.volume.metadata.frame_of_reference_uid
    assert str(pm.PatientName) == REAL_NAME or name == "sample"  # the source's patient, as the SEG carries it
    mapping = pm.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
    assert mapping.LUTLabel == "attention" and mapping.MeasurementUnitsCodeSequence[0].CodeValue == "1"

    uids = list(s.volume.metadata.extra["sop_instance_uids"])
    frames = _frames_by_slice(pm, uids)
    assert sorted(frames) == list(range(s.volume.shape[0]))  # every slice, once, even the empty ones
    for k, (position, values) in frames.items():
        np.testing.assert_allclose(position, s.volume.index_to_lps([0, 0, k]), atol=1e-3)
        np.testing.assert_allclose(values, stored[k] * SLOPE, rtol=0, atol=1e-9)
    # highdicom reads it as a parametric map of the same frames.
    back = hd.pm.ParametricMap.from_dataset(pm)
    assert back.number_of_frames == s.volume.shape[0]


def test_parametric_map_of_a_multiframe_source_references_its_frames(card: ModelCard, tmp_path: Path) -> None:
    source_path = get_testdata_file("eCT_Supplemental.dcm")
    assert source_path is not None, "install pydicom-data"
    s = _load(Path(source_path))
    stored = quantised_heatmap(_map(s.volume.shape))
    path = write_parametric_map(s.stack, s.volume, stored, card, tmp_path / "pm.dcm", what="gradcam")
    _dciodvfy(path)
    pm = pydicom.dcmread(path)
    source = pydicom.dcmread(source_path, stop_before_pixels=True)
    pixels = pm.pixel_array.reshape(-1, pm.Rows, pm.Columns)
    for frame, plane in zip(pm.PerFrameFunctionalGroupsSequence, pixels, strict=True):
        ref = frame.DerivationImageSequence[0].SourceImageSequence[0]
        assert ref.ReferencedSOPInstanceUID == source.SOPInstanceUID
        number = int(ref.ReferencedFrameNumber)
        k = next(k for k, r in enumerate(s.stack.slices) if r.frame_index == number - 1)
        np.testing.assert_array_equal(plane, stored[k])


def test_parametric_map_is_refused_for_non_dicom_input_and_a_wrong_map(
    series: dict[str, Series], card: ModelCard, tmp_path: Path
) -> None:
    s = series["sample"]
    write_nifti(s.volume, tmp_path / "ct.nii.gz")
    nifti = _load(tmp_path / "ct.nii.gz")
    stored = quantised_heatmap(_map(nifti.volume.shape))
    with pytest.raises(OutputNotSupported, match="not DICOM"):
        write_parametric_map(nifti.stack, nifti.volume, stored, card, tmp_path / "pm.dcm", what="attention")
    with pytest.raises(ValueError, match="uint8"):
        write_parametric_map(s.stack, s.volume, _map(s.volume.shape), card, tmp_path / "pm.dcm", what="attention")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct.nii.gz"]  # nothing half-written


def test_anonymised_parametric_map_carries_no_identity_and_remapped_uids(
    series: dict[str, Series], card: ModelCard, tmp_path: Path
) -> None:
    """As an output of ``write_stack_outputs`` with --anonymize: the map is in the remapped study,
    references the remapped instances (the same ones the SEG references) and names nobody."""
    s = series["head"]
    heat = _map(s.volume.shape)
    result = Result(card.name, card.version, "cpu", heatmaps={"attention": heat})
    identity = Identity(IdentityPolicy.ANONYMIZE, b"a test key")
    out = write_stack_outputs(
        tmp_path, stack=s.stack, volume=s.volume, result=result, card=card, identity=identity, formats=("seg", "pm")
    )
    assert "heatmap-pm.dcm" in out.files and "seg.dcm" in out.files, out.notes
    _dciodvfy(tmp_path / "heatmap-pm.dcm")
    raw = (tmp_path / "heatmap-pm.dcm").read_bytes()
    for secret in (REAL_NAME, REAL_ID, s.stack.study_uid, *s.volume.metadata.extra["sop_instance_uids"]):
        assert secret.encode() not in raw
    pm, seg = pydicom.dcmread(tmp_path / "heatmap-pm.dcm"), pydicom.dcmread(tmp_path / "seg.dcm")
    assert pm.StudyInstanceUID == seg.StudyInstanceUID != s.stack.study_uid
    assert pm.FrameOfReferenceUID == seg.FrameOfReferenceUID
    pm_refs, seg_refs = ({uid for uid, _ in _frames(ds)} for ds in (pm, seg))
    assert seg_refs <= pm_refs and len(pm_refs) == s.volume.shape[0]
    values = pm.pixel_array.reshape(-1, pm.Rows, pm.Columns).astype(np.float64) * SLOPE
    assert values.max() == pytest.approx(1.0) and values.min() == 0.0


def test_no_map_no_parametric_map(series: dict[str, Series], card: ModelCard, tmp_path: Path) -> None:
    s = series["sample"]
    out = write_stack_outputs(
        tmp_path,
        stack=s.stack,
        volume=s.volume,
        result=Result(card.name, card.version, "cpu"),
        card=card,
        identity=Identity(),
        formats=("pm",),
    )
    assert out.files == [] and out.notes == ["pm: the model gives no map"]


@pytest.mark.parametrize("name", ["head", "oblique", "feet-first"])
def test_parametric_map_reads_back_onto_its_series_and_nowhere_else(
    series: dict[str, Series], card: ModelCard, tmp_path: Path, name: str
) -> None:
    s = series[name]
    stored = quantised_heatmap(_map(s.volume.shape))
    path = write_parametric_map(s.stack, s.volume, stored, card, tmp_path / "pm.dcm", what="attention")
    assert is_parametric_map(path) and not is_parametric_map(s.stack.headers[0].path)
    back = read_parametric_map_onto(s.volume, path)
    assert back.label == "attention" and back.units == ""
    np.testing.assert_allclose(back.values, stored.astype(np.float32) / 255.0, rtol=0, atol=1e-6)
    other = series["sample"]
    with pytest.raises(SegmentationMismatchError, match=r"frame of reference|references none"):
        read_parametric_map_onto(other.volume, path)
    with pytest.raises(LoadError, match="not a readable DICOM parametric map"):
        read_parametric_map_onto(s.volume, s.stack.headers[0].path)  # a CT image, not a map


def test_a_segmentation_models_probability_map_is_labelled_as_one(
    series: dict[str, Series], card: ModelCard, tmp_path: Path
) -> None:
    """A model without an explanation map writes its foreground probability, and says so."""
    s = series["oblique"]
    result = Result(card.name, card.version, "cpu", probability_map=_map(s.volume.shape))
    out = write_stack_outputs(
        tmp_path, stack=s.stack, volume=s.volume, result=result, card=card, identity=Identity(), formats=("pm",)
    )
    assert out.files == ["heatmap-pm.dcm"], out.notes
    back = read_parametric_map_onto(s.volume, tmp_path / "heatmap-pm.dcm")
    assert back.label == "probability"
    mapping = pydicom.dcmread(tmp_path / "heatmap-pm.dcm").SharedFunctionalGroupsSequence[0]
    assert "foreground probability" in mapping.RealWorldValueMappingSequence[0].LUTExplanation
    np.testing.assert_allclose(back.values, quantised_heatmap(_map(s.volume.shape)) / 255.0, rtol=0, atol=1e-6)
