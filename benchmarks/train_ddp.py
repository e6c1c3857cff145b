"""Benchmark: training samples/s with 1 and with 2 DDP processes (``radlens train --nproc``), in one run.

Run from the repository root::

    .venv/bin/python benchmarks/train_ddp.py [--samples 1536] [--size 96] [--epochs 2] [--device cpu]

A slice dataset of ``--samples`` noise slices (half with a bright blob) is written (not timed);
then the same config (the ``cnn`` slice classifier, batch 32) is trained by ``radlens train`` in
one process and by ``radlens train --nproc 2`` (torchrun; gloo on the CPU, NCCL on GPUs), each
timed end to end including start-up, and as training steps alone (the epochs' ``seconds`` in
``metrics.jsonl`` minus nothing: validation included, it is the same in both). Samples/s =
training samples × epochs / time.

On a 2-core machine expect little gain: one process already uses both cores for its convolutions,
and two processes each get one; the gain comes with more cores or one GPU per process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _timing import REPO_ROOT

from inference.training.config import dumps_toml
from inference.training.dataset_format import write_dataset


def make_dataset(root: Path, samples: int, size: int) -> Path:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    images = rng.normal(70, 12, (samples, 1, size, size))
    labels = np.arange(samples) % 2
    for n in np.nonzero(labels)[0]:
        cy, cx = rng.uniform(12, size - 12, 2)
        images[n, 0] += 110 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 18.0)
    splits = ["train"] * 4 + ["val"]
    sources = np.arange(samples) % len(splits)
    manifest: dict[str, Any] = {
        "sources": [{"id": f"s{i}", "split": sp} for i, sp in enumerate(splits)],
        "preprocessing": {"window": {"center": 40, "width": 400}, "context_slices": 0},
    }
    arrays = {
        "images": np.clip(images, 0, 255).astype(np.uint8),
        "labels": labels.astype(np.uint8),
        "masks": np.zeros((samples, size, size), np.uint8),
        "sources": sources.astype(np.int32),
        "slice_index": np.arange(samples, dtype=np.int32),
    }
    return write_dataset(root, manifest, arrays)


def config(dataset: Path, run_dir: Path, epochs: int, device: str, threads: int) -> str:
    return dumps_toml(
        {
            "data": {"dataset": str(dataset)},
            "model": {"architecture": "cnn", "args": {"channels": [16, 32, 64]}},
            "train": {
                "epochs": epochs,
                "batch_size": 32,
                "lr": 1e-3,
                "device": device,
                "seed": 1,
                "num_threads": threads,
            },
            "augment": {"flip": False, "rotate_deg": 0.0, "scale": 0.0, "intensity": 0.0},
            "card": {"name": "bench-ddp", "version": "0.0.1", "modality": "CT", "licence": "Apache-2.0"},
            "output": {"run_dir": str(run_dir)},
        }
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=1536)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="radlens-bench-ddp-"))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    train_samples = int(args.samples * 4 / 5)
    rows = []
    try:
        dataset = make_dataset(work / "data", args.samples, args.size)
        # (processes, torch threads per process; 0: torch's default, every core; under DDP a share of them)
        for nproc, threads in ((1, 0), (1, 1), (2, 0)):
            name = f"{nproc}-{threads}"
            cfg = work / f"train{name}.toml"
            cfg.write_text(config(dataset, work / f"run{name}", args.epochs, args.device, threads))
            cmd = [sys.executable, "-m", "inference.cli.main", "train", str(cfg)]
            if nproc > 1:
                cmd += ["--nproc", str(nproc), "--max-restarts", "0"]
            t0 = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            metrics = (work / f"run{name}" / "metrics.jsonl").read_text().splitlines()
            records = [json.loads(line) for line in metrics]
            epochs_s = sum(r["seconds"] for r in records)
            rows.append((nproc, threads, wall, epochs_s, records[-1].get("val_auc")))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{train_samples} training slices of {args.size}², {args.epochs} epochs, batch 32, device {args.device}")
    print(f"  {'processes':>9} {'threads':>8} {'wall s':>8} {'epochs s':>9} {'samples/s':>10} {'val AUC':>8}")
    for nproc, threads, wall, epochs_s, auc in rows:
        rate = train_samples * args.epochs / epochs_s
        shown = threads or "default"
        print(f"  {nproc:>9} {shown:>8} {wall:8.1f} {epochs_s:9.1f} {rate:10.1f} {auc:8.3f}")
    best_one = min(rows[0][3], rows[1][3])
    print(f"  2 processes vs the faster single process: {best_one / rows[2][3]:.2f}× the samples/s (epochs)")


if __name__ == "__main__":
    main()
