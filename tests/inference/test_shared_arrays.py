"""Volumes and results handed between the batch run's processes through shared memory."""

from __future__ import annotations

import multiprocessing
import os
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np
import pytest

from inference.batch.pipeline import BatchOptions, analyze, default_writers, load_shared
from inference.batch.shared_arrays import Opened, pack, release, unlink, unpack
from inference.engine.result import Result
from inference.io.dicom_loader import load_stack
from inference.io.dicom_writer import write_dicom_series
from inference.io.scan import scan
from inference.sample_study import make_chest_phantom


def _blocks() -> set[str]:
    return {p.name for p in Path("/dev/shm").glob("psm_*")} if sys.platform.startswith("linux") else set()


def test_arrays_cross_without_copies_and_blocks_are_freed() -> None:
    voxels = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    heat = np.linspace(0, 1, 4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    strided = heat[:, ::2]  # not contiguous: travels inside the pickle
    result = Result("m", "1", "cpu", slice_probabilities=heat[:, 0, 0].copy(), heatmaps={"attention": heat})
    parcel = pack((voxels, result, strided))
    assert len(parcel.created) == 1 and len(parcel.spans) == 3
    opened = Opened()
    got_voxels, got_result, got_strided = unpack(parcel, opened)
    assert np.array_equal(got_voxels, voxels) and got_voxels.dtype == np.int16
    assert np.array_equal(got_result.heatmaps["attention"], heat)
    assert np.array_equal(got_strided, strided)
    # The received arrays are views of the shared block, not copies.
    assert opened.locate(memoryview(got_voxels).cast("B")) is not None
    assert opened.locate(memoryview(got_result.heatmaps["attention"]).cast("B")) is not None

    # Passed on: arrays already in a block are referenced, only new ones are copied.
    extra = np.ones(10, dtype=np.float32)
    onward = pack((got_voxels, extra), opened)
    assert onward.spans[0][0] == parcel.created[0] and onward.spans[1][0] == onward.created[0]
    second = Opened()
    again_voxels, again_extra = unpack(onward, second)
    assert np.array_equal(again_voxels, voxels) and np.array_equal(again_extra, extra)

    del got_voxels, got_result, got_strided, again_voxels, again_extra
    opened.close()
    second.close()
    assert not opened.blocks and not second.blocks
    for p in (parcel, onward):
        release(p)
        for name in p.created:
            with pytest.raises(FileNotFoundError):
                shared_memory.SharedMemory(name=name)


def test_a_loader_process_hands_over_the_volume_it_loaded(tmp_path: Path) -> None:
    volume, _ = make_chest_phantom(shape=(12, 64, 64), spacing=(2.0, 2.0, 3.0))
    write_dicom_series(volume.voxels, tmp_path / "s", spacing=volume.spacing, origin=volume.origin, modality="CT")
    stack = scan(tmp_path / "s").stacks()[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = load_stack(stack)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        parcel, took, error = pool.submit(load_shared, stack).result()
    assert parcel is not None and error == "" and took > 0
    opened = Opened()
    got = unpack(parcel, opened)
    assert np.array_equal(got.voxels, want.voxels) and got.voxels.dtype == want.voxels.dtype
    assert np.allclose(got.affine, want.affine) and got.qa_warnings == want.qa_warnings
    del got
    opened.close()
    release(parcel)


def _write_phantoms(root: Path, count: int, seed: str, shift: int = 0) -> None:
    """``count`` CT phantom series ``root/s0``, ``root/s1``…, each ``shift`` columns further rolled."""
    volume, _ = make_chest_phantom(shape=(16, 64, 64), spacing=(3.0, 3.0, 5.0))
    for n in range(count):
        write_dicom_series(
            np.roll(volume.voxels, shift * n, axis=2), root / f"s{n}", spacing=volume.spacing, origin=volume.origin,
            modality="CT", uid_seed=f"{seed}-{n}", series_number=n + 1,
        )  # fmt: skip


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/dev/shm lists POSIX shared memory on Linux only")
def test_analyze_leaves_no_shared_memory_behind(tmp_path: Path) -> None:
    _write_phantoms(tmp_path / "in", 3, "shm")
    (tmp_path / "in" / "s1" / "broken.dcm").write_bytes(b"DICM" * 10)
    before = _blocks()
    report = analyze([tmp_path / "in"], BatchOptions(out=tmp_path / "out", jobs=1, formats=("mask", "findings")))
    assert report.count("ok") == 3, report.rows
    assert _blocks() - before == set()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/dev/shm lists POSIX shared memory on Linux only")
def test_several_writers_write_what_one_writes_and_free_every_block(tmp_path: Path) -> None:
    import json

    import nibabel as nib

    _write_phantoms(tmp_path / "in", 5, "writers", shift=3)
    before = _blocks()
    formats = ("mask", "findings")
    reports = {
        w: analyze([tmp_path / "in"], BatchOptions(out=tmp_path / f"out{w}", jobs=1, writers=w, formats=formats))
        for w in (1, 3)
    }
    assert _blocks() - before == set()
    rows = {w: {r["folder"]: r for r in rep.rows} for w, rep in reports.items()}
    assert len(rows[1]) == len(rows[3]) == 5 and all(r["status"] == "ok" for r in rows[3].values())
    for folder, row in rows[1].items():
        assert rows[3][folder]["study_score"] == row["study_score"]
        one, three = tmp_path / "out1" / folder, tmp_path / "out3" / folder
        assert np.array_equal(nib.load(one / "mask.nii.gz").get_fdata(), nib.load(three / "mask.nii.gz").get_fdata())
        assert (
            json.loads((one / "findings.json").read_text())["findings"]
            == json.loads((three / "findings.json").read_text())["findings"]
        )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/dev/shm lists POSIX shared memory on Linux only")
def test_a_result_that_cannot_be_handed_to_the_writer_fails_its_stack_and_frees_its_maps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inference.batch import pipeline

    _write_phantoms(tmp_path / "in", 2, "pack-fails")
    real_pack = pipeline.pack
    calls: list[int] = []

    def failing_pack(obj: object, *opened: Opened | None) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("no room to pack")
        return real_pack(obj, *opened)

    monkeypatch.setattr(pipeline, "pack", failing_pack)
    before = _blocks()
    report = analyze([tmp_path / "in"], BatchOptions(out=tmp_path / "out", jobs=1, formats=("heatmap", "findings")))
    statuses = sorted(r["status"] for r in report.rows)
    assert statuses == ["failed", "ok"] and "no room to pack" in " ".join(str(r.get("error")) for r in report.rows)
    assert _blocks() - before == set()  # the failed stack's heat map block too


def test_arrays_made_in_shared_memory_are_referenced_not_copied() -> None:
    maps = Opened()
    heat = maps.empty((3, 4, 5), np.float32)
    assert not heat.any() and heat.dtype == np.float32
    heat[:] = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    parcel = pack({"heat": heat, "small": np.ones(3)}, None, maps)
    assert parcel.spans[0][0] == maps.owned[0] and len(parcel.created) == 1  # only the small array copied
    elsewhere = Opened()
    got = unpack(parcel, elsewhere)
    assert np.array_equal(got["heat"], heat) and np.array_equal(got["small"], np.ones(3))
    del got, heat
    elsewhere.close()
    maps.close()
    release(parcel)
    unlink(maps.owned)
    for name in [*maps.owned, *parcel.created]:
        with pytest.raises(FileNotFoundError):
            shared_memory.SharedMemory(name=name)


def test_without_shared_memory_parcels_carry_their_arrays(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Windows path: everything inside the pickle, nothing to free."""
    from inference.batch import shared_arrays

    monkeypatch.setattr(shared_arrays, "SHARED", False)
    maps = Opened()
    heat = maps.empty((2, 3), np.float32)
    heat[:] = 7
    parcel = pack({"heat": heat}, maps)
    assert parcel.spans == () and parcel.created == () and not maps.owned
    got = unpack(parcel, Opened())
    assert np.array_equal(got["heat"], heat)
    release(parcel)


@pytest.mark.parametrize(
    ("cores", "device", "jobs", "want"),
    [
        (2, "cpu", 1, 1),  # this development machine: one writer, one torch thread
        (4, "cpu", 1, 1),
        (8, "cpu", 2, 3),
        (16, "cpu", 2, 7),
        (16, "cuda", 2, 8),  # capped: each writer holds a stack in shared memory
        (8, "cuda", 2, 5),
        (2, "cuda", 1, 1),
        (1, "cpu", 0, 1),
    ],
)
def test_default_writers_share_the_cores_the_loaders_leave(
    monkeypatch: pytest.MonkeyPatch, cores: int, device: str, jobs: int, want: int
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    assert default_writers(device, jobs) == want
