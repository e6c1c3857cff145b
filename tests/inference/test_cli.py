"""The `radlens` command: headless, Qt-free, and never writing into a scanned folder."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from inference.io.dicom_writer import write_dicom_series
from inference.sample_study import make_chest_phantom

from .geometry_oracle import RAS_TO_LPS, in_other_index_order

BLOCK_QT = (
    "import sys\n"
    "for name in ('PySide6', 'pyqtgraph', 'superqt', 'shiboken6'):\n"
    "    sys.modules[name] = None  # any import of them now raises ImportError\n"
    "from inference.cli.main import main\n"
    "code = main(sys.argv[1:])\n"
    "loaded = {m.split('.')[0] for m, mod in sys.modules.items() if mod is not None}\n"
    "heavy = sorted(loaded & {'torch', 'PySide6', 'pyqtgraph'})\n"
    "print('HEAVY-MODULES:', ','.join(heavy), file=sys.stderr)\n"
    "raise SystemExit(code)\n"
)


def radlens(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a fresh interpreter with Qt made unimportable."""
    return subprocess.run(
        [sys.executable, "-c", BLOCK_QT, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(folder.rglob("*"))
    }


@pytest.fixture(scope="module")
def phantom_series(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    volume, _ = make_chest_phantom(shape=(24, 64, 64))
    folder = tmp_path_factory.mktemp("phantom") / "series"
    write_dicom_series(
        volume.voxels,
        folder,
        spacing=volume.spacing,
        origin=volume.origin,
        direction=volume.direction,
        patient_name="DOE^JANE",
        patient_id="SECRET-ID-123",
    )
    return folder, volume.voxels, volume.affine


def test_scan_json_lists_the_stack_without_patient_identifiers(
    phantom_series: tuple[Path, np.ndarray, np.ndarray],
) -> None:
    folder, voxels, _ = phantom_series
    before = tree_digest(folder)
    proc = radlens("scan", str(folder), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    stacks = [st for study in data["studies"] for se in study["series"] for st in se["stacks"]]
    assert len(stacks) == 1
    assert stacks[0]["dimensions"] == list(voxels.shape)
    assert "DOE" not in proc.stdout and "SECRET-ID-123" not in proc.stdout
    assert "HEAVY-MODULES: \n" in proc.stderr or proc.stderr.rstrip().endswith("HEAVY-MODULES:")
    assert tree_digest(folder) == before


def test_convert_writes_nifti_on_the_same_physical_grid(
    phantom_series: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    folder, voxels, affine = phantom_series
    before = tree_digest(folder)
    out = tmp_path / "out.nii.gz"
    proc = radlens("convert", str(folder), str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.rstrip().endswith("HEAVY-MODULES:"), proc.stderr
    img = nib.load(str(out))
    data = np.transpose(np.asarray(img.dataobj), (2, 1, 0))
    assert data.dtype == np.int16
    placed = in_other_index_order(data, RAS_TO_LPS @ img.affine, affine, voxels.shape, atol_mm=1e-3)
    np.testing.assert_array_equal(placed, voxels)
    assert tree_digest(folder) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.nii.gz"]  # no temporary left behind


def test_convert_refuses_to_write_into_the_scanned_folder(phantom_series: tuple[Path, np.ndarray, np.ndarray]) -> None:
    folder, _, _ = phantom_series
    before = tree_digest(folder)
    proc = radlens("convert", str(folder), str(folder / "inside.nii"))
    assert proc.returncode != 0
    assert "refusing to write inside the scanned folder" in proc.stderr
    assert tree_digest(folder) == before


def test_convert_needs_stack_when_several_and_accepts_stack_id(tmp_path: Path) -> None:
    volume, _ = make_chest_phantom(shape=(8, 32, 32))
    src = tmp_path / "in"
    for n in (1, 2):
        write_dicom_series(
            volume.voxels,
            src,
            spacing=volume.spacing,
            uid_seed=f"s{n}",
            series_number=n,
            file_names=[f"s{n}_{k:03d}.dcm" for k in range(8)],
        )
    proc = radlens("convert", str(src), str(tmp_path / "x.nii"))
    assert proc.returncode == 1
    assert "choose one with --stack" in proc.stderr and "1 (" in proc.stderr and "2 (" in proc.stderr
    assert not (tmp_path / "x.nii").exists()
    proc = radlens("convert", str(src), str(tmp_path / "x.nii"), "--stack", "2")
    assert proc.returncode == 0, proc.stderr
    assert nib.load(str(tmp_path / "x.nii")).shape == (32, 32, 8)


def test_convert_of_a_broken_input_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "junk.dcm").write_bytes(b"not a dicom file at all")
    proc = radlens("convert", str(bad), str(tmp_path / "x.nii"))
    assert proc.returncode == 1
    assert "no image stack found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_scan_without_path_uses_the_sample_study_in_the_user_cache(tmp_path: Path) -> None:
    proc = radlens("scan", env={"XDG_CACHE_HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert "RadLens sample chest phantom" in proc.stdout
    assert "1 image stack(s)" in proc.stdout
    assert any(tmp_path.rglob("*.dcm"))


def test_sample_command_writes_a_deterministic_series(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        assert radlens("sample", str(d)).returncode == 0
    pixels_a = sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in a.glob("*.dcm"))
    pixels_b = sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in b.glob("*.dcm"))
    assert pixels_a == pixels_b and len(pixels_a) > 10


#: The modules that import torch at the top on purpose, only ever imported lazily (ruff's TID253 noqa).
TORCH_AT_TOP = ("inference.models.nets", "inference.engine._fast_nets")


def _heavy_after_importing(modules: str) -> str:
    code = (
        "import sys, pkgutil, importlib, inference\n"
        f"for name in {modules}:\n"
        "    importlib.import_module(name)\n"
        "heavy = {'torch', 'PySide6', 'pyqtgraph', 'superqt', 'SimpleITK', 'nibabel'}\n"
        "bad = sorted({m.split('.')[0] for m in sys.modules} & heavy)\n"
        "print(','.join(bad))\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_import_inference_loads_neither_qt_nor_torch() -> None:
    every = f"[m.name for m in pkgutil.walk_packages(inference.__path__, 'inference.') if m.name not in {TORCH_AT_TOP}]"
    assert _heavy_after_importing("['inference']") == ""
    assert _heavy_after_importing(every) == ""
    assert _heavy_after_importing(repr(list(TORCH_AT_TOP))) == "torch"  # the check sees a top-level import
