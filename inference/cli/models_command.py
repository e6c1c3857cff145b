"""``radlens models [--json]``: the models RadLens can run, and whether their weights are in place;
``radlens models add PATH [--name NAME] [--trust]`` and ``radlens models remove NAME``."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action", nargs="?", choices=("list", "add", "remove"), default="list", help="list (default), add, remove"
    )
    parser.add_argument("target", nargs="?", help="add: a MONAI bundle folder or an .onnx file; remove: a name")
    parser.add_argument("--name", help="add: the name to give the model (default: from its metadata)")
    parser.add_argument(
        "--trust", action="store_true", help="add: run a bundle whose config reaches beyond MONAI and PyTorch"
    )
    onnx = parser.add_argument_group("add an ONNX model: its card, completed by you")
    onnx.add_argument("--modality", help="CT, MR…")
    onnx.add_argument("--task", choices=("slice-classification", "volume-classification", "segmentation"))
    onnx.add_argument("--labels", help='output values and names, e.g. "1:lesion,2:oedema"')
    onnx.add_argument("--window", help="input window CENTRE,WIDTH (CT)")
    onnx.add_argument("--normalise", choices=("window", "percentile", "zscore", "none"))
    onnx.add_argument("--size", help="slice models: input H,W")
    onnx.add_argument("--context-slices", type=int, default=0, help="slice models: neighbours on each side")
    onnx.add_argument("--patch", help="segmentation: sliding-window patch K,J,I (slices, rows, columns)")
    onnx.add_argument("--spacing", help="segmentation: resample to I,J,K mm first")
    onnx.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--verify", action="store_true", help="check every weights file against its sha256")


def _numbers(text: str | None, n: int, kind: type, flag: str) -> tuple[Any, ...] | None:
    if text is None:
        return None
    parts = [p for p in text.replace("x", ",").split(",") if p.strip()]
    if len(parts) != n:
        raise ValueError(f"{flag} takes {n} numbers, got {text!r}")
    return tuple(kind(p) for p in parts)


def _onnx_options(args: argparse.Namespace) -> Any:
    from inference.models.model_import import OnnxCardOptions

    labels = {}
    for item in (args.labels or "").split(","):
        if item.strip():
            value, _, label = item.partition(":")
            labels[int(value)] = label.strip() or f"label {value}"
    return OnnxCardOptions(
        modality=args.modality or "",
        task=args.task or "",
        labels=labels,
        window=_numbers(args.window, 2, float, "--window"),
        normalise=args.normalise or "",
        size=_numbers(args.size, 2, int, "--size"),
        context_slices=args.context_slices,
        patch_size=_numbers(args.patch, 3, int, "--patch"),
        target_spacing=_numbers(args.spacing, 3, float, "--spacing"),
        threshold=args.threshold,
    )


def run(args: argparse.Namespace) -> int:
    if args.action in ("add", "remove"):
        return _add_or_remove(args)
    return _list(args)


def _add_or_remove(args: argparse.Namespace) -> int:
    import sys

    from inference.errors import RadLensError
    from inference.models.card import load_card
    from inference.models.model_import import add_model, remove_model

    if not args.target:
        print(
            f"radlens models {args.action}: error: give a {'path' if args.action == 'add' else 'name'}", file=sys.stderr
        )
        return 2
    try:
        if args.action == "add":
            try:
                options = _onnx_options(args)
            except ValueError as exc:
                print(f"radlens models add: error: {exc}", file=sys.stderr)
                return 2
            card = load_card(add_model(args.target, args.name, trust=args.trust, onnx=options))
            labels = ", ".join(lab.name for lab in card.labels) or "no named labels"
            print(f"added {card.name} {card.version} [{card.task.value}, {'/'.join(card.modality) or 'any modality'}]")
            print(f"    labels: {labels}; card: {card.path}")
        else:
            print(f"removed {args.target} ({remove_model(args.target)})")
    except RadLensError as exc:
        print(f"radlens models {args.action}: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _list(args: argparse.Namespace) -> int:
    from inference.models.registry import discover
    from inference.models.safe_load import sha256_of

    reg = discover()
    rows = []
    for card in reg.cards:
        path = card.weights_path
        status = "present" if path.is_file() else "missing"
        if args.verify and path.is_file():
            status = "verified" if sha256_of(path) == card.sha256 else "CHECKSUM MISMATCH"
        rows.append(
            {**card.summary(), "weights": str(path), "weights_status": status, "default_for": list(card.default_for)}
        )
    if args.json:
        print(json.dumps({"models": rows, "problems": reg.problems}, indent=2))
        return 0
    if not rows:
        print("no models found")
    for r in rows:
        default = f"  default for {', '.join(r['default_for'])}" if r["default_for"] else ""
        print(
            f"{r['name']} {r['version']}  [{r['task']}, {'/'.join(r['modality']) or 'any'}]  "
            f"weights {r['weights_status']}{default}"
        )
        print(
            f"    {r['intended_use']}  Licence: {r['licence']}."
            + ("  Not for clinical use." if r["not_for_clinical_use"] else "")
        )
    for p in reg.problems:
        print(f"problem: {p}")
    return 0
