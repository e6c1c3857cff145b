"""``radlens evaluate --model CARD_OR_RUN_DIR --dataset DIR [--split test] --out DIR``.

Scores a dataset split with a slice classifier and writes metrics.json and report.html (ROC,
calibration and example plots) into ``--out``; the dataset folder is never written to.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from inference.cli.progress_bar import TerminalProgress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a card file, a training run folder, or a registered model name")
    parser.add_argument("--dataset", required=True, help="dataset folder (from `radlens dataset build`)")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"), help="which split (default: test)")
    parser.add_argument("--out", required=True, help="folder for metrics.json, report.html and the plots")
    parser.add_argument("--no-explain", action="store_true", help="skip explanation maps (no pointing game, map Dice)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: auto)")
    parser.add_argument("--batch-size", type=int, default=None, help="slices per batch (default: the card's)")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")


def _num(value: Any, fmt: str = ".3f") -> str:
    return format(value, fmt) if isinstance(value, int | float) and math.isfinite(value) else "–"


def format_summary(m: dict[str, Any]) -> str:
    c = m["confusion"]
    lines = [
        f"{m['model']['name']} {m['model']['version']} on {m['split']} ({m['n_slices']} slices: "
        f"{m['n_positive']} with a lesion, {m['n_negative']} without)",
        f"  AUC {_num(m['auc'])}  accuracy {_num(m['accuracy'])}  F1 {_num(m['f1'])}  "
        f"sensitivity {_num(m['sensitivity'])}  specificity {_num(m['specificity'])}  (threshold {m['threshold']:g})",
        f"  confusion: tp {c['tp']}  fp {c['fp']}  tn {c['tn']}  fn {c['fn']}   ECE {_num(m['ece'])}",
        f"  pointing game {_num(m['pointing_game'])} (n = {m['pointing_game_n']})  map Dice {_num(m['map_dice'])}",
        f"  throughput {_num(m['throughput_slices_per_s'], '.0f')} slices/s on {m['device']}",
    ]
    if m.get("report"):
        lines.append(f"report: {m['report']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from inference.training.evaluate import evaluate
    from inference.training.metrics import finite_or_none

    metrics = evaluate(
        args.model,
        args.dataset,
        args.split,
        args.out,
        explain=not args.no_explain,
        device=args.device,
        batch_size=args.batch_size,
        on_progress=TerminalProgress(),
    )
    if args.json:
        slim = {k: v for k, v in metrics.items() if k not in ("roc", "calibration")}
        print(json.dumps(finite_or_none(slim), indent=2))
    else:
        print(format_summary(metrics))
    return 0
