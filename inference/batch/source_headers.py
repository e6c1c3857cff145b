"""The headers of a stack's source instances, read once for all the DICOM objects (SEG, SR)
written about that stack, and made the way the outputs may carry them once."""

from __future__ import annotations

from collections.abc import Callable

import pydicom
from pydicom.errors import InvalidDicomError

from inference.batch.errors import OutputNotSupported
from inference.errors import LoadError
from inference.io.stacks import Stack

#: Type 2 attributes highdicom copies from the first source; a de-identifier may have removed them.
_TYPE2_COPIED = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
    "AccessionNumber", "StudyID", "StudyDate", "StudyTime", "ReferringPhysicianName",
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
        paths = dict.fromkeys(self.stack.headers[ref.header_index].path for ref in self.stack.slices)
        return [self.header(p) for p in paths]

    def per_slice(self) -> list[pydicom.Dataset]:
        """One header per slice ``k`` (a multi-frame object's header once per frame)."""
        return [self.header(self.stack.headers[ref.header_index].path) for ref in self.stack.slices]
