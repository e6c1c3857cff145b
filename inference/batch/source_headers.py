"""The headers of a stack's source instances, read once for all the DICOM objects (SEG, SR)
written about that stack, and made the way the outputs may carry them once.

Only the first instance's header is read again from disk. The others are that header with their
own per-instance attributes (:data:`PER_INSTANCE`), taken from the scan that found the stack:
re-reading 96 headers with pydicom took longer than building the SEG from them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.errors import InvalidDicomError

from inference.batch.errors import OutputNotSupported
from inference.errors import LoadError
from inference.io.dicom_record import FrameGeometry
from inference.io.stacks import Stack

#: Type 2 attributes highdicom copies from the first source; a de-identifier may have removed them.
_TYPE2_COPIED = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
    "AccessionNumber", "StudyID", "StudyDate", "StudyTime", "ReferringPhysicianName",
)  # fmt: skip


#: What differs between the instances of one stack and what the SEG and SR take from each instance
#: (the study, series, frame of reference and patient attributes come from the first).
PER_INSTANCE = (
    "SOPClassUID", "SOPInstanceUID", "InstanceNumber",
    "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness",
)  # fmt: skip


def with_type2_present(ds: pydicom.Dataset) -> pydicom.Dataset:
    """Add the copied Type 2 attributes a source lacks, empty (as a de-identifier that empties them would)."""
    for keyword in _TYPE2_COPIED:
        if keyword not in ds:
            setattr(ds, keyword, None)
    return ds


class SourceHeaders:
    """A stack's source headers (no pixel data), each read once and passed once through
    ``transform`` (e.g. :meth:`inference.batch.identity.Identity.dataset`, which works in place).

    The datasets are shared by every output of the stack: writers must not change them.
    """

    def __init__(self, stack: Stack, transform: Callable[[pydicom.Dataset], pydicom.Dataset] | None = None) -> None:
        self.stack = stack
        self.transform = transform
        self._read: dict[str, pydicom.Dataset] = {}

    def check(self, what: str) -> None:
        """:class:`OutputNotSupported` for ``what`` when the stack has no DICOM instances to reference."""
        if self.stack.kind != "dicom":
            raise OutputNotSupported(what, "the input is not DICOM: there are no instances to reference")
        if not self.stack.slices:
            raise OutputNotSupported(what, f"stack {self.stack.id} has no slices")

    def header(self, path: str) -> pydicom.Dataset:
        ds = self._read.get(path)
        if ds is None:
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
            except (OSError, InvalidDicomError) as exc:
                raise LoadError(path, f"cannot re-read the source header ({exc})") from exc
            if self.transform is not None:
                ds = self.transform(ds)
            ds = with_type2_present(ds)
            self._read[path] = ds
        return ds

    def instances(self) -> list[pydicom.Dataset]:
        """The instances the stack's slices come from, once each, in slice order."""
        firsts = {ref.header_index: ref for ref in reversed(self.stack.slices)}
        order = dict.fromkeys(ref.header_index for ref in self.stack.slices)
        return [self._instance(i, firsts[i].geometry) for i in order]

    def frames(self, what: str) -> tuple[list[pydicom.Dataset], list[int] | None]:
        """The source of each slice for a multi-frame output ``what`` (SEG, parametric map):
        ``(one header per slice k, None)``, or ``([the multi-frame header], frame index of each k)``.

        Raises :class:`OutputNotSupported` for non-DICOM input, or a stack that is only part of
        a multi-frame object (a derived object must cover all of its frames)."""
        self.check(what)
        stack = self.stack
        if any(h.is_multiframe for h in stack.headers):
            frames = [ref.frame_index for ref in stack.slices]
            if len(stack.headers) != 1 or sorted(frames) != list(range(stack.headers[0].number_of_frames)):
                raise OutputNotSupported(what, "the stack is only part of a multi-frame object")
            return [self.header(stack.headers[0].path)], frames
        return self.per_slice(), None

    def per_slice(self) -> list[pydicom.Dataset]:
        """One header per slice ``k`` (a multi-frame object's header once per frame)."""
        return [self._instance(ref.header_index, ref.geometry) for ref in self.stack.slices]

    def _instance(self, index: int, geometry: FrameGeometry) -> pydicom.Dataset:
        """Instance ``index``'s header: read if it is the first, else the first's with this one's own values."""
        first = self.stack.slices[0].header_index
        h = self.stack.headers[index]
        if (
            index == first
            or h.is_multiframe
            or None in (geometry.position, geometry.orientation, geometry.pixel_spacing)
        ):
            return self.header(h.path)
        made = self._read.get(h.path)
        if made is not None:
            return made
        own = pydicom.Dataset()
        own.file_meta = pydicom.dataset.FileMetaDataset()  # as a header read from disk has
        own.file_meta.MediaStorageSOPClassUID = h.sop_class_uid
        own.file_meta.MediaStorageSOPInstanceUID = h.sop_instance_uid
        own.SOPClassUID = h.sop_class_uid
        own.SOPInstanceUID = h.sop_instance_uid
        if h.instance_number:
            own.InstanceNumber = h.instance_number
        own.ImagePositionPatient = [_ds(v) for v in geometry.position or ()]
        own.ImageOrientationPatient = [_ds(v) for v in geometry.orientation or ()]
        own.PixelSpacing = [_ds(v) for v in geometry.pixel_spacing or ()]
        if h.slice_thickness > 0:
            own.SliceThickness = _ds(h.slice_thickness)
        if self.transform is not None:  # remaps the UIDs as in the first; the rest of ``own`` is not kept
            own = self.transform(own)
        template = self.header(self.stack.headers[first].path)
        # A new table of the template's elements (shared: writers never change them), then this one's own.
        made = pydicom.Dataset(dict(template.items()))
        for keyword in ("SliceThickness", "InstanceNumber"):  # absent from the scan: not this instance's
            if keyword in made and keyword not in own:
                delattr(made, keyword)
        for keyword in PER_INSTANCE:
            if keyword in own:
                made.add(own[keyword])
        if hasattr(template, "file_meta"):
            made.file_meta = pydicom.dataset.FileMetaDataset(dict(template.file_meta.items()))
            for element in own.file_meta:
                made.file_meta.add(element)
        self._read[h.path] = made
        return made


def in_frame_order(pixels: npt.NDArray[Any], frame_of_k: list[int] | None) -> npt.NDArray[Any]:
    """``pixels`` (one plane per slice ``k``) in the order of :meth:`SourceHeaders.frames`' sources:
    as they are for single-frame sources, in file frame order for a multi-frame one (highdicom's)."""
    if frame_of_k is None:
        return pixels
    out = np.empty_like(pixels)
    out[frame_of_k] = pixels
    return out


def _ds(value: float) -> str:
    """A decimal string (DS) of at most 16 characters that reads back as ``value`` to 1e-6 relative."""
    from pydicom.valuerep import format_number_as_ds

    return str(format_number_as_ds(float(value)))
