"""The on-disk slice dataset shared by ``dataset build``, ``train`` and ``evaluate``.

A dataset is a folder::

    manifest.json   what was built, from what, with which preprocessing, and the split
    images.npy      uint8 (N, C, H, W): windowed slices scaled to 0–255, C = 2 * context + 1
    labels.npy      uint8 (N,): 1 = the slice shows a lesion, 0 = it does not
    masks.npy       uint8 (N, H, W): the lesion's voxels on that slice (all zero for negatives)
    sources.npy     int32 (N,): index into manifest["sources"] (the volume / patient a slice came from)
    slice_index.npy int32 (N,): the slice's k in its source volume

Splits are by source (patient), never by slice: ``manifest["sources"][i]["split"]`` is one of
``train``, ``val``, ``test``. Arrays are memory-mapped when read, so a dataset larger than memory
still trains.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.errors import RadLensError

FORMAT_VERSION = 1
ARRAYS = ("images", "labels", "masks", "sources", "slice_index")
SPLITS = ("train", "val", "test")


class DatasetError(RadLensError):
    """A dataset folder is missing, incomplete or inconsistent."""


@dataclass
class SliceDataset:
    root: Path
    manifest: dict[str, Any]
    images: npt.NDArray[np.uint8]
    labels: npt.NDArray[np.uint8]
    masks: npt.NDArray[np.uint8]
    sources: npt.NDArray[np.int32]
    slice_index: npt.NDArray[np.int32]

    def split_indices(self, split: str) -> npt.NDArray[np.int64]:
        """Sample indices whose source belongs to ``split``."""
        if split not in SPLITS:
            raise DatasetError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        ids = [i for i, s in enumerate(self.manifest["sources"]) if s["split"] == split]
        return np.flatnonzero(np.isin(self.sources, ids)).astype(np.int64)

    @property
    def size(self) -> tuple[int, int]:
        h, w = self.images.shape[2:]
        return (int(h), int(w))


def write_dataset(root: Path, manifest: dict[str, Any], arrays: dict[str, npt.NDArray[Any]]) -> Path:
    """Write a complete dataset atomically: into a sibling temporary folder, then renamed."""
    missing = [a for a in ARRAYS if a not in arrays]
    if missing:
        raise DatasetError(f"cannot write dataset: arrays missing: {', '.join(missing)}")
    n = len(arrays["labels"])
    for name in ARRAYS:
        if len(arrays[name]) != n:
            raise DatasetError(f"array {name} has {len(arrays[name])} rows, labels has {n}")
    root = Path(root)
    tmp = root.with_name(f".{root.name}.tmp-{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=False)
    try:
        for name in ARRAYS:
            np.save(tmp / f"{name}.npy", arrays[name])
        (tmp / "manifest.json").write_text(json.dumps({**manifest, "format_version": FORMAT_VERSION}, indent=1))
        if root.exists():
            old = root.with_name(f".{root.name}.old-{os.getpid()}")
            root.rename(old)
            tmp.rename(root)
            import shutil

            shutil.rmtree(old)
        else:
            tmp.rename(root)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def read_dataset(root: str | Path) -> SliceDataset:
    """Open a dataset, memory-mapped; a clear error when something is missing."""
    root = Path(root)
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        raise DatasetError(f"{root}: not a RadLens dataset (no manifest.json); build one with `radlens dataset build`")
    manifest = json.loads(manifest_path.read_text())
    arrays = {}
    for name in ARRAYS:
        path = root / f"{name}.npy"
        if not path.is_file():
            raise DatasetError(f"{root}: {name}.npy is missing; rebuild the dataset")
        arrays[name] = np.load(path, mmap_mode="r")
    return SliceDataset(root, manifest, **arrays)
