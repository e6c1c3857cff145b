"""A DICOM SEG made with highdicom reads back voxel-identical onto its series, and only onto it."""

from __future__ import annotations

import warnings
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from inference.io.dicom_loader import load_stack
from inference.io.dicom_writer import write_dicom_series
from inference.io.scan import scan
from inference.io.seg_reader import SegmentationMismatchError, read_dicom_seg_onto
from inference.sample_study import make_chest_phantom
from inference.volume import Volume


def _series(folder: Path, seed: str, direction: np.ndarray) -> tuple[Volume, list[Path]]:
    base, _ = make_chest_phantom(shape=(10, 48, 48))
    files = write_dicom_series(base.voxels, folder, spacing=base.spacing, direction=direction, uid_seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        volume = load_stack(scan(folder).stacks()[0])
    return volume, files


def _seg(volume: Volume, files: list[Path], out: Path) -> np.ndarray:
    by_uid = {str(pydicom.dcmread(f).SOPInstanceUID): f for f in files}
    sources = [pydicom.dcmread(by_uid[u]) for u in volume.metadata.extra["sop_instance_uids"]]
    k, j, i = np.indices(volume.shape)
    labels = np.zeros(volume.shape, np.uint8)
    labels[((k - 5) * 3) ** 2 + (j - 20) ** 2 + (i - 25) ** 2 <= 36] = 1
    labels[((k - 3) * 3) ** 2 + (j - 30) ** 2 + (i - 12) ** 2 <= 16] = 2
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=n,
            segment_label=name,
            segmented_property_category=hd.sr.CodedConcept("91723000", "SCT", "Anatomical Structure"),
            segmented_property_type=hd.sr.CodedConcept("39607008", "SCT", "Lung"),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        )
        for n, name in ((1, "nodule"), (2, "other"))
    ]
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=labels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=99,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="RadLens tests",
        manufacturer_model_name="test",
        software_versions="0",
        device_serial_number="0",
    )
    seg.save_as(out)
    return labels


@pytest.mark.parametrize("orientation", ["head-first", "feet-first"])
def test_seg_reads_back_voxel_identical(tmp_path: Path, orientation: str) -> None:
    direction = np.eye(3) if orientation == "head-first" else np.diag([-1.0, 1.0, -1.0])
    volume, files = _series(tmp_path / "series", orientation, direction)
    labels = _seg(volume, files, tmp_path / "seg.dcm")
    back = read_dicom_seg_onto(volume, tmp_path / "seg.dcm")
    np.testing.assert_array_equal(back.labels, labels)
    assert back.names == {1: "nodule", 2: "other"}


def test_seg_of_another_series_is_refused(tmp_path: Path) -> None:
    volume, files = _series(tmp_path / "a", "a", np.eye(3))
    _seg(volume, files, tmp_path / "seg.dcm")
    other, _ = _series(tmp_path / "b", "b", np.eye(3))
    with pytest.raises(SegmentationMismatchError) as info:
        read_dicom_seg_onto(other, tmp_path / "seg.dcm")
    assert "seg.dcm" in str(info.value)
