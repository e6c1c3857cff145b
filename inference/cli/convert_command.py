"""``radlens convert INPUT OUTPUT [--stack ID]``: one stack to NIfTI."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from inference.cli.progress_bar import TerminalProgress
from inference.errors import GeometryWarning, RadLensError
from inference.io.paths import is_within


class OutputError(RadLensError):
    """The output path is not acceptable."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="DICOM folder or file, or a NIfTI/NRRD/MHA file")
    parser.add_argument("output", type=Path, help="output .nii or .nii.gz")
    parser.add_argument("--stack", default=None, help="stack id from `radlens scan` when INPUT holds several")
    parser.add_argument("--jobs", type=int, default=None, help="header-parsing worker processes")


def run(args: argparse.Namespace) -> int:
    out: Path = args.output
    if not out.name.endswith((".nii", ".nii.gz")):
        raise OutputError(f"{out}: the output must end in .nii or .nii.gz")
    source = args.input if args.input.is_dir() else args.input.parent
    if is_within(out.parent, source) and args.input.is_dir():
        raise OutputError(f"{out}: refusing to write inside the scanned folder {args.input}")
    from inference.io.nifti_writer import write_nifti
    from inference.io.open_path import open_volume

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GeometryWarning)
        volume = open_volume(args.input, args.stack, jobs=args.jobs, on_progress=TerminalProgress())
    for w in caught:
        if issubclass(w.category, GeometryWarning):
            print(f"radlens convert: warning: {w.message}")
    write_nifti(volume, out)
    k, j, i = volume.shape
    print(f"wrote {out} ({i}×{j}×{k}, {volume.voxels.dtype})")
    return 0
