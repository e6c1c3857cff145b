"""``radlens train CONFIG [--resume]``: train a model (slice classifier, CNN + RNN or 3-D U-Net) from a TOML config.

Writes the run folder named by ``[output] run_dir`` (checkpoints, metrics.jsonl,
best.safetensors, card.toml). An interrupted run (Ctrl-C, a crash) keeps its finished epochs;
``--resume`` continues it.
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from inference.cli.progress_bar import TerminalProgress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="training config (TOML): [data], [model], [train], [augment], [card], [output]")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in [output] run_dir after its last finished epoch"
    )
    parser.add_argument(
        "--nproc",
        type=int,
        default=0,
        help="train with DistributedDataParallel in N processes on this machine (torchrun; one per GPU, "
        "or gloo on the CPU); under torchrun itself leave it out",
    )
    parser.add_argument(
        "--max-restarts",
        type=int,
        default=3,
        help="with --nproc: restarts after a process fails, each resuming from the last checkpoint (default 3)",
    )


def _num(value: Any, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, int | float) and math.isfinite(value) else "–"


def format_epoch(record: dict[str, Any], epochs: int) -> str:
    shown = [("AUC", "val_auc"), ("F1", "val_f1"), ("acc", "val_accuracy"), ("Dice", "val_dice")]
    scores = "  ".join(f"{name} {_num(record[key], '.3f')}" for name, key in shown if key in record)
    return (
        f"epoch {record['epoch']:>3}/{epochs}  loss {_num(record['train_loss'], '.4f')}  "
        f"val loss {_num(record['val_loss'], '.4f')}  {scores}  "
        f"lr {_num(record['lr'], '.2e')}  {_num(record['seconds'], '.1f')} s"
        + ("  *best" if record.get("best") else "")
    )


def _launch(args: argparse.Namespace, config: Any) -> int:
    """``--nproc N``: the same command in N torchrun processes. They always get ``--resume``, so that
    torchrun's restarts continue from the last checkpoint; whether this run may resume was decided here."""
    import os
    import subprocess

    from inference.errors import TrainingError
    from inference.training.distributed import DistributedError, torchrun_command
    from inference.training.train import CHECKPOINT

    if os.environ.get("WORLD_SIZE"):
        raise DistributedError("--nproc is for starting torchrun; under torchrun, run radlens train without it")
    if getattr(sys, "frozen", False):
        raise DistributedError("--nproc needs a Python installation with torch (pip install radlens), not the bundle")
    if (config.output.run_dir / CHECKPOINT).exists() and not args.resume:
        raise TrainingError(
            f"{config.output.run_dir} already holds a training run; resume it (radlens train --resume) "
            "or set [output] run_dir to a new folder"
        )
    cmd = torchrun_command(args.nproc, max(0, args.max_restarts), [str(args.config), "--resume"])
    return subprocess.run(cmd, check=False).returncode


def run(args: argparse.Namespace) -> int:
    from inference.training.config import load_config
    from inference.training.distributed import ranks_from_environment
    from inference.training.train import CARD, train

    config = load_config(args.config)
    if args.nproc > 0:
        return _launch(args, config)
    progress = TerminalProgress()

    def on_epoch(record: dict[str, Any]) -> None:
        if progress.enabled:
            sys.stderr.write("\r\033[K")  # clear the bar's line
        print(format_epoch(record, config.train.epochs), flush=True)

    try:
        run_dir = train(config, on_progress=progress, resume=args.resume, on_epoch=on_epoch)
    except KeyboardInterrupt:
        print(
            f"\nradlens train: interrupted; finished epochs are kept in {config.output.run_dir}; "
            f"continue with: radlens train {args.config} --resume",
            file=sys.stderr,
        )
        raise
    if ranks_from_environment().is_main:  # under torchrun, rank 0 speaks for the run
        print(f"run folder: {run_dir}")
        print(f"model card: {run_dir / CARD}")
    return 0
