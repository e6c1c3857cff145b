"""Writing an output so that it appears whole or not at all, the attributes every RadLens DICOM
object (SEG, SR, parametric map) carries about who made it, and building one with highdicom."""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from inference import __version__
from inference.batch.errors import OutputNotSupported, OutputWriteError
from inference.io.atomic import atomic_write
from inference.models.card import ModelCard


def write_output(out_path: Path, data: bytes, what: str) -> Path:
    """Write ``data`` under a temporary name and rename it; :class:`OutputWriteError` names ``what``."""
    try:
        atomic_write(out_path, data)
    except OSError as exc:
        raise OutputWriteError(out_path, f"cannot write the {what} ({exc.strerror or exc})") from exc
    return Path(out_path)


def save_atomically(dataset: Any, out_path: Path, what: str) -> Path:
    """Encode ``dataset`` in memory, then write it with :func:`write_output`."""
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    return write_output(out_path, buffer.getvalue(), what)


def producer_attributes(series_number: int, card: ModelCard) -> dict[str, Any]:
    """highdicom keyword arguments for a new single-instance series made by ``card``'s model:
    fresh UIDs, ``series_number``, manufacturer, model name, RadLens version and the weights'
    sha256 prefix as the device serial number (which weights made it)."""
    import highdicom as hd

    return {
        "series_instance_uid": hd.UID(),
        "series_number": series_number,
        "sop_instance_uid": hd.UID(),
        "instance_number": 1,
        "manufacturer": "RadLens",
        "manufacturer_model_name": card.name[:64],
        "software_versions": f"RadLens {__version__}",
        "device_serial_number": card.sha256[:16],
    }


@contextlib.contextmanager
def highdicom_building(what: str) -> Iterator[None]:
    """Around highdicom's constructors: its notes on codes and value lengths silenced, and what it
    refuses (ValueError, TypeError, AttributeError) raised as :class:`OutputNotSupported` for ``what``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    except (ValueError, TypeError, AttributeError) as exc:
        raise OutputNotSupported(what, f"highdicom cannot build it from these sources: {exc}") from exc
