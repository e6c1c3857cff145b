"""File → Export measurements: a CSV of the figures and, for a DICOM series, a DICOM SR. No Qt."""

from __future__ import annotations

from pathlib import Path

from inference.io.atomic import atomic_write
from inference.io.stacks import Stack

from .annotation_store import measurements_csv
from .measurements import Measurement
from .viewer_model import OpenVolume

__all__ = ["CSV_NAME", "SR_NAME", "export_measurements"]

CSV_NAME = "measurements.csv"
SR_NAME = "measurements-sr.dcm"


def export_measurements(folder: Path, items: list[Measurement], cur: OpenVolume, stack: Stack | None) -> list[Path]:
    """Write ``measurements.csv`` and, when the volume came from a DICOM series,
    ``measurements-sr.dcm``; each appears whole or not at all. Returns the files written."""
    from .measurement_sr import write_measurement_sr

    folder.mkdir(parents=True, exist_ok=True)
    written = [atomic_write(folder / CSV_NAME, measurements_csv(items, cur))]
    if stack is not None and stack.kind == "dicom":
        written.append(write_measurement_sr(folder / SR_NAME, items, cur, stack))
    return written
