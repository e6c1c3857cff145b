"""``radlens train`` under DistributedDataParallel: two gloo processes on the loopback interface
train the tiny CNN of ``test_training``; the result is close to one process's, and a run whose
rank 0 died part-way (restarted by torchrun) ends with exactly the uninterrupted run's weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from inference.training.config import dumps_toml
from inference.training.distributed import DistributedError, Ranks, per_rank_batch, ranks_from_environment
from inference.training.train import BEST_WEIGHTS, CARD, CHECKPOINT, load_checkpoint, train
from tests.inference.test_training import config_dict, make_dataset, read_metrics

EPOCHS = 3


def _run(cmd: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``cmd`` in its own session; on a timeout the whole group goes (torchrun's workers too)."""
    proc = subprocess.Popen(
        cmd, env=_env(), start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"timed out after {timeout} s: {err[-2000:]}") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")}
    return {**env, "PYTHONPATH": os.getcwd(), "MASTER_ADDR": "127.0.0.1", "OMP_NUM_THREADS": "1"}


def _write_config(path: Path, dataset: Path, run_dir: Path) -> Path:
    data: dict[str, Any] = config_dict(dataset, run_dir, epochs=EPOCHS, batch_size=16)
    data["augment"]["flip"] = False
    path.write_text(dumps_toml(data))
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("ddp-data") / "blobs", per_source=20)


@pytest.fixture(scope="module")
def two_process_run(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ddp-run")
    config = _write_config(root / "train.toml", dataset, root / "run")
    cmd = [sys.executable, "-m", "inference.cli.main", "train", str(config), "--nproc", "2", "--max-restarts", "0"]
    done = _run(cmd)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(f"epoch   1/{EPOCHS}") == 1, done.stdout  # rank 0 alone reports
    return root / "run"


def test_ranks_come_from_torchruns_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(k, v)
    assert ranks_from_environment() == Ranks(1, 2, 1, 2)
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(DistributedError, match="RANK=2 WORLD_SIZE=2"):
        ranks_from_environment()
    assert per_rank_batch(16, Ranks(0, 2)) == 8
    with pytest.raises(DistributedError, match="multiple of 3"):
        per_rank_batch(16, Ranks(0, 3))


@pytest.mark.slow
def test_two_gloo_processes_train_close_to_one_process(two_process_run: Path, dataset: Path, tmp_path: Path) -> None:
    assert (two_process_run / CARD).is_file() and (two_process_run / BEST_WEIGHTS).is_file()
    ddp = read_metrics(two_process_run)
    assert [r["epoch"] for r in ddp] == list(range(1, EPOCHS + 1))
    assert not list(two_process_run.glob(".*")), "temporary files left in the run folder"
    single_dir = tmp_path / "single"
    train(_single(dataset, single_dir))
    one = read_metrics(single_dir)
    # Not equal: the two runs see the slices in different orders (DistributedSampler's permutation
    # against the DataLoader's), and BatchNorm normalises each rank's 8 slices on their own rather
    # than the step's 16. The gradients of a step are otherwise the same average over 16 slices.
    assert ddp[-1]["val_auc"] == pytest.approx(one[-1]["val_auc"], abs=0.05)
    assert ddp[-1]["val_loss"] == pytest.approx(one[-1]["val_loss"], rel=0.35, abs=0.05)
    assert ddp[-1]["train_loss"] < ddp[0]["train_loss"]


def _single(dataset: Path, run_dir: Path) -> Any:
    from inference.training.config import load_config

    path = _write_config(run_dir.parent / "single.toml", dataset, run_dir)
    return load_config(path)


@pytest.mark.slow
def test_a_run_killed_and_restarted_by_torchrun_ends_with_the_same_weights(
    two_process_run: Path, dataset: Path, tmp_path: Path
) -> None:
    config = _write_config(tmp_path / "train.toml", dataset, tmp_path / "run")
    marker = tmp_path / "crashed"
    worker = Path(__file__).with_name("ddp_crash_worker.py")
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "--max-restarts=1",
        str(worker), str(config), str(marker),
    ]  # fmt: skip
    done = _run(cmd)
    assert done.returncode == 0, done.stdout + done.stderr
    assert marker.exists(), "rank 0 should have died once"
    resumed = load_checkpoint(tmp_path / "run" / CHECKPOINT)
    whole = load_checkpoint(two_process_run / CHECKPOINT)
    assert resumed["epoch"] == whole["epoch"] == EPOCHS
    for name, tensor in whole["model"].items():
        assert torch.equal(resumed["model"][name], tensor), name
    best_a, best_b = load_file(tmp_path / "run" / BEST_WEIGHTS), load_file(two_process_run / BEST_WEIGHTS)
    assert all(torch.equal(best_a[k], best_b[k]) for k in best_b)
    assert [r["train_loss"] for r in read_metrics(tmp_path / "run")] == [
        r["train_loss"] for r in read_metrics(two_process_run)
    ]
    assert json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])["epoch"] == 1
