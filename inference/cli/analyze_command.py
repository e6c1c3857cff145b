"""``radlens analyze PATH... --out DIR``: every image stack through its model, with standard outputs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from inference.batch.identity import IdentityPolicy
from inference.batch.stack_outputs import DEFAULT_FORMATS, FORMATS
from inference.cli.progress_bar import TerminalProgress
from inference.engine.device import DEVICE_CHOICES


def _formats(text: str) -> tuple[str, ...]:
    if text == "all":
        return FORMATS
    chosen = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown format {', '.join(unknown) or text!r}; choose from {', '.join(FORMATS)} or all"
        )
    return chosen


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", type=Path, help="folders or files: DICOM, NIfTI, NRRD, MHA")
    parser.add_argument("--out", type=Path, required=True, help="output folder (never inside an input)")
    parser.add_argument("--model", default=None, help="model name (default: the registry's default per modality)")
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES, help="where the model runs")
    parser.add_argument("--jobs", type=int, default=None, help="loader worker processes (0: load in this process)")
    parser.add_argument(
        "--writers",
        type=int,
        default=0,
        help="writer processes (default: of the cores the loaders leave, all but one on a GPU, half on the CPU; 1-8)",
    )
    parser.add_argument(
        "--format",
        type=_formats,
        default=DEFAULT_FORMATS,
        help=(
            f"comma-separated outputs from {','.join(FORMATS)}, or all "
            f"(default: {','.join(DEFAULT_FORMATS)}; summary.csv/json always)"
        ),
    )
    who = parser.add_mutually_exclusive_group()
    who.add_argument(
        "--anonymize",
        action="store_true",
        help="DICOM PS3.15 Basic Profile: pseudonyms, remapped UIDs, no dates or descriptions in any output",
    )
    who.add_argument(
        "--identify", action="store_true", help="put patient name and ID in the reports (left out by default)"
    )
    parser.add_argument("--overwrite", action="store_true", help="redo stacks whose outputs are already complete")
    parser.add_argument("--modality", default="", help="modality of NIfTI/NRRD/MHA inputs (they record none), e.g. CT")
    parser.add_argument(
        "--force",
        action="store_true",
        help="run the model on stacks it was not made for (another modality, a 4-D or mosaic series, another "
        "body region...): the reasons are kept as warnings in the outputs",
    )
    parser.add_argument("--key-images", type=int, default=3, help="key images per stack")
    parser.add_argument(
        "--cluster",
        default="",
        metavar="ADDRESS|local",
        help="run the stages on a Ray cluster (HOST:PORT of its head, auto, or local to start one here); "
        "needs pip install 'radlens[cluster]' and an output folder every node can write",
    )


def run(args: argparse.Namespace) -> int:
    from inference.batch.interrupt import stop_on_signals
    from inference.batch.pipeline import BatchOptions, analyze, default_jobs
    from inference.batch.summary import FAILED, OK, REFUSED, SKIPPED
    from inference.errors import OperationCancelled
    from inference.progress import CancelToken

    policy = (
        IdentityPolicy.ANONYMIZE
        if args.anonymize
        else IdentityPolicy.IDENTIFY
        if args.identify
        else IdentityPolicy.DEFAULT
    )
    options = BatchOptions(
        out=args.out,
        model=args.model,
        device=args.device,
        jobs=default_jobs() if args.jobs is None else max(0, args.jobs),
        writers=max(0, args.writers),
        formats=args.format,
        identity=policy,
        overwrite=args.overwrite,
        file_modality=args.modality,
        key_images=max(0, args.key_images),
        force=args.force,
        cluster=args.cluster,
    )
    cancel = CancelToken()
    with stop_on_signals(cancel) as stopped:
        try:
            report = analyze(args.inputs, options, on_progress=TerminalProgress(), cancel=cancel)
        except OperationCancelled:
            if not stopped.signum:
                raise
            print(
                f"\nradlens analyze: interrupted by {stopped.name}: the stacks finished so far are complete in "
                f"{args.out} (summary.csv lists the rest as not run); run the same command again to resume",
                file=sys.stderr,
            )
            return stopped.exit_code
    for row in report.rows:
        status = row.get("status", "")
        if status in (FAILED, REFUSED, "unreadable") or (status == SKIPPED and row.get("folder")):
            what = row.get("folder") or row.get("source") or "input"
            print(f"radlens analyze: {status}: {what}: {row.get('error', '')}", file=sys.stderr)
    ok = report.count(OK)
    resumed = report.count(OK, resumed=True)
    failed = report.count(FAILED)
    skipped = report.count(SKIPPED)
    refused = report.count(REFUSED)
    print(
        f"{ok - resumed} analysed, {resumed} already done, {failed} failed, {refused} refused, {skipped} skipped "
        f"in {report.elapsed_s:.1f} s; summary: {report.summary_csv}"
    )
    if ok == 0 and failed == 0:
        print("radlens analyze: no stack was analysed (see the reasons above)", file=sys.stderr)
    return 0 if report.succeeded else 1
