"""SourceHeaders: every instance's header but the first is made from the scan, and equals the one read from disk
in everything the SEG and SR take from it, under every identity policy."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pydicom
import pytest

from inference.batch.identity import Identity, IdentityPolicy
from inference.batch.source_headers import PER_INSTANCE, SourceHeaders
from inference.io.dicom_writer import write_dicom_series
from inference.io.scan import scan
from inference.io.stacks import Stack
from inference.sample_study import make_chest_phantom

#: Study-level attributes the SEG and SR copy from their sources.
SHARED = ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID", "PatientName", "PatientID", "StudyDate")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Stack:
    root = tmp_path_factory.mktemp("src")
    phantom, _ = make_chest_phantom(shape=(9, 32, 32))
    c, s = np.cos(np.radians(20.0)), np.sin(np.radians(20.0))
    oblique = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    write_dicom_series(
        phantom.voxels, root / "s", spacing=(0.7, 0.7, 2.5), origin=(-11.25, 3.5, 40.125), direction=oblique,
        patient_name="DOE^JANE", patient_id="PID-1", uid_seed="source-headers",
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stacks = scan(root).stacks()
    assert len(stacks) == 1
    return stacks[0]


def _values(ds: pydicom.Dataset, keywords: tuple[str, ...]) -> dict[str, object]:
    out: dict[str, object] = {}
    for kw in keywords:
        value = ds.get(kw)
        if isinstance(value, pydicom.multival.MultiValue):
            out[kw] = [float(v) for v in value]
        elif isinstance(value, pydicom.valuerep.DSfloat):
            out[kw] = float(value)
        else:
            out[kw] = None if value is None else str(value)
    return out


@pytest.mark.parametrize("policy", list(IdentityPolicy))
def test_made_headers_equal_read_ones_where_the_outputs_look(stack: Stack, policy: IdentityPolicy) -> None:
    made = SourceHeaders(stack, Identity(policy, b"k" * 32).dataset).per_slice()
    reader = Identity(policy, b"k" * 32)
    read = [reader.dataset(pydicom.dcmread(stack.headers[r.header_index].path, stop_before_pixels=True))
            for r in stack.slices]  # fmt: skip
    assert len(made) == len(read) == len(stack.slices) == 9
    assert len({str(ds.SOPInstanceUID) for ds in made}) == 9
    for m, r in zip(made, read, strict=True):
        assert _values(m, PER_INSTANCE) == _values(r, PER_INSTANCE)
        assert _values(m, SHARED) == _values(r, SHARED)
        assert m.file_meta.MediaStorageSOPInstanceUID == r.file_meta.MediaStorageSOPInstanceUID
    original = pydicom.dcmread(stack.headers[stack.slices[4].header_index].path, stop_before_pixels=True)
    changed = made[4].SOPInstanceUID != original.SOPInstanceUID
    assert changed == (policy == IdentityPolicy.ANONYMIZE)


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    reads: list[str] = []
    real = pydicom.dcmread

    def counting(path: str, *args: Any, **kwargs: Any) -> pydicom.Dataset:
        reads.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(pydicom, "dcmread", counting)
    return reads


def test_only_the_first_header_is_read(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    reads = _count_reads(monkeypatch)
    headers = SourceHeaders(stack)
    slices = headers.per_slice()
    assert reads == [stack.headers[stack.slices[0].header_index].path]
    first = slices[0]
    assert [float(v) for v in first.ImagePositionPatient] == pytest.approx(stack.slices[0].geometry.position)
    # Building the others changed nothing of the first, whose elements they share.
    assert first.SOPInstanceUID == stack.headers[stack.slices[0].header_index].sop_instance_uid
    assert headers.instances() == slices  # the same objects, once each
    assert slices[3] is headers.per_slice()[3]


def test_a_stack_without_scanned_geometry_reads_every_header(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from inference.io.dicom_header import FrameGeometry

    bare = dataclasses.replace(
        stack, slices=tuple(dataclasses.replace(r, geometry=FrameGeometry(None, None, None)) for r in stack.slices)
    )
    reads = _count_reads(monkeypatch)
    SourceHeaders(bare).per_slice()
    assert len(reads) == 9
