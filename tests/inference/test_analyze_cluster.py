"""``radlens analyze --cluster``: the same stacks through Ray Data give the local run's outputs,
each stack exactly once; a bad stack gets its row; a killed driver's rerun resumes; a cluster
that cannot run the batch is an error before any work starts."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import RLELossless

from inference.batch.cluster import ClusterError, check_workers, connect
from inference.batch.pipeline import BatchOptions, analyze
from inference.batch.resume import MANIFEST
from inference.io.dicom_writer import write_dicom_series
from inference.sample_study import make_chest_phantom

ray = pytest.importorskip("ray", reason="the cluster extra (pip install 'radlens[cluster]') is not installed")

FORMATS = ("mask", "heatmap", "findings", "seg")


def _write_stacks(root: Path, count: int, seed: str) -> None:
    volume, _ = make_chest_phantom(shape=(16, 64, 64), spacing=(3.0, 3.0, 5.0))
    for n in range(count):
        write_dicom_series(
            np.roll(volume.voxels, 5 * n, axis=2), root / f"s{n}", spacing=volume.spacing, origin=volume.origin,
            modality="CT", uid_seed=f"{seed}-{n}", series_number=n + 1,
        )  # fmt: skip


@pytest.fixture
def local_ray() -> Iterator[None]:
    """A two-CPU Ray on this machine with a small object store (CI's /dev/shm is small), for one
    test: the node-loss test starts a cluster of its own, which needs no Ray running already."""
    ray.init(num_cpus=2, object_store_memory=100 * 1024**2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cluster_in")
    _write_stacks(root, 3, "cluster")
    # A series whose slices all hold corrupt RLE data: scanning (headers) plans it, loading fails
    # (one bad slice alone would be left out and the rest analysed).
    _write_stacks(root / "bad", 1, "cluster-bad")
    for path in sorted((root / "bad" / "s0").iterdir()):
        ds = pydicom.dcmread(path)
        ds.file_meta.TransferSyntaxUID = RLELossless
        ds.PixelData = encapsulate([b"\x01\x00\x00\x00" + b"\x00" * 60 + b"garbage"])
        ds["PixelData"].VR = "OB"
        ds.save_as(path, enforce_file_format=True)
    return root


def _stack_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("folder")]


def _comparable(path: Path) -> bytes:
    """The file's bytes; gzip's without the header's time, findings.json without its timings."""
    if path.suffix == ".gz":
        return gzip.decompress(path.read_bytes())
    if path.name != "findings.json":
        return path.read_bytes()
    doc = json.loads(path.read_text())
    doc.pop("timings_s", None)
    return json.dumps(doc, sort_keys=True).encode()


@pytest.mark.slow
def test_the_cluster_run_gives_the_local_runs_outputs_each_stack_once(
    local_ray: None, stacks: Path, tmp_path: Path
) -> None:
    local = analyze([stacks], BatchOptions(out=tmp_path / "local", jobs=0, formats=FORMATS))
    on_ray = analyze([stacks], BatchOptions(out=tmp_path / "ray", jobs=0, formats=FORMATS, cluster="local"))
    ray_rows, local_rows = _stack_rows(on_ray.rows), _stack_rows(local.rows)
    assert [r["folder"] for r in ray_rows] == [r["folder"] for r in local_rows]
    assert len({r["folder"] for r in ray_rows}) == len(ray_rows) == 4
    assert on_ray.count("ok") == local.count("ok") == 3
    (bad,) = [r for r in ray_rows if r["status"] == "failed"]
    (bad_local,) = [r for r in local_rows if r["status"] == "failed"]
    assert bad["folder"] == bad_local["folder"] and bad["error"] == bad_local["error"]
    for row in (r for r in local_rows if r["status"] == "ok"):
        a, b = tmp_path / "local" / row["folder"], tmp_path / "ray" / row["folder"]
        files = json.loads((a / MANIFEST).read_text())["files"]
        assert set(files) == set(json.loads((b / MANIFEST).read_text())["files"])
        for name in files:
            if name != "seg.dcm":  # a DICOM object: new UIDs and creation times each run
                assert _comparable(a / name) == _comparable(b / name), name
        assert not [p.name for p in b.iterdir() if p.name.startswith(".")]
    again = analyze([stacks], BatchOptions(out=tmp_path / "ray", jobs=0, formats=FORMATS, cluster="local"))
    assert again.count("ok", resumed=True) == 3


def test_cluster_problems_are_errors_before_any_work(
    local_ray: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "in").mkdir()
    with pytest.raises(ClusterError, match="cannot write to the output folder"):
        check_workers(Path("/proc/radlens-not-writable"), [])
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    t0 = time.monotonic()
    with pytest.raises(ClusterError, match="no Ray head answers there"):
        analyze([tmp_path / "in"], BatchOptions(out=tmp_path / "out", cluster="127.0.0.1:1"))
    assert time.monotonic() - t0 < 10 and not (tmp_path / "out").exists()
    with pytest.raises(ClusterError, match="HOST:PORT"):
        connect("not an address")
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ClusterError, match=r"pip install 'radlens\[cluster\]'"):
        connect("local")


