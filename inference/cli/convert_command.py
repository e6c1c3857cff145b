"""``radlens convert INPUT OUTPUT [--stack ID]``: one stack to NIfTI, or every stack of a folder.

``OUTPUT`` ending in ``.nii``/``.nii.gz`` converts one stack. Any other ``OUTPUT`` is a folder:
every stack of ``INPUT`` is converted in one scan, each named by ``--filename`` (a dcm2niix-style
pattern). A 4-D stack becomes a 4-D NIfTI, with ``.bval``/``.bvec`` for diffusion; a JSON sidecar
(BIDS names, no identifiers) is written for 4-D stacks and in folder mode (``--json``/``--no-json``
to choose: a plain 3-D conversion stays free of the full DICOM parser, and fast). A stack whose
slices are off a regular grid is refused unless ``--resample`` asks for a regular grid.
"""

from __future__ import annotations

import argparse
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from inference.cli.progress_bar import TerminalProgress
from inference.errors import GeometryWarning, RadLensError
from inference.io.paths import is_within

if TYPE_CHECKING:
    from inference.io.stacks import Stack
    from inference.progress import ProgressCallback
    from inference.volume import Volume


class OutputError(RadLensError):
    """The output path is not acceptable."""


DEFAULT_PATTERN = "%s_%d"
#: Names of image files RadLens does not write: taken for a mistyped output, not a folder to make.
IMAGE_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd", ".gz", ".img", ".hdr", ".dcm", ".json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="DICOM folder or file, or a NIfTI/NRRD/MHA file")
    parser.add_argument(
        "output", type=Path, help="output .nii or .nii.gz; or a folder, to convert every stack of INPUT into it"
    )
    parser.add_argument("--stack", default=None, help="stack id from `radlens scan` when INPUT holds several")
    parser.add_argument("--jobs", type=int, default=None, help="header-parsing worker processes")
    parser.add_argument(
        "-f",
        "--filename",
        default=DEFAULT_PATTERN,
        help="folder mode: output name pattern; %%s series number, %%d series description, %%i stack id, "
        "%%m modality, %%a fourth axis, %%e echo number (default %(default)s)",
    )
    parser.add_argument("--uncompressed", action="store_true", help="folder mode: write .nii instead of .nii.gz")
    parser.add_argument(
        "--json",
        dest="json",
        action="store_true",
        default=None,
        help="write a BIDS-style JSON sidecar (default: for 4-D stacks and in folder mode)",
    )
    parser.add_argument("--no-json", dest="json", action="store_false", help="write no JSON sidecar")
    parser.add_argument(
        "--resample",
        action="store_true",
        help="resample a stack whose slices are off a regular grid (gap, uneven spacing) instead of refusing it",
    )


def run(args: argparse.Namespace) -> int:
    out: Path = args.output
    source = args.input if args.input.is_dir() else args.input.parent
    if args.input.is_dir() and is_within(out if not _is_nifti(out) else out.parent, source):
        raise OutputError(f"{out}: refusing to write inside the scanned folder {args.input}")
    if not _is_nifti(out):
        if out.suffix.lower() in IMAGE_SUFFIXES and not out.is_dir():
            raise OutputError(f"{out}: the output must end in .nii or .nii.gz (or name a folder)")
        return _convert_folder(args)
    from inference.io.open_path import open_stack

    progress = TerminalProgress()
    stack = open_stack(args.input, args.stack, jobs=args.jobs, on_progress=lambda f, m: progress(0.5 * f, m))
    volume = _convert_one(stack, out, args, lambda f, m: progress(0.5 + 0.5 * f, m), folder_mode=False)
    k, j, i = volume.shape
    t = f"×{volume.n_volumes}" if volume.is_4d else ""
    print(f"wrote {out} ({i}×{j}×{k}{t}, {volume.voxels.dtype})")
    return 0


def _is_nifti(path: Path) -> bool:
    return path.name.endswith((".nii", ".nii.gz"))


