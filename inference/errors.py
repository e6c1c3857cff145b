"""Typed errors and warnings: each names the file and the reason."""

from __future__ import annotations

from pathlib import Path


class RadLensError(Exception):
    """Base of every error RadLens raises on purpose."""


class LoadError(RadLensError):
    """A file or stack could not be loaded."""

    def __init__(self, path: str | Path | None, reason: str) -> None:
        self.path = None if path is None else Path(path)
        self.reason = reason
        where = f"{self.path}: " if self.path is not None else ""
        super().__init__(f"{where}{reason}")


class NotDicomError(LoadError):
    """The file is not a DICOM file (nor another format RadLens reads)."""


class EmptyFileError(LoadError):
    """The file has zero bytes."""


class TruncatedFileError(LoadError):
    """The file ends before its header or pixel data does."""


class NoPixelDataError(LoadError):
    """A DICOM object without an image (SR, RTSTRUCT, presentation state...)."""


class MissingGeometryError(LoadError):
    """Position, orientation or pixel spacing is missing, so voxels cannot be placed."""


class AbsurdDimensionsError(LoadError):
    """The header claims dimensions no real image has; nothing is allocated."""


class InvalidValueError(LoadError):
    """An attribute or header field holds a value no image has (NaN rescale, a list where one number
    belongs, an affine that is not finite…); the reason names the attribute and the value."""


class UnsupportedTransferSyntaxError(LoadError):
    """No installed decoder handles this compressed transfer syntax."""


class UnreadableFileError(LoadError):
    """The operating system refused to read the file (permissions, broken link, loop)."""


class InconsistentStackError(LoadError):
    """The slices of a stack do not form one image grid (size, orientation)."""


class AmbiguousVolumesError(LoadError):
    """Several slices lie at one position and nothing in their headers says what tells them apart
    (time, b-value, echo, dimension index): they cannot be stacked into one volume, nor into 4-D."""


class IncompleteVolumesError(LoadError):
    """A 4-D series whose volumes do not all have the same slices (a volume or slice is missing)."""


class IrregularSlicesError(LoadError):
    """The slices of a stack are not on a regular grid (a gap, uneven spacing): an affine alone
    would misplace some of them, so the output is refused unless resampling is asked for."""


class OperationCancelled(RadLensError):
    """A long operation stopped because its cancel token was set."""


class GeometryWarning(UserWarning):
    """The geometry of a stack is irregular; shown to the user, never silently fixed."""


class ModelCardError(RadLensError):
    """A model card is missing a field or has a wrong value."""

    def __init__(self, path: str | Path | None, reason: str) -> None:
        self.path = None if path is None else Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path else reason)


class ModelLoadError(RadLensError):
    """Weights are missing, tampered with, or not in a safe format; nothing was deserialised."""

    def __init__(self, path: str | Path | None, reason: str) -> None:
        self.path = None if path is None else Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path else reason)


class InferenceCancelled(OperationCancelled):
    """An inference run stopped at a batch boundary because it was cancelled."""


class DeviceError(RadLensError):
    """The requested compute device is not available."""


class TrainingError(RadLensError):
    """Training cannot start or cannot go on (bad data, NaN loss, incompatible resume...)."""


class UnsuitableInputError(RadLensError):
    """A model was asked to run on an input it was not made for (and the run was not forced)."""

    def __init__(self, model: str, reasons: list[str]) -> None:
        self.model = model
        self.reasons = list(reasons)
        super().__init__(f"model {model} is not made for this input: {'; '.join(self.reasons)}")
