"""Typed errors of the batch outputs: each names the output and the reason."""

from __future__ import annotations

from pathlib import Path

from inference.errors import RadLensError


class OutputNotSupported(RadLensError):
    """An output cannot be made for this input (e.g. a DICOM SEG of a NIfTI file); nothing is written.

    ``str()`` is the reason alone, so a caller can prefix it with the output's name.
    """

    def __init__(self, output: str, reason: str) -> None:
        self.output = output
        self.reason = reason
        super().__init__(reason)


class OutputWriteError(RadLensError):
    """An output file could not be written; names the destination and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
