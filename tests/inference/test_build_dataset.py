"""`dataset build`: labels by name or CSV, lesion insertion, per-source split, quality report, read-only inputs, CLI."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inference.io.dicom_writer import write_dicom_series
from inference.io.nifti_writer import write_nifti
from inference.sample_study import make_chest_phantom
from inference.training.build_dataset import build_dataset
from inference.training.dataset_format import DatasetError, read_dataset
from inference.training.dataset_spec import DatasetSpec
from inference.training.sources import label_from_name
from inference.volume import Volume

PHANTOM_SHAPE = (14, 48, 48)
PHANTOM_SPACING = (6.0, 6.0, 6.0)


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for p in sorted(folder.rglob("*"))
    }


def phantom_voxels(n: int) -> np.ndarray:
    volume, _ = make_chest_phantom(PHANTOM_SHAPE, PHANTOM_SPACING)
    vox = volume.voxels.astype(np.int32)
    body = vox > -950
    vox[body] += np.random.default_rng(n).integers(-8, 9, size=int(body.sum()))
    return vox.astype(np.int16)


def write_phantom(folder: Path, n: int, voxels: np.ndarray | None = None) -> list[Path]:
    volume, _ = make_chest_phantom(PHANTOM_SHAPE, PHANTOM_SPACING)
    return write_dicom_series(
        phantom_voxels(n) if voxels is None else voxels,
        folder,
        spacing=volume.spacing,
        origin=volume.origin,
        uid_seed=f"dataset-test-{n}",
        series_description=f"phantom {n}",
    )


@pytest.fixture(scope="module")
def head_small(ct_head: tuple[np.ndarray, tuple[float, float, float]]) -> tuple[np.ndarray, tuple[float, float, float]]:
    """The real CT head, every 6th slice and every 4th pixel: (18, 64, 64)."""
    voxels, (si, sj, sk) = ct_head
    return np.ascontiguousarray(voxels[::6, ::4, ::4]), (si * 4, sj * 4, sk * 6)


@pytest.fixture(scope="module")
def named_tree(tmp_path_factory: pytest.TempPathFactory, head_small) -> Path:
    """normal/ (3 series, one the CT head) and nodule/ (3 series)."""
    root = tmp_path_factory.mktemp("named") / "scans"
    for n in range(2):
        write_phantom(root / "normal" / f"patient{n}", n)
    voxels, spacing = head_small
    write_dicom_series(voxels, root / "normal" / "head", spacing=spacing, uid_seed="dataset-test-head")
    for n in range(2, 5):
        write_phantom(root / "nodule" / f"patient{n}", n)
    return root


def test_label_from_name() -> None:
    assert label_from_name("/data/normal/p1") == 0
    assert label_from_name("/data/Normal/p1/x.dcm") == 0
    assert label_from_name("/data/nodule/p1") == 1
    assert label_from_name("/data/abnormal/p1") == 1
    assert label_from_name("/data/scans/normal.nii.gz") == 0


def test_build_from_named_folders(named_tree: Path, tmp_path: Path) -> None:
    before = tree_digest(named_tree)
    out = build_dataset(DatasetSpec([named_tree], size=(64, 64), context_slices=1, seed=3), tmp_path / "ds")
    assert tree_digest(named_tree) == before  # inputs are only read
    ds = read_dataset(out)
    m = ds.manifest
    assert ds.images.shape[1:] == (3, 64, 64) and ds.images.dtype == np.uint8
    assert m["label_source"] == "folder-name"
    assert m["preprocessing"] == {
        **m["preprocessing"],
        "size": [64, 64],
        "window": {"center": -600.0, "width": 1500.0},
        "context_slices": 1,
    }
    assert m["seed"] == 3 and m["inputs"] == [str(named_tree)]
    assert len(m["sources"]) == 6
    for i, src in enumerate(m["sources"]):
        rows = ds.sources == i
        expected = 0 if "/normal/" in src["name"] else 1
        assert src["label"] == expected
        assert (ds.labels[rows] == expected).all()  # a whole-volume label on every slice
        assert not ds.masks[rows].any()
    # Split by source: every source in exactly one split, each split's slices only from its sources.
    ids = [i for s in ("train", "val", "test") for i in m["splits"][s]]
    assert sorted(ids) == list(range(6))
    for split in ("train", "val", "test"):
        idx = ds.split_indices(split)
        assert set(np.unique(ds.sources[idx]).tolist()) == set(m["splits"][split])
    train = ds.split_indices("train")
    assert set(ds.labels[train].tolist()) == {0, 1}
    total = sum(c["total"] for c in m["counts"].values())
    assert total == len(ds.labels)
    # Context channels are the neighbours: the centre channel of one sample is the next sample's previous one.
    first = np.flatnonzero(ds.sources == 0)
    assert np.array_equal(ds.images[first[1], 0], ds.images[first[0], 1])


def test_same_seed_same_dataset(named_tree: Path, tmp_path: Path) -> None:
    a = read_dataset(build_dataset(DatasetSpec([named_tree], size=(32, 32), seed=5), tmp_path / "a"))
    b = read_dataset(build_dataset(DatasetSpec([named_tree], size=(32, 32), seed=5), tmp_path / "b"))
    assert np.array_equal(a.images, b.images) and a.manifest["splits"] == b.manifest["splits"]


def test_labels_csv_with_mask(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for n in range(4):
        write_phantom(data / f"s{n}", n)
    # A lesion mask for s3 on its own grid: a NIfTI with the series' geometry.
    volume, _ = make_chest_phantom(PHANTOM_SHAPE, PHANTOM_SPACING)
    mask = np.zeros(PHANTOM_SHAPE, dtype=np.uint8)
    mask[6:8, 20:26, 12:18] = 1
    write_nifti(Volume(mask, volume.spacing, volume.origin, np.eye(3)), tmp_path / "s3_mask.nii.gz")
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as fp:
        w = csv.writer(fp)
        w.writerow(["path", "label", "mask"])
        w.writerows([["data/s0", 0, ""], ["data/s1", 0, ""], ["data/s2", 1, ""], ["data/s3", 1, "s3_mask.nii.gz"]])
    ds = read_dataset(
        build_dataset(DatasetSpec([], labels=labels, size=(48, 48), split=(1.0, 0.0, 0.0)), tmp_path / "out")
    )
    m = ds.manifest
    assert m["label_source"] == "csv"
    by_name = {Path(s["name"]).name: s for s in m["sources"]}
    for name, expected in (("s0", 0), ("s1", 0), ("s2", 1)):
        rows = ds.sources == by_name[name]["id"]
        assert (ds.labels[rows] == expected).all()
    rows = np.flatnonzero(ds.sources == by_name["s3"]["id"])
    positives = rows[ds.labels[rows] == 1]
    assert sorted(ds.slice_index[positives].tolist()) == [6, 7]
    assert all(ds.masks[i].any() for i in positives)
    assert not ds.masks[rows[ds.labels[rows] == 0]].any()
    # The mask lands where it was drawn: rows 20-25, columns 12-17 of 48 (same size here).
    assert ds.masks[positives[0]][20:26, 12:18].all() and ds.masks[positives[0]].sum() == 36


def test_csv_lesion_mask_hosts_simulated_lesions(tmp_path: Path) -> None:
    """A scan with a real lesion hosts simulated ones when the CSV gives its mask: they keep out
    of the real lesion, whose slices are positives too. Without a mask it cannot host, and a
    build left with nothing says which inputs failed and why."""
    shape, spacing = (20, 96, 96), (3.0, 3.0, 3.0)
    volume, _ = make_chest_phantom(shape, spacing)
    write_dicom_series(volume.voxels, tmp_path / "real", spacing=spacing, origin=volume.origin, uid_seed="real")
    write_phantom(tmp_path / "unmasked", 1)
    mask = np.zeros(shape, dtype=np.uint8)
    mask[2:4, 40:52, 24:36] = 1
    write_nifti(Volume(mask, volume.spacing, volume.origin, np.eye(3)), tmp_path / "real_mask.nii.gz")
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label,mask\nreal,1,real_mask.nii.gz\nunmasked,1,\n")
    insertion = {"kind": "solid", "per_volume": 2}
    out = build_dataset(
        DatasetSpec([], labels=labels, size=(48, 48), lesion_insertion=insertion, seed=3), tmp_path / "ds"
    )
    ds = read_dataset(out)
    (src,) = ds.manifest["sources"]
    assert Path(src["name"]).name == "real"
    assert len(src["lesions"]) == 2 and all(lesion["voxels"] > 0 for lesion in src["lesions"])
    skipped = ds.manifest["quality"]["skipped_sources"]
    assert [Path(s["source"]).name for s in skipped] == ["unmasked"] and "host" in skipped[0]["reason"]
    positives = set(ds.slice_index[ds.labels == 1].tolist())
    simulated = {round(lesion["centre_ijk"][2]) for lesion in src["lesions"]}
    assert {2, 3} | simulated <= positives  # the real lesion's slices and the simulated ones'
    for lesion in src["lesions"]:  # kept out of the real lesion
        i, j, k = (round(c) for c in lesion["centre_ijk"])
        assert not mask[max(k - 1, 0) : k + 2, max(j - 2, 0) : j + 3, max(i - 2, 0) : i + 3].any()
    labels.write_text("path,label\nunmasked,1\n")
    with pytest.raises(DatasetError, match=r"unmasked: labelled abnormal: not used as a host"):
        build_dataset(DatasetSpec([], labels=labels, lesion_insertion=insertion), tmp_path / "ds2")
    assert not (tmp_path / "ds2").exists()


def test_csv_naming_missing_files_is_an_error(tmp_path: Path) -> None:
    write_phantom(tmp_path / "s0", 0)
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\ns0,0\ngone/series,1\nalso-gone.nii.gz,1\n")
    with pytest.raises(DatasetError, match="do not exist") as info:
        build_dataset(DatasetSpec([], labels=labels), tmp_path / "out")
    assert "gone/series" in str(info.value) and "also-gone.nii.gz" in str(info.value)
    assert not (tmp_path / "out").exists()


def test_lesion_insertion_gives_balanced_aligned_samples(tmp_path: Path, head_small) -> None:
    data = tmp_path / "hosts"
    for n in range(3):
        write_phantom(data / f"chest{n}", n)
    voxels, spacing = head_small
    write_dicom_series(voxels, data / "head", spacing=spacing, uid_seed="dataset-test-head")
    out = build_dataset(
        DatasetSpec(
            [data], size=(48, 48), context_slices=0, lesion_insertion={"kind": "solid", "per_volume": 2}, seed=1
        ),
        tmp_path / "ds",
    )
    ds = read_dataset(out)
    m = ds.manifest
    assert m["label_source"] == "lesion-insertion"
    assert m["lesion_insertion"] == {"kind": "solid", "per_volume": 2, "region": "auto", "variants": 1}
    regions = {Path(s["name"]).name: s["lesion_region"] for s in m["sources"]}
    assert regions == {"chest0": "lungs", "chest1": "lungs", "chest2": "lungs", "head": "soft-tissue"}
    for i, src in enumerate(m["sources"]):
        assert len(src["lesions"]) == 2
        rows = np.flatnonzero(ds.sources == i)
        pos, neg = rows[ds.labels[rows] == 1], rows[ds.labels[rows] == 0]
        assert len(pos) > 0 and len(neg) == len(pos), (src["name"], len(pos), len(neg))
        assert all(ds.masks[p].any() for p in pos)
        assert not ds.masks[neg].any()
        # Negatives lie away from the lesions: no negative slice is next to a positive one.
        assert min(abs(int(a) - int(b)) for a in ds.slice_index[neg] for b in ds.slice_index[pos]) >= 2
    # Alignment: in the lungs the lesion is much brighter under its mask than just around it.
    from scipy import ndimage

    chest = [i for i, s in enumerate(m["sources"]) if s["lesion_region"] == "lungs"]
    pos = [p for p in np.flatnonzero(np.isin(ds.sources, chest) & (ds.labels == 1)) if ds.masks[p].sum() >= 4]
    assert pos
    for p in pos:
        mask = ds.masks[p] > 0
        ring = ndimage.binary_dilation(mask, iterations=2) & ~ndimage.binary_dilation(mask, iterations=1)
        assert ds.images[p, 0][mask].mean() > ds.images[p, 0][ring].mean()


def test_whole_stacks_keep_every_slice_in_order_for_the_stack_models(tmp_path: Path) -> None:
    from inference.training.sequences import contiguous_runs

    data = tmp_path / "hosts"
    for n in range(2):
        write_phantom(data / f"chest{n}", n)
    out = build_dataset(
        DatasetSpec(
            [data],
            size=(32, 32),
            context_slices=1,
            whole_stacks=True,
            split=(0.5, 0.5, 0.0),
            lesion_insertion={"kind": "solid", "per_volume": 2},
            seed=2,
        ),
        tmp_path / "ds",
    )
    ds = read_dataset(out)
    assert ds.manifest["preprocessing"]["slices"] == "every slice, in order"
    slices = phantom_voxels(0).shape[0]
    runs = contiguous_runs(ds, np.arange(len(ds.labels)))
    assert [r.size for r in runs] == [slices, slices]  # one unbroken run per volume
    for run in runs:
        labels, masks = np.asarray(ds.labels[run]), np.asarray(ds.masks[run])
        assert np.array_equal(labels, masks.reshape(slices, -1).any(axis=1))  # every slice, labelled by its mask
        assert labels.any() and not labels.all()
    with pytest.raises(DatasetError, match="--whole-stacks keeps every slice"):
        build_dataset(DatasetSpec([data], whole_stacks=True, positives_per_source=5), tmp_path / "bad")


def test_quality_report(tmp_path: Path) -> None:
    data = tmp_path / "q"
    write_phantom(data / "normal" / "a", 0)
    write_phantom(data / "nodule" / "b", 1)
    write_phantom(data / "nodule" / "c", 2)
    # The same series under other names: re-exported with new UIDs, and copied file for file
    # into a second input (in the same tree, a file copy would merge with its original series).
    write_dicom_series(phantom_voxels(1), data / "nodule" / "b-again", spacing=PHANTOM_SPACING, uid_seed="new-uids")
    other = tmp_path / "other" / "nodule"
    shutil.copytree(data / "nodule" / "b", other / "b-copy")
    # A corrupt file: a slice cut short in its pixel data.
    good = sorted((data / "normal" / "a").iterdir())[0].read_bytes()
    (data / "normal" / "broken.dcm").write_bytes(good[: len(good) - 3000])
    # Near-empty slices: a series whose first four slices are air only.
    vox = phantom_voxels(3)
    vox[:4] = -1000
    write_phantom(data / "normal" / "d", 3, vox)
    # The same pixels with different labels.
    conflict = phantom_voxels(4)
    write_phantom(data / "normal" / "e", 4, conflict)
    write_dicom_series(conflict, data / "nodule" / "e-again", spacing=PHANTOM_SPACING, uid_seed="other-uids")
    before = tree_digest(tmp_path)
    ds = read_dataset(build_dataset(DatasetSpec([data, other], size=(32, 32), split=(1.0, 0.0, 0.0)), tmp_path / "ds"))
    assert {k: v for k, v in tree_digest(tmp_path).items() if not k.startswith("ds")} == before
    q = ds.manifest["quality"]
    assert [Path(u["path"]).name for u in q["unreadable"]] == ["broken.dcm"]
    assert "truncated" in q["unreadable"][0]["reason"].lower() or q["unreadable"][0]["error"] == "TruncatedFileError"
    assert len(q["duplicates"]) == 2
    assert {Path(d[key]).name for d in q["duplicates"] for key in ("kept", "duplicate")} == {"b", "b-again", "b-copy"}
    (conf,) = q["label_conflicts"]
    assert conf["by"] == "pixels" and sorted(Path(s).name for s in conf["sources"]) == ["e", "e-again"]
    assert q["near_empty_slices"]["total"] == 4
    assert list(q["near_empty_slices"]["per_source"]) == [str(data / "normal" / "d")]
    names = sorted(Path(s["name"]).name for s in ds.manifest["sources"])
    kept = {Path(d["kept"]).name for d in q["duplicates"]}
    assert len(kept) == 1 and names == sorted(["a", "c", "d", *kept])  # duplicates and both conflicting copies out
    d_id = next(s["id"] for s in ds.manifest["sources"] if s["name"].endswith("/d"))
    assert sorted(ds.slice_index[ds.sources == d_id].tolist()) == list(range(4, PHANTOM_SHAPE[0]))


def test_errors(tmp_path: Path) -> None:
    write_phantom(tmp_path / "normal" / "a", 0)
    with pytest.raises(DatasetError, match="not found"):
        build_dataset(DatasetSpec([tmp_path / "nowhere"]), tmp_path / "out")
    with pytest.raises(DatasetError, match="no positive"):
        build_dataset(DatasetSpec([tmp_path / "normal"]), tmp_path / "out")
    with pytest.raises(DatasetError, match="inside the input"):
        build_dataset(DatasetSpec([tmp_path]), tmp_path / "normal" / "ds")


def test_phantoms_alone(tmp_path: Path) -> None:
    ds = read_dataset(build_dataset(DatasetSpec([], phantoms=3, size=(32, 32), seed=2), tmp_path / "ph"))
    assert ds.manifest["label_source"] == "phantom-nodules"
    assert len(ds.manifest["sources"]) == 3
    assert (ds.masks[ds.labels == 1].reshape((ds.labels == 1).sum(), -1).any(axis=1)).all()
    assert not ds.masks[ds.labels == 0].any()


def test_cli_end_to_end(named_tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli-ds"
    code = (
        "import sys\n"
        "for name in ('PySide6', 'pyqtgraph'):\n"
        "    sys.modules[name] = None\n"
        "from inference.cli.main import main\n"
        "raise SystemExit(main(sys.argv[1:]))\n"
    )
    args = ["dataset", "build", str(named_tree), "--out", str(out), "--size", "32", "--window", "40", "400"]
    proc = subprocess.run(
        [sys.executable, "-c", code, *args, "--context", "0", "--seed", "4"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ},
    )
    assert proc.returncode == 0, proc.stderr
    assert "data quality:" in proc.stdout and "train" in proc.stdout and "wrote" in proc.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["preprocessing"]["window"] == {"center": 40.0, "width": 400.0}
    assert read_dataset(out).images.shape[1:] == (1, 32, 32)
    bad = subprocess.run(
        [sys.executable, "-c", code, "dataset", "build", str(tmp_path / "missing"), "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 1 and "not found" in bad.stderr and "missing" in bad.stderr
