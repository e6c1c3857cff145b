"""Small greyscale previews of stacks for a series browser: the middle slice, auto-windowed."""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.errors import LoadError
from inference.io.stacks import Stack


def stack_thumbnail(stack: Stack, size: int = 64) -> npt.NDArray[np.uint8] | None:
    """The middle slice of a DICOM stack as uint8, at most ``size`` pixels on a side; None if it cannot be read."""
    from inference.io.dicom_loader import load_stack

    if stack.kind != "dicom" or not stack.slices:
        return None
    middle = stack.slices[max(stack.n_slices, 1) // 2]  # of the first volume of a 4-D stack
    # One slice, so a 3-D stack (and one a refused stack can still preview).
    one = dataclasses.replace(stack, slices=(middle,), qa=(), volume_frames=(), refusal=None)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            voxels = load_stack(one, allow_missing_geometry=True).voxels[0]
    except LoadError:
        return None
    return to_uint8_preview(voxels, size)


def to_uint8_preview(image: npt.NDArray[Any], size: int) -> npt.NDArray[np.uint8]:
    grey = image.mean(axis=-1) if image.ndim == 3 else image
    step = max(1, int(np.ceil(max(grey.shape) / size)))
    small = np.asarray(grey[::step, ::step], dtype=np.float32)
    lo, hi = np.percentile(small, [1, 99]) if small.size else (0.0, 1.0)
    scaled = (small - lo) / max(float(hi - lo), 1e-6) * 255
    return np.ascontiguousarray(np.clip(scaled, 0, 255).astype(np.uint8))


def scan_with_thumbnails(path: str, limit: int = 200) -> tuple[Any, dict[str, npt.NDArray[np.uint8]]]:
    """A scan plus a thumbnail for each of the first ``limit`` stacks (run in a worker process)."""
    from inference.io.scan import scan

    result = scan(path, jobs=1)
    thumbs = {}
    for stack in result.stacks()[:limit]:
        thumb = stack_thumbnail(stack)
        if thumb is not None:
            thumbs[stack.id] = thumb
    return result, thumbs


def warm_up() -> None:
    """Import the scanning code in a fresh worker process before the first folder is opened."""
    import inference.io.dicom_loader
    import inference.io.scan  # noqa: F401
