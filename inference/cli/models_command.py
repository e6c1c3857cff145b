"""``radlens models [--json]``: the models RadLens can run, and whether their weights are in place."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--verify", action="store_true", help="check every weights file against its sha256")


def run(args: argparse.Namespace) -> int:
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
