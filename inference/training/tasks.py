"""What one kind of model learns from a slice dataset: its batches, its loss and its validation.

``train`` runs the same loop (optimiser, schedule, moving average, checkpoints, resume, early
stopping) for every architecture; a task supplies what differs:

* :class:`SliceTask` — slice classifiers (``keras-baseline``, ``cnn``, ``cnn-attention``): one
  slice (with its context channels) per sample, a label per slice, chosen by validation AUC;
* :class:`StackTask` — the CNN + RNN (``cnn-rnn``): windows of ``train.sequence_length``
  consecutive slices, a window is positive when one of its slices is, chosen by validation AUC;
* :class:`SegmentationTask` — the 3-D U-Net (``unet3d``): patches of ``train.patch_size`` from the
  stacks' centre slices and the lesions' masks, Dice + cross-entropy (MONAI's ``DiceCELoss``),
  chosen by the validation Dice of whole stacks (MONAI's sliding window).

Importing this module does not import torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from inference.progress import CancelToken
from inference.training.augment import AugmentParams
from inference.training.config import TrainingConfig
from inference.training.dataset_format import DatasetError, SliceDataset
from inference.training.distributed import Ranks, epoch_sampler, per_rank_batch
from inference.training.metrics import classification_metrics, dice
from inference.training.sequences import (
    Window,
    contiguous_runs,
    long_enough,
    random_windows,
    read_rows,
    tiling_windows,
    window_rows,
)

if TYPE_CHECKING:
    import torch

#: Card task of each architecture ``train`` fits.
TASK_OF = {"cnn-rnn": "volume-classification", "unet3d": "segmentation"}
#: Share of segmentation patches centred on a lesion (the rest anywhere): lesions are small.
LESION_PATCHES = 2 / 3


@dataclass
class Batch:
    x: torch.Tensor  # the network's input, on the device
    y: torch.Tensor  # labels (B,) as floats, or masks (B, 1, D, H, W) as integers
    rows: torch.Tensor  # dataset rows (for messages): (B,), or the first row of each window
    masks: torch.Tensor | None = None  # slices' lesion masks, for the attention loss


@dataclass
class Validation:
    loss: float
    score: float  # what the best epoch is chosen by (AUC or Dice)
    metrics: dict[str, float]  # recorded as val_<name>
    probabilities: npt.NDArray[np.float64] | None = None  # per sample, for a threshold chosen on them
    labels: npt.NDArray[np.int64] | None = None


def _check_classes(ds: SliceDataset, split: str, labels: npt.NDArray[Any], what: str) -> None:
    n_pos = int(np.asarray(labels).sum())
    if n_pos == 0 or n_pos == labels.size:
        missing = "positive" if n_pos == 0 else "negative"
        raise DatasetError(
            f"{ds.root}: the {split} split has no {missing} {what} ({n_pos} positive of {labels.size}); "
            f"training and validation need both classes in {split}"
        )


class _Task:
    """Shared by the tasks: the dataset, the splits, the device and the augmentation."""

    score_name = "auc"
    #: Whether the task's batches can be sharded across DDP ranks (:attr:`ranks`, set by ``train``).
    distributable = False
    ranks = Ranks()

    def __init__(
        self, config: TrainingConfig, ds: SliceDataset, train_idx: npt.NDArray[np.int64],
        val_idx: npt.NDArray[np.int64], device: str, amp: bool, cancel: CancelToken,
    ) -> None:  # fmt: skip
        self.config = config
        self.ds = ds
        self.train_idx = train_idx
        self.val_idx = val_idx
        self.device = device
        self.amp = amp
        self.cancel = cancel
        self.augment = AugmentParams.from_config(config.augment)

    def forward(self, model: torch.nn.Module, x: torch.Tensor) -> Any:
        from inference.engine.device import autocast

        with autocast(self.device, self.amp):
            return model(x)

    def card_input(self, size: tuple[int, int], context: int, window: tuple[float, float]) -> dict[str, Any]:
        """The card's ``[input]`` table (without the batch size): what inference must reproduce."""
        return {"size": list(size), "context_slices": context, "window": list(window), "normalise": "window"}


def _weighted_bce(labels: npt.NDArray[Any], config: TrainingConfig, device: str) -> Any:
    """Binary cross-entropy whose positives weigh negatives / positives (``train.class_weighting``)."""
    import torch

    n_pos = int(np.asarray(labels).sum())
    ratio = (labels.size - n_pos) / n_pos if config.train.class_weighting else 1.0
    return torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor([ratio], device=device))


# --------------------------------------------------------------------------------------------
# slices


