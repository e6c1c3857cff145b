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


def run(args: argparse.Namespace) -> int:
    from inference.training.config import load_config
    from inference.training.train import CARD, train

    config = load_config(args.config)
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
    print(f"run folder: {run_dir}")
    print(f"model card: {run_dir / CARD}")
    return 0
