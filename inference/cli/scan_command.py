"""``radlens scan PATH [--json]``: what is in a folder, headers only."""

from __future__ import annotations

import argparse
import json

from inference.cli.progress_bar import TerminalProgress
from inference.io.paths import display_path
from inference.io.scan import ScanResult, scan


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", help="folder or file to scan (default: the bundled sample study)")
    parser.add_argument("--json", action="store_true", help="print a JSON description instead of text")
    parser.add_argument("--jobs", type=int, default=None, help="header-parsing worker processes")


def format_scan(result: ScanResult) -> str:
    """Human-readable listing; patient names and IDs are left out."""
    lines = [f"{display_path(result.root)}"]
    for study in result.studies:
        lines.append(f"study {study.date or '(no date)'} {study.description or '(no description)'}")
        for series in study.series:
            for st in series.stacks:
                dims = "×".join(str(d) for d in st.dimensions)
                if st.is_4d:
                    dims = f"{st.n_volumes} {st.fourth_axis} volumes × {dims}"
                mosaic = " (mosaic)" if st.is_mosaic else ""
                lines.append(
                    f"  stack {st.id:>3}  {st.modality or '??':<6} series {series.number:<4} "
                    f"{st.description or '(no description)'}  [{dims}]{mosaic}"
                )
                lines.extend(f"           ! {q}" for q in st.qa)
    for st in result.file_stacks:
        dims = "×".join(str(d) for d in st.dimensions)
        lines.append(f"  stack {st.id:>3}  file   {display_path(st.file_path)}  [{dims}]")
    if result.non_image:
        lines.append(f"non-image objects ({len(result.non_image)}):")
        lines.extend(f"  {n.modality or '?':<8} {display_path(n.path)}" for n in result.non_image)
    if result.not_dicom:
        lines.append(f"not DICOM ({len(result.not_dicom)}): skipped")
        lines.extend(f"  {display_path(p.path)}: {p.reason}" for p in result.not_dicom)
    if result.errors:
        lines.append(f"problems ({len(result.errors)}):")
        lines.extend(f"  {display_path(p.path)}: {p.error}: {p.reason}" for p in result.errors)
    lines.append(f"{len(result.stacks())} image stack(s)")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    path = args.path
    if path is None:
        from inference.sample_study import write_sample_study

        path = write_sample_study()
    result = scan(path, jobs=args.jobs, on_progress=TerminalProgress())
    if args.json:
        print(json.dumps(result.summary(), indent=2))
    else:
        print(format_scan(result))
    return 0