def _convert_one(
    stack: Stack, out: Path, args: argparse.Namespace, on_progress: ProgressCallback, *, folder_mode: bool
) -> Volume:
    """Load ``stack`` and write it (and its sidecars) to ``out``; returns the volume written."""
    from inference.io.dicom_loader import can_stream, load_stack, stream_stack
    from inference.io.nifti_writer import NiftiStream, write_nifti

    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GeometryWarning)
        streamed = can_stream(stack) and not args.resample
        if streamed:
            # Slice by slice into the file: no volume in memory, the disk writing while slices are read.
            volume = stream_stack(stack, lambda geometry: NiftiStream(geometry, out), on_progress=on_progress)
        else:
            volume = load_stack(stack, on_progress=on_progress)
    for w in caught:
        if issubclass(w.category, GeometryWarning):
            print(f"radlens convert: warning: {w.message}")
    if not streamed:
        if args.resample and volume.slice_positions is not None:
            from inference.io.resample import regular_grid

            volume = regular_grid(volume)
            note = volume.qa_warnings[-1]
            notes.append(note)
            print(f"radlens convert: {note}")
        write_nifti(volume, out)
    write_json = args.json if args.json is not None else (folder_mode or volume.is_4d)
    if stack.kind == "dicom" and (volume.is_4d or write_json):  # a plain 3-D conversion imports none of it
        from inference.io.nifti_sidecars import write_diffusion_tables, write_sidecar

        write_diffusion_tables(volume, out)
        if write_json:
            write_sidecar(stack, volume, out, notes)
    return volume


_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def output_name(pattern: str, stack: Stack) -> str:
    """The file name (without suffix) ``pattern`` gives for ``stack``, safe on every file system."""
    echo = stack.headers[0].echo_number if stack.headers else ""
    fields = {
        "s": str(stack.series_number),
        "d": stack.description or "series",
        "i": stack.id,
        "m": stack.modality or "image",
        "a": stack.fourth_axis or "3d",
        "e": echo or "1",
        "%": "%",
    }

    def field(m: re.Match[str]) -> str:
        return fields.get(m.group(1), m.group(0))

    name = re.sub(r"%(.)", field, pattern)
    name = _UNSAFE.sub("_", name).strip("._") or f"stack_{stack.id}"
    return name[:200]


def _convert_folder(args: argparse.Namespace) -> int:
    """Every stack of ``args.input`` (scanned once) into the folder ``args.output``."""
    from inference.errors import LoadError
    from inference.io.scan import scan

    out_dir: Path = args.output
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir}: not a folder (name a .nii/.nii.gz file to convert one stack)")
    out_dir.mkdir(parents=True, exist_ok=True)
    progress = TerminalProgress()
    result = scan(args.input, jobs=args.jobs, on_progress=lambda f, m: progress(0.2 * f, m))
    stacks = result.stacks() if args.stack is None else [result.stack(args.stack)]
    if not stacks:
        raise LoadError(result.root, "no image stack found")
    suffix = ".nii" if args.uncompressed else ".nii.gz"
    used: set[str] = set()
    failed = 0
    for n, stack in enumerate(stacks):
        name = output_name(args.filename, stack)
        if name in used:  # two stacks of one series (or one pattern for all): keep both
            name = f"{name}_{stack.id}"
        used.add(name)
        target = out_dir / (name + suffix)
        share = 0.8 / len(stacks)

        def step(f: float, m: str, n: int = n, share: float = share) -> None:
            progress(0.2 + share * (n + f), m)

        try:
            volume = _convert_one(stack, target, args, step, folder_mode=True)
        except RadLensError as exc:
            failed += 1
            print(f"radlens convert: stack {stack.id} not converted: {exc}")
            continue
        k, j, i = volume.shape
        t = f"×{volume.n_volumes}" if volume.is_4d else ""
        print(f"wrote {target} ({i}×{j}×{k}{t}, {volume.voxels.dtype})")
    print(f"{len(stacks) - failed} of {len(stacks)} stack(s) converted into {out_dir}")
    return 1 if failed else 0
