"""``radlens evaluate --model CARD_OR_RUN_DIR --dataset DIR [--split test] --out DIR``.

Scores a dataset split with a model and writes metrics.json and report.html into ``--out`` (a
slice classifier: ROC, calibration and example plots; a 3-D segmentation model: Dice per stack,
lesions found, example slices; a stack classifier: windows or whole stacks called); the dataset
folder is never written to.
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
    parser.add_argument(
        "--window",
        type=int,
        default=None,
        metavar="N",
        help="stack classifiers (cnn-rnn): score windows of N consecutive slices (default: whole stacks)",
    )


def _num(value: Any, fmt: str = ".3f") -> str:
    return format(value, fmt) if isinstance(value, int | float) and math.isfinite(value) else "–"


def format_summary(m: dict[str, Any]) -> str:
    c = m["confusion"]
    stacks = m["model"].get("task") == "volume-classification"
    unit = ("windows" if m.get("window_slices") else "stacks") if stacks else "slices"
    n = m["n_stacks"] if stacks else m["n_slices"]
    lines = [
        f"{m['model']['name']} {m['model']['version']} on {m['split']} ({n} {unit}: "
        f"{m['n_positive']} with a lesion, {m['n_negative']} without)",
        f"  AUC {_num(m['auc'])}  accuracy {_num(m['accuracy'])}  F1 {_num(m['f1'])}  "
        f"sensitivity {_num(m['sensitivity'])}  specificity {_num(m['specificity'])}  (threshold {m['threshold']:g})",
        f"  confusion: tp {c['tp']}  fp {c['fp']}  tn {c['tn']}  fn {c['fn']}   ECE {_num(m['ece'])}",
    ]
    if "pointing_game" in m:
        lines.append(
            f"  pointing game {_num(m['pointing_game'])} (n = {m['pointing_game_n']})  map Dice {_num(m['map_dice'])}"
        )
    lines.append(f"  throughput {_num(m['throughput_slices_per_s'], '.0f')} slices/s on {m['device']}")
    if m.get("report"):
        lines.append(f"report: {m['report']}")
    return "\n".join(lines)


def format_segmentation(m: dict[str, Any]) -> str:
    model = m["model"]
    lines = [
        f"{model['name']} {model['version']} on {m['split']} ({m['n_stacks']} stacks, {m['n_slices']} slices)",
        f"  Dice {_num(m['dice'])} (mean of the stacks with a lesion; median {_num(m['dice_median'])}, "
        f"pooled {_num(m['dice_pooled'])})",
        f"  lesions found {m['lesions_found']} of {m['lesions']} ({_num(m['lesion_sensitivity'])})  "
        "false components per stack "
        f"{_num(m['false_components_per_stack'], '.2f')}",
        f"  voxels: sensitivity {_num(m['voxel_sensitivity'])} precision {_num(m['voxel_precision'])}  "
        f"slices: sensitivity {_num(m['slice_sensitivity'])} specificity {_num(m['slice_specificity'])}",
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
        window=args.window,
    )
    if args.json:
        slim = {k: v for k, v in metrics.items() if k not in ("roc", "calibration")}
        print(json.dumps(finite_or_none(slim), indent=2))
    elif metrics["model"].get("task") == "segmentation":
        print(format_segmentation(metrics))
    else:
        print(format_summary(metrics))
    return 0
