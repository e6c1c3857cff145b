"""Opening whatever the user points at: a folder, a DICOM file or an image file, as one Volume."""

from __future__ import annotations

import os

from inference.errors import LoadError
from inference.io.scan import ScanResult, scan
from inference.io.stacks import Stack
from inference.progress import CancelToken, ProgressCallback, no_progress
from inference.volume import Volume


def choose_stack(result: ScanResult, stack_id: str | None) -> Stack:
    """The stack the user asked for, or the only one there is; a clear error otherwise."""
    stacks = result.stacks()
    if stack_id is not None:
        return result.stack(stack_id)
    if not stacks:
        reasons = "; ".join(f"{p.path}: {p.reason}" for p in result.errors[:3])
        raise LoadError(result.root, "no image stack found" + (f" ({reasons})" if reasons else ""))
    if len(stacks) > 1:
        listing = ", ".join(
            f"{s.id} ({s.modality} {s.description or 'no description'}, {s.n_slices} slices"
            f"{f' × {s.n_volumes} {s.fourth_axis} volumes' if s.is_4d else ''})"
            for s in stacks
        )
        raise LoadError(result.root, f"{len(stacks)} image stacks found; choose one with --stack: {listing}")
    return stacks[0]


def open_stack(
    path: str | os.PathLike[str],
    stack_id: str | None = None,
    *,
    jobs: int | None = None,
    on_progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> Stack:
    """Scan ``path`` and choose one stack in it (the only one, or ``stack_id``)."""
    return choose_stack(scan(path, jobs=jobs, on_progress=on_progress, cancel=cancel), stack_id)


def open_volume(
    path: str | os.PathLike[str],
    stack_id: str | None = None,
    *,
    jobs: int | None = None,
    on_progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> Volume:
    """Scan ``path`` and load one stack from it (the only one, or ``stack_id``)."""
    from inference.io.dicom_loader import load_stack
    from inference.io.error_boundary import typed_errors

    with typed_errors(path, "opening this path"):
        stack = open_stack(path, stack_id, jobs=jobs, on_progress=lambda f, m: on_progress(0.5 * f, m), cancel=cancel)
        return load_stack(stack, on_progress=lambda f, m: on_progress(0.5 + 0.5 * f, m), cancel=cancel)
