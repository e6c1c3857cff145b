"""Shared fixtures: a real CT head from Debian's invesalius-examples, and the DICOM writer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inference.io.dicom_writer import write_dicom_series
from inference.io.invesalius import CRANIUM as CRANIUM_INV3
from inference.io.invesalius import read_inv3


@pytest.fixture(scope="session")
def ct_head() -> tuple[np.ndarray, tuple[float, float, float]]:
    """A real CT head: ``(voxels int16 (108, 256, 256) HU [k, j, i], (si, sj, sk) mm)``.

    ``Cranium.inv3`` is a gzipped tar holding ``main.plist`` (shape, dtype, spacing) and
    ``matrix.dat``, the raw volume in C order (slices, rows, columns), little-endian int16
    with no header (as numpy wrote it on x86).
    """
    if not CRANIUM_INV3.is_file():
        pytest.fail(
            f"{CRANIUM_INV3} is missing: the CT head test data comes from Debian; "
            "run `apt-get install invesalius-examples`"
        )
    voxels, spacing = read_inv3(CRANIUM_INV3)
    assert voxels.shape == (108, 256, 256)
    return voxels, spacing


@pytest.fixture
def write_series() -> Callable[..., list[Path]]:
    """:func:`inference.io.dicom_writer.write_dicom_series`, for tests that build DICOM input."""

    def _write(*args: Any, **kwargs: Any) -> list[Path]:
        return write_dicom_series(*args, **kwargs)

    return _write


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``cuda`` need an NVIDIA GPU: they are deselected (not skipped) unless the
    marker expression names them (``-m cuda``, as ``benchmarks/gpu_check.sh`` runs them)."""
    if "cuda" in (config.option.markexpr or ""):
        return
    kept = [item for item in items if item.get_closest_marker("cuda") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item.get_closest_marker("cuda") is not None])
        items[:] = kept
