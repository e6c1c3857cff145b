"""Saving a DICOM object made by highdicom (SEG, SR) so that it appears whole or not at all."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from inference.batch.errors import OutputWriteError
from inference.io.atomic import atomic_write


def save_atomically(dataset: Any, out_path: Path, what: str) -> Path:
    """Encode ``dataset`` in memory, then write it under a temporary name and rename it."""
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    try:
        atomic_write(out_path, buffer.getvalue())
    except OSError as exc:
        raise OutputWriteError(out_path, f"cannot write the {what} ({exc.strerror or exc})") from exc
    return Path(out_path)
