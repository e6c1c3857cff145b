"""Shared fixtures: a real CT head from Debian's invesalius-examples, and the DICOM writer."""

from __future__ import annotations

import plistlib
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inference.io.dicom_writer import write_dicom_series

CRANIUM_INV3 = Path("/usr/share/doc/invesalius-examples/examples/Cranium.inv3")


@pytest.fixture(scope="session")
def ct_head(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, tuple[float, float, float]]:
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
    dest = tmp_path_factory.mktemp("cranium")
    with tarfile.open(CRANIUM_INV3, "r:gz") as tar:
        members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
        plist_file = tar.extractfile(members["main.plist"])
        assert plist_file is not None
        main = plistlib.load(plist_file)
        matrix = main["matrix"]
        raw_file = tar.extractfile(members[matrix["filename"]])
        assert raw_file is not None
        raw_path = dest / "matrix.dat"
        raw_path.write_bytes(raw_file.read())
    shape = tuple(int(n) for n in matrix["shape"])
    dtype = np.dtype(matrix["dtype"]).newbyteorder("<")
    voxels = np.fromfile(raw_path, dtype=dtype)
    assert voxels.size == int(np.prod(shape)), f"matrix.dat holds {voxels.size} values, expected {shape}"
    voxels = voxels.reshape(shape).astype(np.int16)
    si, sj, sk = (float(s) for s in main["spacing"])
    return voxels, (si, sj, sk)


@pytest.fixture
def write_series() -> Callable[..., list[Path]]:
    """:func:`inference.io.dicom_writer.write_dicom_series`, for tests that build DICOM input."""

    def _write(*args: Any, **kwargs: Any) -> list[Path]:
        return write_dicom_series(*args, **kwargs)

    return _write
