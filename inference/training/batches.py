"""A slice dataset's samples as training batches: reading them, scaling them to the card's
intensities and refusing non-finite pixels. Shared by every training task and by evaluation.

Importing this module does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from inference.errors import TrainingError
from inference.models.intensity import STORED_TO_UNIT
from inference.training.dataset_format import SliceDataset

if TYPE_CHECKING:
    import torch

__all__ = ["MemmapSlices", "batch_masks", "check_finite_inputs", "sample_list", "to_input"]


class MemmapSlices:
    """Map-style dataset over memory-mapped arrays: ``(image uint8 (C, H, W), label, index)``.

    A plain sequence is all ``torch.utils.data.DataLoader`` needs; nothing is read until asked.
    """

    def __init__(self, ds: SliceDataset, indices: npt.NDArray[np.int64]) -> None:
        self.ds = ds
        self.indices = indices

    def __len__(self) -> int:
        return int(self.indices.size)

    def __getitem__(self, i: int) -> tuple[npt.NDArray[Any], int, int]:
        j = int(self.indices[i])
        return np.array(self.ds.images[j]), int(self.ds.labels[j]), j


def batch_masks(ds: SliceDataset, indices: torch.Tensor, device: str) -> torch.Tensor:
    import torch

    rows = indices.numpy()
    order = np.argsort(rows)
    masks = np.empty((rows.size, *ds.masks.shape[1:]), dtype=np.uint8)
    masks[order] = ds.masks[rows[order]]  # memory-mapped: read in file order
    return torch.from_numpy(masks).to(device)


def to_input(images: torch.Tensor, device: str) -> torch.Tensor:
    """A dataset's stored levels (uint8 0–255, or float on the same scale) → the card's float32 [0, 1]
    on ``device`` (:data:`~inference.models.intensity.STORED_TO_UNIT`)."""
    import torch

    return STORED_TO_UNIT.apply_(images.to(device, non_blocking=True).to(torch.float32))


def check_finite_inputs(x: torch.Tensor, indices: torch.Tensor, where: str) -> None:
    """Refuse a batch with NaN/inf pixels, naming the dataset samples that have them."""
    import torch

    finite = torch.isfinite(x.flatten(1)).all(dim=1)
    if not bool(finite.all()):
        bad = indices[~finite.cpu()].tolist()
        raise TrainingError(
            f"non-finite values (NaN or inf) in the input images of dataset sample(s) {sample_list(bad)} ({where}); "
            "fix or drop these slices and rebuild the dataset"
        )


def sample_list(ix: list[int], limit: int = 20) -> str:
    """``"3, 7, 9"``: dataset sample numbers for a message, at most ``limit`` of them."""
    shown = ", ".join(str(i) for i in ix[:limit])
    return shown + (f", … ({len(ix)} in all)" if len(ix) > limit else "")
