"""``radlens sample [DIR]``: write the deterministic sample CT study."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", nargs="?", type=Path, help="destination folder (default: the user cache)")


def run(args: argparse.Namespace) -> int:
    from inference.sample_study import write_sample_study

    out = write_sample_study(args.dir)
    print(out)
    return 0
