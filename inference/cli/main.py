"""Entry point of the ``radlens`` command: argument parsing and dispatch.

Each subcommand's module is imported only when it runs, so ``radlens scan`` starts
without torch, SimpleITK or Qt.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from inference import __version__

#: subcommand → (module, help). The module provides ``add_arguments(parser)`` and ``run(args) -> int``.
COMMANDS: dict[str, tuple[str, str]] = {
    "scan": ("inference.cli.scan_command", "list the studies, series and stacks in a folder (headers only)"),
    "convert": ("inference.cli.convert_command", "convert a DICOM stack or image file to NIfTI"),
    "sample": ("inference.cli.sample_command", "write the bundled sample CT study (DICOM) to a folder"),
    "analyze": ("inference.cli.analyze_command", "analyse every image stack in folders of scans (batch, resumable)"),
    "models": ("inference.cli.models_command", "list the registered models and their weights"),
    "train": ("inference.cli.train_command", "train a model from a config file"),
    "evaluate": ("inference.cli.evaluate_command", "evaluate a model on a dataset split"),
    "dataset": ("inference.cli.dataset_command", "build a training dataset from folders of scans"),
    # The viewer is imported only inside run(), so listing it here keeps headless commands Qt-free.
    "view": ("inference.cli.view_command", "open the viewer (default: the bundled sample study)"),
}

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 130

#: Commands whose numpy work is a few small matrices and streaming through volumes: OpenBLAS
#: starting a thread per core when numpy is imported costs start-up time and buys them nothing.
SINGLE_THREAD_BLAS = {"scan", "convert", "sample"}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``radlens`` parser; with ``command``, only that subcommand's module is imported.

    The other subcommands are still listed (with their help) but take no options: a run of one
    command then imports nothing the others need. ``command=None`` imports them all.
    """
    parser = argparse.ArgumentParser(prog="radlens", description="RadLens: CT/MRI viewing with model explanations.")
    parser.add_argument("--version", action="version", version=f"radlens {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if command is None or name == command:
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from inference.errors import OperationCancelled, RadLensError

    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list:
        # The main job: the viewer on the bundled sample study (a PNG where there is no display).
        args_list = ["view"]
    # The subcommand is the first argument that is not an option (the top level has only -h, --version).
    command = next((a for a in args_list if not a.startswith("-")), "")
    if command in SINGLE_THREAD_BLAS and "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # read by OpenBLAS when numpy loads it
    parser = build_parser(command)
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    from inference.logging_setup import setup_logging

    setup_logging()  # in the user's log folder, never beside the executable
    log = logging.getLogger("radlens")
    log.info("radlens %s %s%s", __version__, args.command, " (packaged)" if getattr(sys, "frozen", False) else "")
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        code: int = module.run(args)
    except OperationCancelled:
        log.info("%s: cancelled", args.command)
        print("radlens: cancelled", file=sys.stderr)
        return EXIT_CANCELLED
    except KeyboardInterrupt:
        log.info("%s: interrupted", args.command)
        print("radlens: interrupted", file=sys.stderr)
        return EXIT_CANCELLED
    except RadLensError as exc:
        log.error("%s: %s: %s", args.command, type(exc).__name__, exc)
        print(f"radlens {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    log.info("%s: exit %d", args.command, code)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