@pytest.mark.slow
def test_a_killed_driver_is_resumed_by_the_same_command(stacks: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    cmd = [
        sys.executable, "-m", "inference.cli.main", "analyze", os.fspath(stacks), "--out", os.fspath(out),
        "--cluster", "local", "--format", ",".join(FORMATS),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "RAY_object_store_memory": str(100 * 1024**2)}
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    end = time.monotonic() + 300
    while time.monotonic() < end and proc.poll() is None and not any(out.glob(f"*/{MANIFEST}")):
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(out.glob(f"*/{MANIFEST}")))
    assert 1 <= done_before < 3
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 1, rerun.stderr  # the bad stack fails; the rest is done
    assert f"{3 - done_before} analysed, {done_before} already done, 1 failed" in rerun.stdout, rerun.stdout
    assert len(list(out.glob(f"*/{MANIFEST}"))) == 3


@pytest.mark.slow
def test_a_worker_node_lost_mid_run_leaves_every_stack_once_and_complete(tmp_path: Path) -> None:
    from ray.cluster_utils import Cluster

    _write_stacks(tmp_path / "in", 8, "node-loss")  # enough that the run is still going after the first
    store = 80 * 1024**2
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "object_store_memory": store})
    worker = cluster.add_node(num_cpus=1, object_store_memory=store)
    out = tmp_path / "out"
    result: dict[str, Any] = {}
    try:
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        cluster.wait_for_nodes()
        run = threading.Thread(
            target=lambda: result.update(
                report=analyze([tmp_path / "in"], BatchOptions(out=out, jobs=0, formats=FORMATS, cluster="local"))
            ),
            daemon=True,
        )
        run.start()
        end = time.monotonic() + 300
        while time.monotonic() < end and run.is_alive() and not any(out.glob(f"*/{MANIFEST}")):
            time.sleep(0.05)
        assert run.is_alive(), "the run ended before the node could be removed"
        cluster.remove_node(worker)  # its tasks and actors are lost; Ray redoes them on the head
        run.join(timeout=400)
        assert not run.is_alive(), "the run did not finish after the node was lost"
    finally:
        ray.shutdown()
        cluster.shutdown()
    rows = _stack_rows(result["report"].rows)
    assert len(rows) == len({r["folder"] for r in rows}) == 8
    assert all(r["status"] == "ok" for r in rows), rows
    for d in (out / r["folder"] for r in rows):
        files = json.loads((d / MANIFEST).read_text())["files"]
        assert all((d / name).stat().st_size == size for name, size in files.items())
        assert not [p.name for p in d.iterdir() if p.name.startswith(".")]
