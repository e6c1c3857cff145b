"""The chest phantom and the cached sample DICOM study."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from inference.sample_study import (
    MANIFEST_NAME,
    default_sample_dir,
    is_complete_sample,
    lung_mask,
    make_chest_phantom,
    sample_nodules,
    write_sample_study,
)


def _all_files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def test_phantom_is_deterministic_and_plausible() -> None:
    a, nodules_a = make_chest_phantom()
    b, nodules_b = make_chest_phantom()
    assert a.voxels.dtype == np.int16 and a.shape == (80, 192, 192)
    assert a.voxels.tobytes() == b.voxels.tobytes()
    assert nodules_a == nodules_b == sample_nodules()
    assert a.spacing == (1.5, 1.5, 2.5)
    np.testing.assert_array_equal(a.direction, np.eye(3))
    v = a.voxels
    assert v[0, 0, 0] == -1000  # air outside the body
    lungs = lung_mask(a)
    assert lungs.sum() > 0.1 * v.size
    assert abs(float(np.median(v[lungs])) + 850) < 20
    assert (v >= 600).sum() > 1000  # bone: spine and ribs
    assert ((v >= 180) & (v <= 220)).sum() > 1000  # contrast-filled aorta
    # The spine is posterior (+y in LPS): bone centre of mass behind the volume centre.
    bone_j = np.nonzero(v[40] >= 600)[0]
    assert a.index_to_lps([96, bone_j.mean(), 40])[1] > 0


def test_nodules_lie_in_lung_with_known_geometry() -> None:
    volume, nodules = make_chest_phantom()
    assert 3 <= len(nodules) <= 4
    lungs = lung_mask(volume)
    for nodule in nodules:
        assert 3.0 <= nodule.radius_mm <= 8.0
        np.testing.assert_allclose(volume.index_to_lps(nodule.center_ijk), nodule.center_lps, atol=1e-9)
        i, j, k = (round(c) for c in nodule.center_ijk)
        assert lungs[k, j, i], nodule
        assert 20 <= volume.voxels[k, j, i] <= 70  # nodule HU, not lung
        # Surrounded by lung: a point 2 radii away along +/- x is lung.
        for sign in (-1, 1):
            far = np.asarray(nodule.center_lps) + sign * np.array([2 * nodule.radius_mm, 0, 0])
            fi, fj, fk = (round(c) for c in volume.lps_to_index(far))
            assert lungs[fk, fj, fi] and volume.voxels[fk, fj, fi] < -800


def test_sample_study_round_trips_through_simpleitk(tmp_path: Path) -> None:
    import SimpleITK as sitk

    folder = write_sample_study(tmp_path / "study")
    assert folder == tmp_path / "study"
    names = sorted(p.name for p in folder.iterdir())
    assert MANIFEST_NAME in names and len(names) == 81
    assert all(n.endswith(".dcm") for n in names if n != MANIFEST_NAME)
    ds = pydicom.dcmread(folder / names[-1])
    assert str(ds.PatientName) == "RADLENS^PHANTOM"
    assert ds.StudyDescription == "RadLens sample chest phantom"
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    image = reader.Execute()
    volume, _ = make_chest_phantom()
    np.testing.assert_allclose(image.GetOrigin(), volume.origin, atol=1e-4)
    np.testing.assert_allclose(image.GetSpacing(), volume.spacing, atol=1e-4)
    np.testing.assert_allclose(np.reshape(image.GetDirection(), (3, 3)), volume.direction, atol=1e-4)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), volume.voxels)


def test_two_writes_are_identical(tmp_path: Path) -> None:
    a = write_sample_study(tmp_path / "a")
    b = write_sample_study(tmp_path / "b")
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes()


def test_default_location_reuses_complete_cache_and_writes_nowhere_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.chdir(tmp_path)
    expected = cache / "radlens" / "sample-study-v1"
    assert default_sample_dir() == expected
    folder = write_sample_study()
    assert folder == expected and is_complete_sample(folder)
    # Nothing outside the study folder: no temp dirs, nothing in the working directory.
    outside = {p for p in _all_files(tmp_path) if p != folder and folder not in p.parents}
    assert outside == {cache, cache / "radlens"}

    mtimes = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    inodes = {p.name: p.stat().st_ino for p in folder.iterdir()}
    assert write_sample_study() == folder
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == mtimes
    assert {p.name: p.stat().st_ino for p in folder.iterdir()} == inodes
    assert _all_files(tmp_path) == outside | _all_files(folder) | {folder}


def test_incomplete_or_altered_cache_is_rewritten(tmp_path: Path) -> None:
    folder = write_sample_study(tmp_path / "s")
    victim = sorted(folder.glob("*.dcm"))[10]
    good = victim.read_bytes()
    victim.write_bytes(good[:-100])  # truncated file
    assert not is_complete_sample(folder)
    assert write_sample_study(folder) == folder
    assert victim.read_bytes() == good and is_complete_sample(folder)

    (folder / MANIFEST_NAME).unlink()  # crash before the manifest was written
    assert not is_complete_sample(folder)
    write_sample_study(folder)
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert manifest["file_count"] == 80 and len(manifest["files"]) == 80
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def test_refuses_to_replace_a_foreign_folder(tmp_path: Path) -> None:
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        write_sample_study(target)
    assert (target / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]
