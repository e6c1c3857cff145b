"""Stopping ``radlens analyze`` leaves nothing behind: no process, no shared memory, no temporary
file; SIGTERM and Ctrl+C say the run was interrupted and how to resume, and the rerun completes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from inference.batch.resume import MANIFEST
from inference.io.dicom_writer import write_dicom_series
from inference.sample_study import make_chest_phantom

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and /dev/shm (Linux)"),
]


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("interrupt_stacks")
    volume, _ = make_chest_phantom(shape=(24, 96, 96), spacing=(3.0, 3.0, 5.0))
    for n in range(1, 5):
        write_dicom_series(
            volume.voxels, root / f"s{n}", spacing=volume.spacing, origin=volume.origin, modality="CT",
            uid_seed=f"interrupt-{n}", series_number=n,
        )  # fmt: skip
    return root


def _group(pgid: int) -> list[int]:
    """Live processes of the process group (the run, its loaders, writers and resource tracker)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            found.append(int(entry))
    return found


def _blocks() -> set[str]:
    return {p.name for p in Path("/dev/shm").glob("psm_*")}


def _temporaries(out: Path) -> list[str]:
    return [str(p) for p in out.rglob(".*") if ".tmp" in p.name] if out.exists() else []


def _wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return False


def _command(stacks: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "inference.cli.main", "analyze", os.fspath(stacks), "--out", os.fspath(out),
        "--jobs", "1", "--writers", "1", "--format", "mask,heatmap,findings,pdf",
    ]  # fmt: skip


def _started(out: Path) -> bool:
    return out.is_dir()


def _one_done(out: Path) -> bool:
    return any(out.glob(f"*/{MANIFEST}"))


def _check_complete_rerun(stacks: Path, out: Path, env: dict[str, str]) -> None:
    done = subprocess.run(_command(stacks, out), env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    dirs = sorted(p for p in out.iterdir() if p.is_dir())
    assert len(dirs) == 4
    for d in dirs:
        manifest = json.loads((d / MANIFEST).read_text())
        for name, size in manifest["files"].items():
            assert (d / name).stat().st_size == size
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(r["folder"] for r in summary["stacks"] if r.get("folder")) == [d.name for d in dirs]


@pytest.mark.parametrize(
    ("signum", "moment", "to_group"),
    [
        (signal.SIGTERM, _started, False),  # while scanning / loading the model / the first stack
        (signal.SIGTERM, _one_done, False),  # mid-run: a stack written, others loading and inferring
        (signal.SIGINT, _one_done, True),  # Ctrl+C in a terminal: the whole process group gets it
        (signal.SIGKILL, _one_done, False),  # no chance to clean up: the workers must still go
    ],
    ids=["term-at-start", "term-mid-run", "ctrl-c-mid-run", "kill-mid-run"],
)
def test_a_stopped_run_leaves_nothing_behind_and_resumes(
    stacks: Path, tmp_path: Path, signum: int, moment: Callable[[Path], bool], to_group: bool
) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    blocks_before = _blocks()
    proc = subprocess.Popen(
        _command(stacks, out), env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert _wait_for(lambda: moment(out) or proc.poll() is not None, 240)
        assert proc.poll() is None, f"the run ended before it could be stopped: {proc.communicate()}"
        workers = [p for p in _group(proc.pid) if p != proc.pid]
        if to_group:
            os.killpg(proc.pid, signum)
        else:
            os.kill(proc.pid, signum)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if signum == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
        assert workers, "the run had worker processes when it was killed"
    else:
        assert proc.returncode == 128 + signum, stderr
        assert f"interrupted by {signal.Signals(signum).name}" in stderr and "again to resume" in stderr, stderr
        assert "Traceback" not in stderr, stderr
        # Stopped while still scanning, a run has planned no stack and writes no summary yet.
        summary = out / "summary.json"
        assert summary.is_file() or moment is _started, "a run stopped mid-way lists its stacks"
        rows = json.loads(summary.read_text())["stacks"] if summary.is_file() else []
        assert {r["status"] for r in rows} <= {"ok", "not run"}, rows
    # Every worker and the resource tracker exit; the tracker frees what a killed run left registered.
    assert _wait_for(lambda: not _group(proc.pid), 30), f"processes left: {_group(proc.pid)}"
    assert _blocks() - blocks_before == set()
    if signum != signal.SIGKILL:
        assert _temporaries(out) == []
    _check_complete_rerun(stacks, out, env)
    assert _temporaries(out) == []
