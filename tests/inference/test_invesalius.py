"""InVesalius project reader: the real CT head of Debian's invesalius-examples, and broken projects."""

from __future__ import annotations

import io
import plistlib
import tarfile
from pathlib import Path

import numpy as np
import pytest

from inference.errors import LoadError
from inference.io.invesalius import read_inv3


def test_the_cranium_is_a_ct_head_in_hu(ct_head: tuple[np.ndarray, tuple[float, float, float]]) -> None:
    voxels, spacing = ct_head
    assert voxels.dtype == np.int16 and spacing == pytest.approx((0.957, 0.957, 1.5), abs=1e-3)
    assert voxels.min() == -1024 and 2000 < voxels.max() < 3100  # air to dense bone
    assert 10 < np.median(voxels[40:70, 100:160, 100:160]) < 50  # brain and ventricles


def _project(path: Path, raw: bytes, shape: list[int]) -> Path:
    plist = plistlib.dumps(
        {"matrix": {"filename": "matrix.dat", "shape": shape, "dtype": "int16"}, "spacing": [1, 1, 2]}
    )
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (("main.plist", plist), ("matrix.dat", raw)):
            info = tarfile.TarInfo(f"project/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_broken_projects_are_load_errors(tmp_path: Path) -> None:
    vox = np.arange(24, dtype="<i2").reshape(2, 3, 4)
    good = _project(tmp_path / "good.inv3", vox.tobytes(), [2, 3, 4])
    out, spacing = read_inv3(good)
    assert np.array_equal(out, vox) and spacing == (1.0, 1.0, 2.0)
    short = _project(tmp_path / "short.inv3", vox.tobytes()[:-2], [2, 3, 4])
    with pytest.raises(LoadError, match="holds 46 bytes"):
        read_inv3(short)
    (tmp_path / "text.inv3").write_text("not a tar")
    with pytest.raises(LoadError, match="not a readable InVesalius project"):
        read_inv3(tmp_path / "text.inv3")
