"""Runs of consecutive slices in a slice dataset: the stacks and patches that the CNN + RNN and the
3-D U-Net train on.

A dataset keeps every slice of a source when it is built without ``--positives-per-source`` and
``--negatives-per-source``; its rows of one source, ordered by ``slice_index``, are then the source's
stack. A run breaks wherever a slice is missing.

Importing this module does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from inference.training.dataset_format import DatasetError, SliceDataset


@dataclass(frozen=True)
class Window:
    """``length`` consecutive slices of a run: dataset rows ``run[start:start + length]``."""

    run: int
    start: int
    length: int


def contiguous_runs(ds: SliceDataset, idx: npt.NDArray[np.int64]) -> list[npt.NDArray[np.int64]]:
    """The rows ``idx`` as runs of consecutive slices of one source each, in slice order."""
    rows = np.asarray(idx, dtype=np.int64)
    if rows.size == 0:
        return []
    sources = np.asarray(ds.sources[rows])
    positions = np.asarray(ds.slice_index[rows])
    order = np.lexsort((positions, sources))
    rows, sources, positions = rows[order], sources[order], positions[order]
    breaks = np.flatnonzero((np.diff(sources) != 0) | (np.diff(positions) != 1)) + 1
    return [np.asarray(r, dtype=np.int64) for r in np.split(rows, breaks)]


def long_enough(
    ds: SliceDataset, runs: list[npt.NDArray[np.int64]], length: int, split: str
) -> list[npt.NDArray[np.int64]]:
    """The runs of at least ``length`` slices; :class:`DatasetError` when there is none."""
    kept = [r for r in runs if r.size >= length]
    if not kept:
        longest = max((r.size for r in runs), default=0)
        raise DatasetError(
            f"{ds.root}: the {split} split has no run of {length} consecutive slices (the longest has {longest}); "
            "build the dataset without --positives-per-source / --negatives-per-source so that whole stacks "
            "are kept, or shorten train.sequence_length / train.patch_size"
        )
    return kept


def tiling_windows(runs: list[npt.NDArray[np.int64]], length: int) -> list[Window]:
    """Windows that cover every run end to end (the last one aligned with the run's end)."""
    out: list[Window] = []
    for r, run in enumerate(runs):
        starts = list(range(0, run.size - length + 1, length))
        if starts[-1] + length < run.size:
            starts.append(run.size - length)
        out.extend(Window(r, s, length) for s in starts)
    return out


def random_windows(
    runs: list[npt.NDArray[np.int64]],
    length: int,
    count: int,
    rng: np.random.Generator,
    wanted: list[npt.NDArray[np.int64]] | None = None,
    fraction: float = 0.0,
) -> list[Window]:
    """``count`` windows at random places: runs in proportion to their length; with ``wanted`` (a
    set of positions per run, e.g. the slices with a lesion), ``fraction`` of them hold one."""
    sizes = np.array([r.size - length + 1 for r in runs], dtype=np.float64)
    out: list[Window] = []
    for _ in range(count):
        r = int(rng.choice(len(runs), p=sizes / sizes.sum()))
        if wanted is not None and rng.random() < fraction:
            choices = [i for i, w in enumerate(wanted) if w.size]
            if choices:
                r = int(choices[int(rng.integers(len(choices)))])
                at = int(wanted[r][int(rng.integers(wanted[r].size))])
                lo, hi = max(0, at - length + 1), min(at, runs[r].size - length)
                out.append(Window(r, int(rng.integers(lo, hi + 1)), length))
                continue
        out.append(Window(r, int(rng.integers(0, int(sizes[r]))), length))
    return out


def window_rows(runs: list[npt.NDArray[np.int64]], window: Window) -> npt.NDArray[np.int64]:
    return runs[window.run][window.start : window.start + window.length]


def read_rows(array: npt.NDArray[np.generic], rows: npt.NDArray[np.int64]) -> npt.NDArray[np.generic]:
    """``array[rows]`` from a memory-mapped array, read in file order."""
    order = np.argsort(rows)
    out = np.empty((rows.size, *array.shape[1:]), dtype=array.dtype)
    out[order] = array[rows[order]]
    return out
