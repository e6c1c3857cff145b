"""The standard outputs of ``radlens analyze``: DICOM SEG, NIfTI mask, key images and the PDF report.

Oracles: dciodvfy (Debian dicom3tools) for the SEG's conformance, highdicom for reading it,
RadLens's own SEG reader for voxel identity, SimpleITK and nibabel for the NIfTI geometry,
Pillow for the PNGs and poppler's pdfinfo/pdftotext for the PDF.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from inference.batch.errors import OutputNotSupported, OutputWriteError
from inference.batch.key_images import key_image_slice, write_key_images
from inference.batch.pdf_report import write_pdf_report
from inference.batch.seg_writer import write_dicom_seg
from inference.batch.stack_outputs import output_label_map, quantised_heatmap
from inference.display.render import render_slice_rgb
from inference.display.window_level import WindowLevel, volume_window
from inference.engine.result import Finding, Result
from inference.io.dicom_loader import load_stack
from inference.io.dicom_writer import write_dicom_series
from inference.io.nifti_writer import write_nifti
from inference.io.scan import scan
from inference.io.seg_reader import read_dicom_seg_onto
from inference.io.stacks import Stack
from inference.models.card import ModelCard, load_card
from inference.sample_study import make_chest_phantom, write_sample_study
from inference.volume import Volume, VolumeMetadata, WindowPreset

CARD_PATH = Path(__file__).resolve().parents[2] / "resources" / "models" / "ct-nodule-demo" / "card.toml"
LABELS = {1: ("nodule", (230, 25, 75)), 2: ("lung", (60, 180, 75))}
REAL_NAME, REAL_ID = "DOE^JANE", "PID-73521"


def _rotation(ax: float, az: float) -> np.ndarray:
    a, b = np.radians(ax), np.radians(az)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    rz = np.array([[np.cos(b), -np.sin(b), 0], [np.sin(b), np.cos(b), 0], [0, 0, 1]])
    return rz @ rx


DIRECTIONS = {
    "oblique": _rotation(25.0, 12.0),
    "feet-first": np.diag([-1.0, 1.0, -1.0]),  # slices run towards the feet: k descends in z
    "coronal": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]),
}


@dataclass(frozen=True)
class Series:
    stack: Stack
    volume: Volume


def _load(folder: Path) -> Series:
    stacks = scan(folder).stacks()
    assert len(stacks) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # geometry notes are not the subject here
        return Series(stacks[0], load_stack(stacks[0]))


def write_series(
    root: Path,
    ct_head: tuple[np.ndarray, tuple[float, float, float]],
    *,
    head_slices: slice = slice(40, 60),
    phantom_shape: tuple[int, int, int] = (12, 64, 64),
    directions: tuple[str, ...] = tuple(DIRECTIONS),
    uid_prefix: str = "",
) -> dict[str, Series]:
    """The sample study, a slab of the real CT head, and phantoms in the named ``directions``
    (oblique, feet-first, coronal), written as DICOM series under ``root`` and loaded."""
    out = {"sample": _load(write_sample_study(root / "sample"))}
    voxels, spacing = ct_head
    write_dicom_series(
        voxels[head_slices], root / "head", spacing=spacing, patient_name=REAL_NAME, patient_id=REAL_ID,
        uid_seed=f"{uid_prefix}head",
    )  # fmt: skip
    out["head"] = _load(root / "head")
    phantom, _ = make_chest_phantom(shape=phantom_shape)
    for name in directions:
        write_dicom_series(
            phantom.voxels, root / name, spacing=phantom.spacing, origin=(5.0, -20.0, 40.0),
            direction=DIRECTIONS[name], patient_name=REAL_NAME, patient_id=REAL_ID, uid_seed=f"{uid_prefix}{name}",
        )  # fmt: skip
        out[name] = _load(root / name)
    return out


@pytest.fixture(scope="module")
def series(
    tmp_path_factory: pytest.TempPathFactory, ct_head: tuple[np.ndarray, tuple[float, float, float]]
) -> dict[str, Series]:
    """The sample study, a slab of the real CT head, and phantoms in oblique, feet-first, coronal geometry."""
    return write_series(tmp_path_factory.mktemp("series"), ct_head)


@pytest.fixture(scope="module")
def card() -> ModelCard:
    return load_card(CARD_PATH)


def _two_labels(shape: tuple[int, int, int]) -> np.ndarray:
    """Two blobs across several slices, touching neither each other nor the edges."""
    size = np.array(shape, dtype=np.float64)[:, None, None, None]
    kji = np.indices(shape) / size  # each axis in [0, 1)

    def blob(centre: tuple[float, float, float], radius: float) -> np.ndarray:
        return ((kji - np.array(centre)[:, None, None, None]) ** 2).sum(axis=0) <= radius**2

    labels = np.zeros(shape, np.uint8)
    labels[blob((0.45, 0.4, 0.35), 0.2)] = 1
    labels[blob((0.6, 0.65, 0.7), 0.15)] = 2
    assert len(np.unique(labels)) == 3 and np.count_nonzero(labels.any(axis=(1, 2))) >= 3
    return labels


def _dciodvfy(path: Path) -> str:
    tool = shutil.which("dciodvfy")
    if tool is None:
        pytest.fail("dciodvfy is missing: run scripts/system-deps.sh (Debian dicom3tools)")
    done = subprocess.run([tool, str(path)], capture_output=True, text=True, check=False)
    report = done.stdout + done.stderr
    errors = [line for line in report.splitlines() if line.startswith("Error")]
    assert not errors and done.returncode == 0, report
    return report


def _source_header(s: Series, k: int) -> pydicom.Dataset:
    return pydicom.dcmread(s.stack.headers[s.stack.slices[k].header_index].path, stop_before_pixels=True)


def _frames(seg: pydicom.Dataset) -> list[tuple[str, np.ndarray]]:
    """(referenced SOP instance UID, ImagePositionPatient) of every SEG frame."""
    out = []
    for frame in seg.PerFrameFunctionalGroupsSequence:
        source = frame.DerivationImageSequence[0].SourceImageSequence[0]
        position = np.array([float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient])
        out.append((str(source.ReferencedSOPInstanceUID), position))
    return out


@pytest.mark.parametrize("name", ["sample", "head", "oblique", "feet-first"])
def test_seg_is_valid_references_its_sources_and_reads_back_voxel_identical(
    series: dict[str, Series], card: ModelCard, tmp_path: Path, name: str
) -> None:
    s = series[name]
    labels = _two_labels(s.volume.shape)
    path = write_dicom_seg(s.stack, s.volume, labels, LABELS, card, tmp_path / "seg.dcm")
    assert path == tmp_path / "seg.dcm" and [p.name for p in tmp_path.iterdir()] == ["seg.dcm"]
    _dciodvfy(path)

    seg = hd.seg.segread(str(path))
    uids = list(s.volume.metadata.extra["sop_instance_uids"])
    labelled = {uids[k] for k in np.flatnonzero(labels.any(axis=(1, 2)))}
    assert {str(u) for _, _, u in seg.get_source_image_uids()} == set(uids)
    for_uid = _source_header(s, 0).FrameOfReferenceUID
    assert seg.FrameOfReferenceUID == s.volume.metadata.frame_of_reference_uid == for_uid
    assert seg.StudyInstanceUID == s.stack.study_uid
    frames = _frames(seg)
    assert {u for u, _ in frames} == labelled  # empty slices are left out
    for uid, position in frames:
        k = uids.index(uid)
        source_position = [float(v) for v in _source_header(s, k).ImagePositionPatient]
        np.testing.assert_allclose(position, source_position, atol=1e-4)
        np.testing.assert_allclose(position, s.volume.index_to_lps([0, 0, k]), atol=1e-3)
    assert seg.Manufacturer == "RadLens"
    assert seg.SeriesDescription == f"RadLens {card.name} segmentation"
    assert {int(n): seg.get_segment_description(n).segment_label for n in seg.get_segment_numbers()} == {
        1: "nodule",
        2: "lung",
    }
    nodule = seg.get_segment_description(1)
    assert nodule.segmented_property_type.value == "27925004"  # SCT Nodule
    assert nodule.algorithm_identification[0].AlgorithmName == card.name

    back = read_dicom_seg_onto(s.volume, path)
    np.testing.assert_array_equal(back.labels, labels)


def test_dciodvfy_does_report_a_broken_seg(series: dict[str, Series], card: ModelCard, tmp_path: Path) -> None:
    """The validity check above can fail: a SEG without a required attribute is reported."""
    s = series["oblique"]
    path = write_dicom_seg(s.stack, s.volume, _two_labels(s.volume.shape), LABELS, card, tmp_path / "seg.dcm")
    ds = pydicom.dcmread(path)
    del ds.SegmentSequence[0].SegmentLabel
    ds.save_as(tmp_path / "broken.dcm")
    with pytest.raises(AssertionError, match="SegmentLabel"):
        _dciodvfy(tmp_path / "broken.dcm")


def _remapping_transform(salt: str) -> Callable[[pydicom.Dataset], pydicom.Dataset]:
    """A de-identifying transform as the batch core passes for --anonymize: UIDs remapped, identity replaced."""

    def transform(ds: pydicom.Dataset) -> pydicom.Dataset:
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
            if keyword in ds:
                setattr(ds, keyword, generate_uid(entropy_srcs=[salt, str(getattr(ds, keyword))]))
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.PatientName = "PSEUDO^0001"
        ds.PatientID = "PSEUDO-0001"
        for keyword in ("PatientBirthDate", "OtherPatientIDs"):
            if keyword in ds:
                delattr(ds, keyword)
        return ds

    return transform


def test_seg_of_a_remapped_source_carries_no_original_uid_or_identity(
    series: dict[str, Series], card: ModelCard, tmp_path: Path
) -> None:
    s = series["head"]
    labels = _two_labels(s.volume.shape)
    path = write_dicom_seg(
        s.stack, s.volume, labels, LABELS, card, tmp_path / "seg.dcm", dataset_transform=_remapping_transform("k")
    )
    _dciodvfy(path)
    data = path.read_bytes()
    source = _source_header(s, 0)
    assert str(source.PatientName) == REAL_NAME
    originals = {source.StudyInstanceUID, source.SeriesInstanceUID, source.FrameOfReferenceUID}
    originals |= set(s.volume.metadata.extra["sop_instance_uids"])
    for uid in originals:
        assert uid.encode() not in data, uid
    for identity in (REAL_NAME, REAL_ID, "DOE"):
        assert identity.encode() not in data
    seg = pydicom.dcmread(path)
    assert str(seg.PatientName) == "PSEUDO^0001" and seg.PatientID == "PSEUDO-0001"
    remap = {u: generate_uid(entropy_srcs=["k", u]) for u in s.volume.metadata.extra["sop_instance_uids"]}
    labelled = {remap[s.volume.metadata.extra["sop_instance_uids"][k]] for k in np.flatnonzero(labels.any(axis=(1, 2)))}
    assert {u for u, _ in _frames(seg)} == labelled
    assert seg.FrameOfReferenceUID == generate_uid(entropy_srcs=["k", source.FrameOfReferenceUID])


def test_an_empty_label_map_is_still_a_valid_seg(series: dict[str, Series], card: ModelCard, tmp_path: Path) -> None:
    s = series["feet-first"]
    empty = np.zeros(s.volume.shape, np.uint8)
    path = write_dicom_seg(s.stack, s.volume, empty, {1: LABELS[1]}, card, tmp_path / "seg.dcm")
    _dciodvfy(path)
    seg = hd.seg.segread(str(path))
    assert list(seg.get_segment_numbers()) == [1]
    np.testing.assert_array_equal(read_dicom_seg_onto(s.volume, path).labels, empty)


def test_label_values_are_renumbered_to_consecutive_segments(
    series: dict[str, Series], card: ModelCard, tmp_path: Path
) -> None:
    s = series["oblique"]
    labels = _two_labels(s.volume.shape)
    sparse = np.where(labels == 2, 7, labels * 3).astype(np.uint8)  # values 3 and 7
    table = {3: ("tumour", (1, 2, 3)), 7: ("brain", (4, 5, 6))}
    path = write_dicom_seg(s.stack, s.volume, sparse, table, card, tmp_path / "seg.dcm")
    _dciodvfy(path)
    back = read_dicom_seg_onto(s.volume, path)
    np.testing.assert_array_equal(back.labels, labels)  # 3 → segment 1, 7 → segment 2
    assert back.names == {1: "tumour", 2: "brain"}
    seg = hd.seg.segread(str(path))
    assert seg.get_segment_description(2).segmented_property_type.value == "12738006"  # SCT Brain


def test_seg_of_a_multiframe_source_references_its_frames(card: ModelCard, tmp_path: Path) -> None:
    source_path = get_testdata_file("eCT_Supplemental.dcm")
    assert source_path is not None, "install pydicom-data"
    s = _load(Path(source_path))
    labels = np.zeros(s.volume.shape, np.uint8)
    labels[1, 200:260, 180:300] = 1
    labels[0, 100:150, 100:140] = 2
    path = write_dicom_seg(s.stack, s.volume, labels, LABELS, card, tmp_path / "seg.dcm")
    _dciodvfy(path)
    seg = hd.seg.segread(str(path))
    source = pydicom.dcmread(source_path)
    for frame in seg.PerFrameFunctionalGroupsSequence:
        ref = frame.DerivationImageSequence[0].SourceImageSequence[0]
        assert ref.ReferencedSOPInstanceUID == source.SOPInstanceUID
        number = int(ref.ReferencedFrameNumber)
        src_pos = source.PerFrameFunctionalGroupsSequence[number - 1].PlanePositionSequence[0].ImagePositionPatient
        assert [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient] == pytest.approx(
            [float(v) for v in src_pos]
        )
    for k, ref in enumerate(s.stack.slices):
        pixels = seg.get_pixels_by_source_frame(
            source_sop_instance_uid=source.SOPInstanceUID,
            source_frame_numbers=[ref.frame_index + 1],
            combine_segments=True,
        )
        np.testing.assert_array_equal(pixels[0], labels[k])


def test_seg_is_refused_for_non_dicom_input(series: dict[str, Series], card: ModelCard, tmp_path: Path) -> None:
    s = series["sample"]
    write_nifti(s.volume, tmp_path / "ct.nii.gz")
    nifti = _load(tmp_path / "ct.nii.gz")
    assert nifti.stack.kind == "file"
    with pytest.raises(OutputNotSupported, match="not DICOM") as info:
        write_dicom_seg(nifti.stack, nifti.volume, _two_labels(nifti.volume.shape), LABELS, card, tmp_path / "s.dcm")
    assert info.value.output == "DICOM SEG"
    assert not (tmp_path / "s.dcm").exists()


def test_seg_write_failure_names_the_file(series: dict[str, Series], card: ModelCard, tmp_path: Path) -> None:
    s = series["oblique"]
    target = tmp_path / "missing-folder" / "seg.dcm"
    with pytest.raises(OutputWriteError) as info:
        write_dicom_seg(s.stack, s.volume, _two_labels(s.volume.shape), LABELS, card, target)
    assert info.value.path == target


@pytest.mark.parametrize("name", ["coronal", "oblique"])
def test_nifti_mask_puts_labels_where_the_source_voxels_are(
    series: dict[str, Series], tmp_path: Path, name: str
) -> None:
    s = series[name]
    labels = _two_labels(s.volume.shape)
    path = write_nifti(s.volume.with_voxels(labels), tmp_path / "mask.nii.gz")
    ijk = np.argwhere(labels > 0)[:, ::-1]  # (i, j, k) of every labelled voxel
    lps = s.volume.index_to_lps(ijk)
    values = labels[ijk[:, 2], ijk[:, 1], ijk[:, 0]]

    image = sitk.ReadImage(str(path))
    array = sitk.GetArrayViewFromImage(image)  # [k, j, i]
    for (i, j, k), point, value in zip(ijk, lps, values, strict=True):
        np.testing.assert_allclose(image.TransformIndexToPhysicalPoint((int(i), int(j), int(k))), point, atol=1e-3)
        back = image.TransformPhysicalPointToIndex(tuple(float(v) for v in point))
        assert array[back[2], back[1], back[0]] == value

    img = nib.load(str(path))
    data = np.asarray(img.dataobj)  # [i, j, k]
    ras = np.c_[ijk, np.ones(len(ijk))] @ img.affine.T
    np.testing.assert_allclose(ras[:, :3] * [-1, -1, 1], lps, atol=1e-3)
    back_ijk = np.rint(np.c_[lps * [-1, -1, 1], np.ones(len(lps))] @ np.linalg.inv(img.affine).T)[:, :3].astype(int)
    np.testing.assert_array_equal(data[back_ijk[:, 0], back_ijk[:, 1], back_ijk[:, 2]], values)
    assert data.dtype == np.uint8


def _scored_result(volume: Volume, *, probabilities: bool = True, findings: int = 2) -> Result:
    k, j, i = np.indices(volume.shape)
    heat = np.exp(-(((k - 40) * 2.5) ** 2 + ((j - 90) * 1.5) ** 2 + ((i - 60) * 1.5) ** 2) / 200.0).astype(np.float32)
    scores = np.full(volume.shape[0], 0.01, np.float32)
    scores[[40, 41, 25, 60]] = [1.0, 0.99, 0.8, 0.7]
    found = [
        Finding(1, "nodule", (60.0, 90.0, 10.0 + n), tuple(volume.index_to_lps([60, 90, 10 + n])), 0.5 + n, 100, 0.9)
        for n in range(findings)
    ]
    return Result(
        "ct-nodule-demo", "0.1.0", "cpu",
        slice_probabilities=scores if probabilities else None,
        study_score=0.97, label_map=(heat > 0.5).astype(np.uint8), heatmaps={"attention": heat}, findings=found,
    )  # fmt: skip


def test_key_images_show_the_best_slices_as_the_viewer_draws_them(
    series: dict[str, Series], card: ModelCard, tmp_path: Path
) -> None:
    volume = series["sample"].volume
    result = _scored_result(volume)
    paths = write_key_images(volume, result, tmp_path, card=card, count=3)
    # 41 is within three slices of 40: the next best distinct place is taken instead. Names count
    # slices from 1 (slice index 40 is "slice 41"), as the viewer, the score plot and the PDF do.
    assert [p.name for p in paths] == ["key_01_slice0041.png", "key_02_slice0026.png", "key_03_slice0061.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)  # no temporary left
    assert [key_image_slice(p) for p in paths] == [40, 25, 60]
    with Image.open(paths[0]) as png:
        assert png.format == "PNG"
        n = volume.shape[0]
        assert f"slice 41/{n}" in png.info["Description"] and "probability 1.000" in png.info["Description"]
        shown = np.asarray(png.convert("RGB"))
    assert result.label_map is not None
    expected = render_slice_rgb(
        volume, 40, window=volume_window(volume), labels=result.label_map[40],
        label_colours={1: (230, 25, 75)}, heatmap=result.heatmaps["attention"][40],
        heatmap_threshold=0.1, heatmap_opacity=0.6,
    )  # fmt: skip
    # 192 px of 1.5 mm: enlarged twice, pixel for pixel away from the corner text, letters and scale bar.
    enlarged = np.repeat(np.repeat(expected, 2, axis=0), 2, axis=1)
    np.testing.assert_array_equal(shown[90:-90, 40:-40], enlarged[90:-90, 40:-40])
    assert np.all(shown == (230, 25, 75), axis=-1).any()  # the outline is drawn
    # The viewer's orientation letters (amber) on the left and right edges, a scale bar, corner text.
    h = shown.shape[0]
    amber = np.all(np.abs(shown.astype(int) - (255, 220, 120)) < 40, axis=-1)
    assert amber[h // 2 - 12 : h // 2 + 12, :24].any() and amber[h // 2 - 12 : h // 2 + 12, -24:].any()
    assert not np.array_equal(shown[:40, -90:], enlarged[:40, -90:])  # "Axial", "slice 41/…" on a backing
    assert not np.array_equal(shown[-40:], enlarged[-40:])  # W/L and the scale bar


def test_key_images_use_the_studys_window_and_the_slices_the_model_marks(card: ModelCard, tmp_path: Path) -> None:
    """A brain mask's probability is ~1 from the vertex to the cord: the key slices are those it
    marks most, drawn with the study's own (brain) window, not the model's input window."""
    voxels = np.full((40, 64, 64), 30, np.int16)
    voxels[:, 20:44, 20:44] = 45
    volume = Volume(
        voxels, (1.0, 1.0, 3.0), (0.0, 0.0, 0.0), np.eye(3),
        VolumeMetadata(modality="CT", windows=(WindowPreset(40.0, 80.0, "brain"),)),
    )  # fmt: skip
    labels = np.zeros(volume.shape, np.uint8)
    for k in range(5, 35):
        half = 2 if k < 12 else 14 - abs(k - 23)  # the cord: a dot on each slice; the brain widest at 23
        labels[k, 32 - half : 32 + half, 32 - half : 32 + half] = 1
    probability = np.where(labels > 0, 0.999, 0.0).astype(np.float32)
    result = Result("seg", "1", "cpu", label_map=labels, probability_map=probability)
    paths = write_key_images(volume, result, tmp_path, card=card, count=3)
    chosen = [key_image_slice(p) for p in paths]
    assert all(12 <= k < 35 for k in chosen), chosen  # none in the cord
    assert chosen[0] == 23
    with Image.open(paths[0]) as png:
        shown = np.asarray(png.convert("RGB"))
    brain_window = render_slice_rgb(volume, 23, window=WindowLevel(40.0, 80.0))
    card_window = render_slice_rgb(volume, 23, window=WindowLevel(*(card.input.window or (40.0, 400.0))))
    grey = shown[shown.shape[0] // 2, shown.shape[1] // 2 - 60]  # inside the square, outside the mask's outline
    scale = shown.shape[0] // brain_window.shape[0]
    assert tuple(grey) == tuple(brain_window[32, 32 - 60 // scale])
    assert tuple(grey) != tuple(card_window[32, 32 - 60 // scale])


def test_key_images_without_slice_scores_start_at_the_largest_finding(
    series: dict[str, Series], card: ModelCard, tmp_path: Path
) -> None:
    volume = series["sample"].volume
    result = _scored_result(volume, probabilities=False, findings=3)  # the largest finding lies on slice 12
    paths = write_key_images(volume, result, tmp_path, card=card, count=2)
    assert [key_image_slice(p) for p in paths] == [12, 40]


def test_key_images_have_square_pixels_and_distinct_slices(card: ModelCard, tmp_path: Path) -> None:
    voxels = np.tile(np.linspace(-1000, 1000, 90, dtype=np.float32)[None, None, :], (2, 70, 1)).astype(np.int16)
    coronal = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
    volume = Volume(voxels, (0.7, 2.0, 3.0), (0.0, 0.0, 0.0), coronal, VolumeMetadata(modality="CT"))
    result = Result("m", "1", "cpu", slice_probabilities=np.array([0.2, 0.9], np.float32))
    paths = write_key_images(volume, result, tmp_path, card=card, count=3)
    assert [key_image_slice(p) for p in paths] == [1, 0]  # only two slices: no repeat
    with Image.open(paths[0]) as png:
        width, height = png.size
    # A coronal slice: columns run along i (90 × 0.7 mm), rows along j (70 × 2 mm), drawn to scale.
    assert height / width == pytest.approx((70 * 2.0) / (90 * 0.7), rel=0.02)
    assert max(width, height) >= 256


def _pdf_text(path: Path) -> str:
    tool = shutil.which("pdftotext")
    if tool is None:
        pytest.fail("pdftotext is missing: run scripts/system-deps.sh (poppler-utils)")
    return subprocess.run([tool, "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout


def _pdf_info(path: Path) -> dict[str, str]:
    tool = shutil.which("pdfinfo")
    if tool is None:
        pytest.fail("pdfinfo is missing: run scripts/system-deps.sh (poppler-utils)")
    done = subprocess.run([tool, str(path)], capture_output=True, text=True, check=True)
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in done.stdout.splitlines() if ":" in line)}


def test_pdf_report_holds_header_model_result_findings_images_and_warnings(
    series: dict[str, Series], card: ModelCard, tmp_path: Path
) -> None:
    volume = series["sample"].volume
    assert volume.metadata.patient_name == "RADLENS^PHANTOM"  # the real name, passed to no writer
    result = _scored_result(volume, findings=30)
    (tmp_path / "keys").mkdir()
    keys = write_key_images(volume, result, tmp_path / "keys", card=card)
    study = {"patient": "PSEUDO-0042", "study date": "20240601", "modality": "CT"}
    qa = ["slice-gap: a gap of 5 mm between slices 10 and 11"]
    path = write_pdf_report(tmp_path / "report.pdf", study=study, card=card, result=result, key_images=keys, qa=qa)
    data = path.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    assert len(re.findall(rb"/Type\s*/Page\b(?!s)", data)) == 3  # page 1, findings continued, key images
    info = _pdf_info(path)
    assert info["Pages"] == "3" and info["Page size"].startswith("595")  # A4
    assert info["Title"] == f"RadLens report: {card.name} {card.version}" and info["Creator"].startswith("RadLens")
    assert not any("PSEUDO" in v or "PHANTOM" in v for v in info.values())  # no identity in the metadata

    text = _pdf_text(path)
    for expected in (
        "RadLens analysis report", "NOT FOR CLINICAL USE", "Disclaimer: not for clinical use",
        "patient: PSEUDO-0042", "study date: 20240601", f"{card.name} {card.version}", card.intended_use[:40],
        "Study score 0.970", "Findings (30)", "Findings (continued)", "slice-gap: a gap of 5 mm",
        "Key images", "1. slice 41, probability 1.000", "3. slice 61, probability 0.700", "page 3 of 3",
    ):  # fmt: skip
        assert expected in text, expected
    assert re.search(r"^\s*30\s+nodule\s+\(", text, re.MULTILINE)  # the last finding made it, on page 2
    assert "PHANTOM" not in text and b"PHANTOM" not in data
    # The key images are in the PDF pixel for pixel (lossless), read back by poppler's pdfimages.
    tool = shutil.which("pdfimages")
    if tool is None:
        pytest.fail("pdfimages is missing: run scripts/system-deps.sh (poppler-utils)")
    subprocess.run([tool, "-png", str(path), str(tmp_path / "embedded")], check=True)
    embedded = sorted(tmp_path.glob("embedded-*.png"))
    assert len(embedded) == len(keys) == 3
    for key, image in zip(keys, embedded, strict=True):
        with Image.open(key) as a, Image.open(image) as b:
            assert np.array_equal(np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB")))


def test_pdf_report_of_a_clinical_card_without_score_or_findings(card: ModelCard, tmp_path: Path) -> None:
    clinical = dataclasses.replace(card, not_for_clinical_use=False)
    result = Result(clinical.name, clinical.version, "cpu")
    path = tmp_path / "report.pdf"
    path.write_bytes(b"an older report")
    write_pdf_report(path, study={}, card=clinical, result=result, key_images=[], qa=[])
    assert [p.name for p in tmp_path.iterdir()] == ["report.pdf"]  # replaced in place, no temporary left
    assert _pdf_info(path)["Pages"] == "1"
    text = _pdf_text(path)
    assert "NOT FOR CLINICAL USE" not in text and "does not replace" in text
    assert "No study-level score" in text and "No finding." in text and "No geometry warning." in text


def test_heatmap_quantisation_and_label_map_match_their_formulas(card: ModelCard) -> None:
    rng = np.random.default_rng(3)
    # 600 slices of 64²: several of the quantiser's chunks, values outside [0, 1] and on the half steps.
    heat = (rng.random((600, 64, 64), dtype=np.float32) * 1.4 - 0.2).astype(np.float32)
    heat[0, 0, :4] = [0.5 / 255, 1.5 / 255, 254.5 / 255, np.float32(card.threshold)]
    heat[100:400] = 0.0  # whole chunks without a map (skipped), and chunks half zero, half map
    heat[400:405] = -0.25  # negative only: clipped to 0 like the rest
    want = np.rint(np.clip(heat, 0.0, 1.0) * np.float32(255.0)).astype(np.uint8)
    assert np.array_equal(quantised_heatmap(heat), want)

    result = Result(card.name, card.version, "cpu", heatmaps={"attention": heat})
    for value in (1, 2):
        named = dataclasses.replace(card, labels=[dataclasses.replace(card.labels[0], value=value)])
        labels = output_label_map(result, named)
        assert labels is not None and labels.dtype == np.uint8
        assert np.array_equal(labels, (heat >= card.threshold).astype(np.uint8) * value)
