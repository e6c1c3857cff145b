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
    from inference.io.dicom_loader import can_stream, load_stack, stream_stack
    from inference.io.nifti_writer import NiftiStream, write_nifti
    from inference.io.open_path import open_stack

    progress = TerminalProgress()

    def loading(fraction: float, message: str) -> None:
        progress(0.5 + 0.5 * fraction, message)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GeometryWarning)
        stack = open_stack(args.input, args.stack, jobs=args.jobs, on_progress=lambda f, m: progress(0.5 * f, m))
        streamed = can_stream(stack)
        if streamed:
            # Slice by slice into the file: no volume in memory, the disk writing while slices are read.
            volume = stream_stack(stack, lambda geometry: NiftiStream(geometry, out), on_progress=loading)
        else:
            volume = load_stack(stack, on_progress=loading)
    for w in caught:
        if issubclass(w.category, GeometryWarning):
            print(f"radlens convert: warning: {w.message}")
    if not streamed:
        write_nifti(volume, out)
    k, j, i = volume.shape
    print(f"wrote {out} ({i}×{j}×{k}, {volume.voxels.dtype})")
    return 0
