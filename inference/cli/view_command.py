"""``radlens view [PATH] [--stack ID] [--model NAME|default] [--screenshot FILE.png]``.

The one place the command line reaches the viewer (an import-linter contract in pyproject.toml
allows this module, and only it, to import ``viewer.app``); Qt is imported only when it runs.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", help="folder or file to open (default: the bundled sample study)")
    parser.add_argument("--stack", default=None, help="stack id from `radlens scan`")
    parser.add_argument(
        "--model",
        default=None,
        metavar="NAME",
        help='run a model on this stack once it is shown ("default": the default model for its modality); '
        "studies opened later run nothing by themselves",
    )
    parser.add_argument(
        "--screenshot",
        default=None,
        metavar="FILE.png",
        help="render the window after loading, save it as PNG and exit",
    )


def run(args: argparse.Namespace) -> int:
    from viewer.app import run_viewer

    return run_viewer(args.path, args.stack, args.screenshot, model=args.model)