class SliceTask(_Task):
    """One slice per sample (``(B, C, H, W)``), a logit per slice. Under DDP each rank takes its
    shard of the epoch, ``batch_size / world`` slices a step."""

    distributable = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.criterion = _weighted_bce(np.asarray(self.ds.labels[self.train_idx]), self.config, self.device)

    def steps_per_epoch(self) -> int:
        shard = math.ceil(self.train_idx.size / self.ranks.world)
        return math.ceil(shard / per_rank_batch(self.config.train.batch_size, self.ranks))

    def batches(self, epoch: int, shuffle_seed: int, augment: torch.Generator) -> Iterator[Batch]:
        import torch
        from torch.utils.data import DataLoader

        from inference.training.augment import augment_batch
        from inference.training.batches import MemmapSlices, batch_masks, check_finite_inputs, to_input

        cfg = self.config.train
        samples: Any = MemmapSlices(self.ds, self.train_idx)  # a sequence is all DataLoader needs
        batch_size = per_rank_batch(cfg.batch_size, self.ranks)
        if self.ranks.distributed:  # the same permutation on every rank (the seed is the run's), sharded
            sampler = epoch_sampler(samples, self.ranks, cfg.seed, epoch)
            loader: DataLoader[Any] = DataLoader(samples, batch_size=batch_size, sampler=sampler, num_workers=0)
        else:
            shuffle = torch.Generator().manual_seed(shuffle_seed)
            loader = DataLoader(samples, batch_size=batch_size, shuffle=True, generator=shuffle, num_workers=0)
        for step, (images, labels, indices) in enumerate(loader):
            x = to_input(images, self.device)
            check_finite_inputs(x, indices, f"batch {step + 1} of epoch {epoch + 1}")
            masks = batch_masks(self.ds, indices, self.device) if cfg.attention_loss > 0 else None
            x, masks = augment_batch(x, masks, self.augment, augment)
            yield Batch(x=x, y=labels.to(self.device, torch.float32), rows=indices, masks=masks)

    def loss(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        from inference.training.losses import attention_guidance_loss

        cfg = self.config.train
        logits = self.forward(model, batch.x)
        loss: torch.Tensor = self.criterion(logits.float().reshape(batch.x.shape[0], -1)[:, 0], batch.y)
        if cfg.attention_loss > 0 and batch.masks is not None:
            guide = attention_guidance_loss(model, batch.masks, batch.y, cfg.attention_target)
            loss = loss + cfg.attention_loss * guide
        return loss

    def validate(self, model: torch.nn.Module, epoch: int) -> Validation:
        import torch
        from torch.utils.data import DataLoader

        from inference.training.batches import MemmapSlices, check_finite_inputs, to_input

        samples: Any = MemmapSlices(self.ds, self.val_idx)
        loader: DataLoader[Any] = DataLoader(samples, batch_size=self.config.train.batch_size, shuffle=False)
        model.eval()
        probs: list[npt.NDArray[np.float64]] = []
        total = 0.0
        with torch.inference_mode():
            for step, (images, labels, indices) in enumerate(loader):
                self.cancel.raise_if_cancelled()
                x = to_input(images, self.device)
                check_finite_inputs(x, indices, f"validation batch {step + 1} of epoch {epoch + 1}")
                logits = self.forward(model, x).float().reshape(x.shape[0], -1)[:, 0]
                total += float(self.criterion(logits, labels.to(self.device, torch.float32))) * x.shape[0]
                probs.append(torch.sigmoid(logits).double().cpu().numpy())
        p = np.concatenate(probs) if probs else np.zeros(0)
        labels_np = np.asarray(self.ds.labels[self.val_idx]).astype(np.int64)
        return _classification(total / max(1, self.val_idx.size), p, labels_np, self.config)


def _classification(
    loss: float, probs: npt.NDArray[np.float64], labels: npt.NDArray[np.int64], config: TrainingConfig
) -> Validation:
    m = classification_metrics(labels, probs, config.card.threshold or 0.5)
    keep = ("auc", "f1", "accuracy", "sensitivity", "specificity")
    return Validation(loss, float(m["auc"]), {k: m[k] for k in keep}, probs, labels)


# --------------------------------------------------------------------------------------------
# windows of consecutive slices (cnn-rnn)


class StackTask(_Task):
    """Windows ``(B, L, C, H, W)`` of consecutive slices; a study logit per window."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        length = self.config.train.sequence_length
        self.train_runs = long_enough(self.ds, contiguous_runs(self.ds, self.train_idx), length, "train")
        self.val_runs = long_enough(self.ds, contiguous_runs(self.ds, self.val_idx), length, "val")
        self.val_windows = tiling_windows(self.val_runs, length)
        train_labels = self.window_labels(self.train_runs, tiling_windows(self.train_runs, length))
        _check_classes(self.ds, "train", train_labels, f"windows of {length} slices")
        _check_classes(self.ds, "val", self.window_labels(self.val_runs, self.val_windows), "windows")
        self.criterion = _weighted_bce(train_labels, self.config, self.device)
        self.samples = max(1, sum(r.size for r in self.train_runs) // length)

    def window_labels(self, runs: list[npt.NDArray[np.int64]], windows: list[Window]) -> npt.NDArray[np.int64]:
        labels = np.asarray(self.ds.labels)
        return np.array([int(labels[window_rows(runs, w)].max()) for w in windows], dtype=np.int64)

    def steps_per_epoch(self) -> int:
        return math.ceil(self.samples / self.config.train.batch_size)

    def _tensors(
        self, runs: list[npt.NDArray[np.int64]], windows: list[Window]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        import torch

        from inference.training.batches import check_finite_inputs, to_input

        rows = [window_rows(runs, w) for w in windows]
        images = read_rows(self.ds.images, np.concatenate(rows))
        b, length = len(windows), windows[0].length
        x = to_input(torch.from_numpy(images), self.device).view(b, length, *images.shape[1:])
        firsts = torch.tensor([int(r[0]) for r in rows])
        check_finite_inputs(x, firsts, "a window of slices starting at that sample")
        y = torch.tensor(self.window_labels(runs, windows), dtype=torch.float32, device=self.device)
        return x, y, firsts

    def batches(self, epoch: int, shuffle_seed: int, augment: torch.Generator) -> Iterator[Batch]:
        from inference.training.augment import augment_batch

        cfg = self.config.train
        rng = np.random.default_rng(shuffle_seed)
        windows = random_windows(self.train_runs, cfg.sequence_length, self.samples, rng)
        for start in range(0, len(windows), cfg.batch_size):
            x, y, firsts = self._tensors(self.train_runs, windows[start : start + cfg.batch_size])
            b, length, c, h, w = x.shape
            flat, _ = augment_batch(x.reshape(b, length * c, h, w), None, self.augment, augment)  # one draw a window
            yield Batch(x=flat.view(b, length, c, h, w), y=y, rows=firsts)

    def loss(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        study, _ = self.forward(model, batch.x)
        out: torch.Tensor = self.criterion(study.float().reshape(-1), batch.y)
        return out

    def validate(self, model: torch.nn.Module, epoch: int) -> Validation:
        import torch

        model.eval()
        probs: list[npt.NDArray[np.float64]] = []
        total = 0.0
        step = max(1, self.config.train.batch_size)
        with torch.inference_mode():
            for start in range(0, len(self.val_windows), step):
                self.cancel.raise_if_cancelled()
                x, y, _ = self._tensors(self.val_runs, self.val_windows[start : start + step])
                study, _ = self.forward(model, x)
                logits = study.float().reshape(-1)
                total += float(self.criterion(logits, y)) * x.shape[0]
                probs.append(torch.sigmoid(logits).double().cpu().numpy())
        labels = self.window_labels(self.val_runs, self.val_windows)
        return _classification(total / max(1, len(self.val_windows)), np.concatenate(probs), labels, self.config)


# --------------------------------------------------------------------------------------------
# 3-D patches (unet3d)


class SegmentationTask(_Task):
    """Patches ``(B, 1, D, H, W)`` of the stacks' centre slices and their lesion masks."""

    score_name = "dice"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from monai.losses.dice import DiceCELoss

        d, h, w = self.config.train.patch_size
        rows, cols = self.ds.size
        if h > rows or w > cols:
            raise DatasetError(
                f"{self.ds.root}: train.patch_size {d}×{h}×{w} is larger than the dataset's slices ({rows}×{cols})"
            )
        self.train_runs = long_enough(self.ds, contiguous_runs(self.ds, self.train_idx), d, "train")
        self.val_runs = long_enough(self.ds, contiguous_runs(self.ds, self.val_idx), d, "val")
        labels = np.asarray(self.ds.labels)
        self.lesion_slices = [np.flatnonzero(labels[r] > 0) for r in self.train_runs]
        for split, runs in (("train", self.train_runs), ("val", self.val_runs)):
            if not any(labels[r].any() for r in runs):
                raise DatasetError(f"{self.ds.root}: the {split} split has no slice with a lesion mask to learn from")
        # Dice of the lesion class alone: background is nearly every voxel, and its Dice would drown the lesions.
        self.criterion = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False)
        self.samples = max(1, sum(r.size for r in self.train_runs) // d)

    def _centre(self) -> int:
        return int(self.ds.images.shape[1]) // 2

    def _volume(self, rows: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
        images = read_rows(self.ds.images, rows)[:, self._centre()]
        masks = read_rows(self.ds.masks, rows)
        return np.asarray(images), (np.asarray(masks) > 0).astype(np.uint8)

    def steps_per_epoch(self) -> int:
        return math.ceil(self.samples / self.config.train.batch_size)

    def _crop(self, window: Window, rng: np.random.Generator, lesion: bool) -> tuple[npt.NDArray[Any], ...]:
        _, h, w = self.config.train.patch_size
        images, masks = self._volume(window_rows(self.train_runs, window))
        rows, cols = images.shape[1:]
        top, left = int(rng.integers(0, rows - h + 1)), int(rng.integers(0, cols - w + 1))
        if lesion and masks.any():  # centre the patch on a lesion voxel
            _, ys, xs = np.nonzero(masks)
            pick = int(rng.integers(ys.size))
            top = int(np.clip(ys[pick] - h // 2, 0, rows - h))
            left = int(np.clip(xs[pick] - w // 2, 0, cols - w))
        return images[:, top : top + h, left : left + w], masks[:, top : top + h, left : left + w]

    def batches(self, epoch: int, shuffle_seed: int, augment: torch.Generator) -> Iterator[Batch]:
        import torch

        from inference.training.augment import augment_batch
        from inference.training.batches import check_finite_inputs, to_input

        cfg = self.config.train
        rng = np.random.default_rng(shuffle_seed)
        depth = cfg.patch_size[0]
        windows = random_windows(self.train_runs, depth, self.samples, rng, self.lesion_slices, LESION_PATCHES)
        for start in range(0, len(windows), cfg.batch_size):
            chosen = windows[start : start + cfg.batch_size]
            crops = [self._crop(wi, rng, bool(self.lesion_slices[wi.run].size)) for wi in chosen]
            x = to_input(torch.from_numpy(np.stack([c[0] for c in crops])), self.device)
            masks = torch.from_numpy(np.stack([c[1] for c in crops])).to(self.device)
            firsts = torch.tensor([int(window_rows(self.train_runs, wi)[0]) for wi in chosen])
            check_finite_inputs(x, firsts, f"a patch starting at that sample, epoch {epoch + 1}")
            x, masks_out = augment_batch(x, masks, self.augment, augment)  # the slices are channels here
            assert masks_out is not None
            yield Batch(x=x[:, None], y=masks_out[:, None].long(), rows=firsts)

    def loss(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        logits = self.forward(model, batch.x)
        out: torch.Tensor = self.criterion(logits.float(), batch.y)
        return out

    def segment(self, model: torch.nn.Module, images: npt.NDArray[np.uint8]) -> torch.Tensor:
        """Logits ``(1, 2, D, H, W)`` of a whole stack, by MONAI's sliding window over patches."""
        import torch
        from monai.inferers.utils import sliding_window_inference

        from inference.training.batches import to_input

        x = to_input(torch.from_numpy(images)[None, None], self.device)
        with torch.inference_mode():
            out = sliding_window_inference(
                x, roi_size=self.config.train.patch_size, sw_batch_size=max(1, self.config.train.batch_size),
                predictor=lambda patch: self.forward(model, patch).float(), overlap=0.25, mode="gaussian",
            )  # fmt: skip
        assert isinstance(out, torch.Tensor)
        return out

    def validate(self, model: torch.nn.Module, epoch: int) -> Validation:
        import torch

        model.eval()
        losses, dices = [], []
        for run in self.val_runs:
            self.cancel.raise_if_cancelled()
            images, masks = self._volume(run)
            logits = self.segment(model, images)
            truth = torch.from_numpy(masks)[None, None].long().to(logits.device)
            losses.append(float(self.criterion(logits, truth)))
            if masks.any():
                dices.append(dice(logits[0].argmax(0).cpu().numpy() > 0, masks > 0))
        mean = float(np.mean(dices)) if dices else math.nan
        return Validation(float(np.mean(losses)), mean, {"dice": mean})

    def card_input(self, size: tuple[int, int], context: int, window: tuple[float, float]) -> dict[str, Any]:
        d, h, w = self.config.train.patch_size
        return {
            "size": list(size),
            "context_slices": 0,
            "window": list(window),
            "normalise": "window",
            "patch_size": [d, h, w],
        }


def make_task(
    config: TrainingConfig, ds: SliceDataset, train_idx: npt.NDArray[np.int64], val_idx: npt.NDArray[np.int64],
    device: str, amp: bool, cancel: CancelToken,
) -> SliceTask | StackTask | SegmentationTask:  # fmt: skip
    task: SliceTask | StackTask | SegmentationTask
    if config.model.architecture == "cnn-rnn":
        task = StackTask(config, ds, train_idx, val_idx, device, amp, cancel)
    elif config.model.architecture == "unet3d":
        task = SegmentationTask(config, ds, train_idx, val_idx, device, amp, cancel)
    else:
        task = SliceTask(config, ds, train_idx, val_idx, device, amp, cancel)
    return task
