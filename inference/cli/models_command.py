"""``radlens models [--json]``: the models RadLens can run, and whether their weights are in place;
``radlens models add PATH [--name NAME] [--trust]`` and ``radlens models remove NAME``."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action", nargs="?", choices=("list", "add", "remove"), default="list", help="list (default), add, remove"
    )
    parser.add_argument("target", nargs="?", help="add: a MONAI bundle folder; remove: the model's name")
    parser.add_argument("--name", help="add: the name to give the model (default: from its metadata)")
    parser.add_argument(
        "--trust", action="store_true", help="add: run a bundle whose config reaches beyond MONAI and PyTorch"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--verify", action="store_true", help="check every weights file against its sha256")


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
            card = load_card(add_model(args.target, args.name, trust=args.trust))
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
