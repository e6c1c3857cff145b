"""``train(config, on_progress, cancel) -> run folder``: fit a model on a slice dataset.

Slice classifiers learn from single slices, the CNN + RNN from windows of consecutive slices and
the 3-D U-Net from patches of the stacks and their lesion masks (:mod:`inference.training.tasks`);
the loop, the checkpoints and the run folder are the same for all of them.

The run folder (``[output] run_dir``) holds::

    config.toml           the complete config this run used (defaults filled in)
    checkpoint_last.pt    after every epoch: model, optimizer, scheduler, epoch, best so far,
                          the weights' moving average (``train.ema_decay``), history (plain
                          tensors and numbers; read with weights_only=True)
    metrics.jsonl         one JSON line per finished epoch
    best.safetensors      the weights with the best validation score so far: AUC, or Dice for the
                          3-D U-Net (with ``train.ema_decay``
                          > 0 the moving average of the weights is what is validated and kept)
    card.toml             written when training ends: a model card for the registry

Everything is written atomically (temporary file, then rename), so an interrupted run leaves
the last finished epoch intact and ``train`` on the same run folder resumes from it: the
finished epochs are kept, and because every epoch's randomness (shuffling, augmentation,
dropout) is seeded from ``(seed, epoch)``, the resumed run computes what the uninterrupted run
would have.

Input specification for the card comes from the dataset: ``size`` from the image shape,
``context_slices`` and ``window`` (``[centre, width]``) from the manifest (top level, or under
``"preprocessing"`` / ``"input"``); images are uint8 0–255 and are fed to the network as
``/ 255`` floats, which is what ``normalise = "window"`` gives at inference.

Importing this module does not import torch.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from inference.engine.device import autocast_dtype, select_device
from inference.errors import TrainingError
from inference.io.atomic import atomic_write
from inference.progress import CancelToken, ProgressCallback, no_progress
from inference.training.batches import sample_list
from inference.training.config import DataConfig, OutputConfig, TrainingConfig, TrainingConfigError, dumps_toml
from inference.training.dataset_format import DatasetError, SliceDataset, read_dataset
from inference.training.distributed import (
    DistributedError,
    agree,
    process_group,
    rank_device,
    ranks_from_environment,
    sum_across,
    threads_per_rank,
    wrap,
)
from inference.training.metrics import finite_or_none

if TYPE_CHECKING:
    import torch

CHECKPOINT = "checkpoint_last.pt"
BEST_WEIGHTS = "best.safetensors"
METRICS = "metrics.jsonl"
CARD = "card.toml"
CONFIG_COPY = "config.toml"
CHECKPOINT_FORMAT = 1
DEFAULT_LABEL = "nodule"
LABEL_COLOUR = [230, 25, 75]

#: Config keys that may change between an interrupted run and its resumption.
_RESUMABLE_CHANGES = {
    "train": {"num_threads", "device", "amp", "early_stopping_patience"},
}
_FINGERPRINT_SECTIONS = ("data", "model", "train", "augment")
#: Validation figures shown in the progress message, by the names they are shown with.
_SHOWN = {"auc": "AUC", "f1": "F1", "accuracy": "acc", "dice": "Dice"}

EpochCallback = Callable[[dict[str, Any]], None]


# --------------------------------------------------------------------------------------------
# dataset


@dataclass(frozen=True)
class InputSpecFromData:
    size: tuple[int, int]
    channels: int
    context_slices: int
    window: tuple[float, float]


def _manifest_value(manifest: dict[str, Any], key: str) -> Any:
    if key in manifest:
        return manifest[key]
    for section in ("preprocessing", "input"):
        sub = manifest.get(section)
        if isinstance(sub, dict) and key in sub:
            return sub[key]
    return None


def input_spec_of(ds: SliceDataset) -> InputSpecFromData:
    """Size, context and window of a dataset, for the model card (what inference must reproduce)."""
    if ds.images.ndim != 4:
        raise DatasetError(f"{ds.root}: images.npy must be (N, C, H, W), got shape {ds.images.shape}")
    c = int(ds.images.shape[1])
    context = _manifest_value(ds.manifest, "context_slices")
    if context is None:
        if c % 2 == 0:
            raise DatasetError(f"{ds.root}: {c} channels is not 2 * context_slices + 1 and the manifest has none")
        context = (c - 1) // 2
    if 2 * int(context) + 1 != c:
        raise DatasetError(f"{ds.root}: manifest context_slices = {context} but images have {c} channels")
    window = _manifest_value(ds.manifest, "window")
    if isinstance(window, dict):
        window = [window.get("centre", window.get("center")), window.get("width")]
    try:
        centre, width = (float(v) for v in window)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise DatasetError(
            f"{ds.root}: the manifest has no window [centre, width] (got {window!r}); the model card needs the "
            "window the slices were made with, to preprocess scans the same way"
        ) from None
    return InputSpecFromData(size=ds.size, channels=c, context_slices=int(context), window=(centre, width))


def _check_split(ds: SliceDataset, split: str, idx: npt.NDArray[np.int64], both_classes: bool) -> None:
    if idx.size == 0:
        raise DatasetError(f"{ds.root}: the {split} split is empty (no source has split = {split!r})")
    labels = np.asarray(ds.labels[idx])
    if not np.isin(labels, (0, 1)).all():
        raise DatasetError(f"{ds.root}: labels must be 0 or 1; the {split} split has {sorted(set(labels.tolist()))}")
    n_pos = int(labels.sum())
    if both_classes and (n_pos == 0 or n_pos == idx.size):
        missing = "positive" if n_pos == 0 else "negative"
        raise DatasetError(
            f"{ds.root}: the {split} split has no {missing} slices ({n_pos} positive of {idx.size}); "
            f"training and validation AUC need both classes in {split}"
        )


def weight_average(model: torch.nn.Module, decay: float) -> Any:
    """An exponential moving average of ``model``'s weights and buffers (BatchNorm statistics too),
    updated after every optimiser step; ``None`` when ``decay`` is 0. Averaged weights generalise
    better and vary less from epoch to epoch than the last step's, which matters when a model is
    chosen by its validation AUC.

    The decay warms up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates: early in training the
    weights move far between steps, and an average over them is no model at all (with 0.998 from the
    first step, the average scored a validation AUC below 0.5 for ten epochs and early stopping ended
    the run).
    """
    if decay <= 0:
        return None
    import torch
    from torch.optim.swa_utils import AveragedModel

    def average(
        kept: list[torch.Tensor] | tuple[torch.Tensor, ...],
        current: list[torch.Tensor] | tuple[torch.Tensor, ...],
        updates: torch.Tensor | int,
    ) -> None:
        n = int(updates)
        weight = 1.0 - min(decay, (1.0 + n) / (10.0 + n))
        floats = [(k, c) for k, c in zip(kept, current, strict=True) if k.is_floating_point()]
        if floats:
            torch._foreach_lerp_([k for k, _ in floats], [c for _, c in floats], weight)
        for k, c in zip(kept, current, strict=True):
            if not k.is_floating_point():  # counters (BatchNorm's batches seen): the latest
                k.copy_(c)

    return AveragedModel(model, multi_avg_fn=average, use_buffers=True)


# --------------------------------------------------------------------------------------------
# model, schedule, device


def resolve_model_args(config: TrainingConfig, spec: InputSpecFromData) -> dict[str, Any]:
    """``[model] args`` completed from the dataset (``in_channels``; ``input_size`` for keras-baseline).

    The 3-D U-Net reads the stack itself, one channel: each row's centre slice."""
    args = dict(config.model.args)
    where = config.path
    channels = 1 if config.model.architecture == "unet3d" else spec.channels
    if "in_channels" in args and args["in_channels"] != channels:
        raise TrainingConfigError(
            where,
            f"model.args.in_channels = {args['in_channels']!r} but "
            + (
                "the 3-D U-Net reads 1 (the stack's own slices)"
                if channels == 1
                else f"the dataset's slices have {channels}"
            ),
        )
    args["in_channels"] = channels
    if config.model.architecture == "keras-baseline":
        h, w = spec.size
        if h != w:
            raise TrainingConfigError(where, f"keras-baseline needs square slices; the dataset's are {h}×{w}")
        if args.setdefault("input_size", h) != h:
            raise TrainingConfigError(
                where, f"model.args.input_size = {args['input_size']!r} but the dataset's slices are {h}×{w}"
            )
    return args


def build_network(config: TrainingConfig, args: dict[str, Any]) -> torch.nn.Module:
    from inference.models.architectures import build_model

    try:
        return build_model(config.model.architecture, **args)
    except (TypeError, ValueError) as exc:
        raise TrainingConfigError(config.path, f"model.args: {exc}") from exc


def lr_factor(step: int, steps_per_epoch: int, epochs: int, warmup_epochs: int, schedule: str) -> float:
    """Multiplier of the base learning rate at optimizer step ``step`` (0-based): linear warm-up
    over ``warmup_epochs``, then ``cosine`` (to 0 at the end), ``step`` (× 0.1 at half and
    again at three quarters of the remaining epochs) or ``none`` (constant)."""
    warm = warmup_epochs * steps_per_epoch
    if step < warm:
        return (step + 1) / warm
    total = max(1, (epochs - warmup_epochs) * steps_per_epoch)
    p = min(1.0, (step - warm) / total)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * p))
    if schedule == "step":
        return 0.1 ** (int(p >= 0.5) + int(p >= 0.75))
    return 1.0


@contextlib.contextmanager
def _torch_settings(num_threads: int) -> Iterator[None]:
    """Deterministic algorithms (where torch has them; warnings otherwise), no cuDNN
    autotuning, the requested thread count; every global setting restored afterwards."""
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    saved_det = torch.are_deterministic_algorithms_enabled()
    saved_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    saved_bench = torch.backends.cudnn.benchmark
    saved_cudnn_det = torch.backends.cudnn.deterministic
    saved_threads = torch.get_num_threads()
    try:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        if num_threads > 0:
            torch.set_num_threads(num_threads)
        yield
    finally:
        torch.use_deterministic_algorithms(saved_det, warn_only=saved_warn)
        torch.backends.cudnn.benchmark = saved_bench
        torch.backends.cudnn.deterministic = saved_cudnn_det
        torch.set_num_threads(saved_threads)


def _epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """Independent, reproducible seeds per (seed, epoch, purpose)."""
    ss = np.random.SeedSequence([seed, epoch, stream])
    return int(ss.generate_state(1, dtype=np.uint64)[0] & 0x7FFF_FFFF_FFFF_FFFF)


# --------------------------------------------------------------------------------------------
# checkpoints and run files


def _fingerprint(config: TrainingConfig) -> dict[str, Any]:
    full = config.to_dict()
    out: dict[str, Any] = {}
    for section in _FINGERPRINT_SECTIONS:
        skip = _RESUMABLE_CHANGES.get(section, set())
        out[section] = {k: v for k, v in full[section].items() if k not in skip}
    return out


def _fingerprint_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    diffs = []
    defaults = TrainingConfig(DataConfig(Path()), OutputConfig(Path())).to_dict()
    for section in _FINGERPRINT_SECTIONS:
        a, b = old.get(section, {}), new.get(section, {})
        for key in sorted(set(a) | set(b)):
            if key in b and key not in a and b[key] == defaults[section].get(key):
                continue  # a setting added since that run, at its default: the run is the same
            if a.get(key) != b.get(key):
                diffs.append(f"{section}.{key}: {a.get(key)!r} → {b.get(key)!r}")
    return diffs


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's contents, read with ``weights_only=True`` (tensors, numbers, dicts only)."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TrainingError(f"{path}: cannot read the checkpoint ({type(exc).__name__}: {str(exc)[:200]})") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(f"{path}: not a RadLens training checkpoint (format {CHECKPOINT_FORMAT})")
    return state


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write(path, buf.getvalue())


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}


def _save_weights(path: Path, state: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save

    atomic_write(path, save(state))


def _write_metrics(run_dir: Path, history: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(finite_or_none(rec)) + "\n" for rec in history)
    atomic_write(run_dir / METRICS, text)


def card_dict(
    config: TrainingConfig,
    args: dict[str, Any],
    sha256: str,
    best_auc: float,
    best_epoch: int,
    task_input: dict[str, Any],
    label_name: str = DEFAULT_LABEL,
    threshold: float | None = None,
    score_name: str = "auc",
) -> dict[str, Any]:
    """The run's model card (as TOML tables) for ``best.safetensors``; ``task_input`` is its ``[input]``
    table (the task's), ``threshold`` overrides the config's."""
    from inference.training.tasks import TASK_OF

    c = config.card
    score = _SHOWN[score_name]
    note = f"Trained with `radlens train`: best validation {score} {best_auc:.4f} at epoch {best_epoch}."
    if threshold is None:
        threshold = 0.5 if c.threshold is None else c.threshold
    elif c.threshold is None:
        note += f" Threshold {threshold:.3f}: the F1-optimal one on the validation split."
    description = f"{c.description.rstrip()} {note}".strip()
    return {
        "name": c.name,
        "version": c.version,
        "task": TASK_OF.get(config.model.architecture, "slice-classification"),
        "modality": list(c.modality),
        "architecture": config.model.architecture,
        "weights": BEST_WEIGHTS,
        "weights_format": "safetensors",
        "sha256": sha256,
        "licence": c.licence,
        "intended_use": c.intended_use,
        "not_for_clinical_use": True,
        "explanation": c.explanation,
        "threshold": round(float(threshold), 4),
        "default_for": list(c.default_for),
        "description": description,
        "architecture_args": {k: list(v) if isinstance(v, tuple) else v for k, v in args.items()},
        "input": {**task_input, "batch_size": max(1, min(64, config.train.batch_size))},
        "labels": [{"value": 1, "name": label_name, "colour": LABEL_COLOUR}],
    }


def _domain(ds: SliceDataset, task: str, model: Any, device: str) -> dict[str, Any]:
    """The card's ``[domain]``: slice-wise inputs of the dataset's size, and the training split's
    intensity statistics and (slice classifiers) pooled network features
    (:mod:`inference.training.domain_statistics`) for the out-of-distribution score."""
    from inference.training.domain_statistics import features_from_dataset, statistics_from_dataset

    out: dict[str, Any] = {"dimensionality": "slices" if task == "slice-classification" else "volume"}
    with contextlib.suppress(ValueError):  # no training slices: the card states no statistics
        out["intensity"] = statistics_from_dataset(ds).table()
    if task == "slice-classification" and hasattr(model, "gradcam_layer"):
        with contextlib.suppress(ValueError):
            out["features"] = features_from_dataset(ds, model, device).table()
    return out


def _write_card(run_dir: Path, data: dict[str, Any]) -> Path:
    from inference.models.card import parse_card

    path = run_dir / CARD
    parse_card(data, path)  # what we write must load
    return atomic_write(path, dumps_toml(data))


# --------------------------------------------------------------------------------------------
# the loop


def train(
    config: TrainingConfig,
    on_progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
    *,
    resume: bool = True,
    on_epoch: EpochCallback | None = None,
) -> Path:
    """Train ``config``'s model; returns the run folder (with ``card.toml`` once finished).

    When the run folder already holds ``checkpoint_last.pt`` the run continues after its last
    finished epoch (``resume=False`` refuses instead). A finished run is not trained again.
    ``on_progress(fraction, message)`` reports steps and epochs (loss, validation AUC...);
    ``on_epoch(record)`` gets each epoch's ``metrics.jsonl`` record. ``cancel`` is checked
    between batches: :class:`~inference.errors.OperationCancelled` leaves the last finished
    epoch's checkpoint in place.

    :raises DatasetError: missing dataset, empty split, a split without both classes.
    :raises TrainingError: NaN/inf inputs or loss (naming the samples), an incompatible resume.
    :raises TrainingConfigError: model arguments that do not fit the architecture or the data.
    """
    import torch

    from inference.training.tasks import TASK_OF, make_task

    cancel = cancel or CancelToken()
    cfg = config.train
    ranks = ranks_from_environment()  # under torchrun: DDP (inference.training.distributed)
    if not ranks.is_main:  # rank 0 reports and writes the run folder
        on_progress, on_epoch = no_progress, None
    ds = read_dataset(config.data.dataset)
    spec = input_spec_of(ds)
    train_idx, val_idx = ds.split_indices("train"), ds.split_indices("val")
    slices = config.model.architecture not in TASK_OF  # the stack models check their own windows
    _check_split(ds, "train", train_idx, both_classes=slices)
    _check_split(ds, "val", val_idx, both_classes=slices)
    args = resolve_model_args(config, spec)

    run_dir = config.output.run_dir
    try:
        run_dir.resolve().relative_to(ds.root.resolve())
    except ValueError:
        pass
    else:
        raise TrainingConfigError(config.path, f"output.run_dir {run_dir} is inside the dataset folder {ds.root}")
    ckpt_path = run_dir / CHECKPOINT
    state: dict[str, Any] | None = None
    fingerprint = _fingerprint(config)
    if ckpt_path.exists():
        if not resume:
            raise TrainingError(
                f"{run_dir} already holds a training run; resume it (radlens train --resume) "
                "or set [output] run_dir to a new folder"
            )
        state = load_checkpoint(ckpt_path)
        diffs = _fingerprint_differences(state.get("fingerprint", {}), fingerprint)
        if diffs:
            raise TrainingError(
                f"{run_dir} holds a run with a different config, so it cannot be resumed with this one "
                f"({'; '.join(diffs)}); set [output] run_dir to a new folder"
            )
    if ranks.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(run_dir / CONFIG_COPY, dumps_toml(config.to_dict()))

    device = rank_device(select_device(cfg.device), ranks)
    amp = cfg.amp and device.startswith("cuda")
    label_name = str(ds.manifest.get("label_name") or DEFAULT_LABEL)
    with _torch_settings(threads_per_rank(cfg.num_threads, ranks)), process_group(ranks, device):
        torch.manual_seed(cfg.seed)
        model = build_network(config, args).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        ema = weight_average(model, cfg.ema_decay)
        judged = model if ema is None else ema.module  # the weights that are validated and kept
        task = make_task(config, ds, train_idx, val_idx, device, amp, cancel)
        if ranks.distributed:
            if not task.distributable:
                raise DistributedError(
                    f"{config.model.architecture} trains in one process only; DDP (torchrun, --nproc) "
                    "is for the slice classifiers"
                )
            task.ranks = ranks
        steps_per_epoch = task.steps_per_epoch()

        def factor(step: int) -> float:
            return lr_factor(step, steps_per_epoch, cfg.epochs, cfg.warmup_epochs, cfg.schedule)

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        amp_dtype = autocast_dtype(device) if amp else None
        scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

        history: list[dict[str, Any]] = []
        best_auc, best_epoch, since_best, start_epoch, finished = -math.inf, 0, 0, 0, False
        best_state: dict[str, torch.Tensor] | None = None
        if state is not None:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            if state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            if ema is not None:
                ema.load_state_dict(state["ema"])
            history = list(state["history"])
            best_auc, best_epoch = float(state["best_auc"]), int(state["best_epoch"])
            since_best, start_epoch = int(state["since_best"]), int(state["epoch"])
            finished = bool(state["finished"]) or start_epoch >= cfg.epochs
            best_state = dict(state["best_model"])
            # the files written after the checkpoint may be missing or one epoch ahead: rewrite them
            if ranks.is_main:
                _save_weights(run_dir / BEST_WEIGHTS, best_state)
                _write_metrics(run_dir, history)
            on_progress(start_epoch / cfg.epochs, f"resuming after epoch {start_epoch}/{cfg.epochs}")

        net = wrap(model, ranks, device)  # what the steps run (DDP averages its gradients across ranks)
        epoch = start_epoch
        while not finished:
            t0 = time.perf_counter()
            # dropout and augmentation differ between ranks (they see different slices); rank 0's are one process's
            torch.manual_seed(_epoch_seed(cfg.seed, epoch, 0) + ranks.rank)
            aug_gen = torch.Generator().manual_seed(_epoch_seed(cfg.seed, epoch, 2) + ranks.rank)
            net.train()
            loss_sum, seen = 0.0, 0
            lr = optimizer.param_groups[0]["lr"]
            batches = task.batches(epoch, _epoch_seed(cfg.seed, epoch, 1), aug_gen)
            for step, batch in enumerate(batches):
                cancel.raise_if_cancelled()
                loss = task.loss(net, batch)
                loss_value = float(loss.detach())
                if not math.isfinite(loss_value):
                    raise TrainingError(
                        f"the loss became {loss_value} at batch {step + 1} of epoch {epoch + 1} (dataset samples "
                        f"{sample_list(batch.rows.tolist())}); training stopped; lower train.lr or check these slices"
                    )
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
                scaler.step(optimizer)
                scaler.update()
                if ema is not None:
                    ema.update_parameters(model)
                lr = optimizer.param_groups[0]["lr"]
                scheduler.step()
                loss_sum += loss_value * batch.x.shape[0]
                seen += batch.x.shape[0]
                on_progress(
                    (epoch + (step + 1) / steps_per_epoch) / cfg.epochs,
                    f"epoch {epoch + 1}/{cfg.epochs} step {step + 1}/{steps_per_epoch} loss {loss_value:.4f}",
                )
            loss_sum, seen_all = sum_across([loss_sum, seen], ranks, device)
            train_loss = loss_sum / max(1.0, seen_all)
            v = task.validate(judged, epoch)
            val_loss = v.loss
            record = {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                "val_loss": val_loss,
                **{f"val_{k}": value for k, value in v.metrics.items()},
                "lr": lr,
                "seconds": time.perf_counter() - t0,
            }
            improved = math.isfinite(v.score) and v.score > best_auc
            if improved:
                best_auc, best_epoch, since_best = float(v.score), epoch + 1, 0
                best_state = _cpu_state(judged)
            else:
                since_best += 1
            record["best"] = improved
            history.append(record)
            epoch += 1
            stop_early = cfg.early_stopping_patience > 0 and since_best >= cfg.early_stopping_patience
            finished = agree(epoch >= cfg.epochs or stop_early, ranks, device)
            if stop_early:
                record["stopped_early"] = True
            assert best_state is not None
            if not ranks.is_main:
                continue
            _save_checkpoint(
                ckpt_path,
                {
                    "format": CHECKPOINT_FORMAT,
                    "epoch": epoch,
                    "model": _cpu_state(model),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict() if scaler.is_enabled() else {},
                    "ema": {} if ema is None else ema.state_dict(),
                    "best_auc": best_auc,
                    "best_epoch": best_epoch,
                    "best_model": best_state,
                    "since_best": since_best,
                    "history": [finite_or_none(r) for r in history],
                    "finished": finished,
                    "fingerprint": fingerprint,
                },
            )
            if improved:
                _save_weights(run_dir / BEST_WEIGHTS, best_state)
            _write_metrics(run_dir, history)
            shown = " ".join(f"{_SHOWN[k]} {value:.3f}" for k, value in v.metrics.items() if k in _SHOWN)
            on_progress(
                epoch / cfg.epochs, f"epoch {epoch}/{cfg.epochs} loss {train_loss:.4f} val loss {val_loss:.4f} {shown}"
            )
            if on_epoch is not None:
                on_epoch(dict(record))

    if not ranks.is_main:
        return run_dir
    score = _SHOWN[task.score_name]
    if best_state is None:
        raise TrainingError(f"{run_dir}: no epoch finished with a validation {score}; nothing to save")
    from inference.models.safe_load import sha256_of

    sha = sha256_of(run_dir / BEST_WEIGHTS)
    threshold = None
    if config.card.threshold is None:
        model.load_state_dict(best_state)
        chosen = task.validate(model, best_epoch - 1)
        if chosen.probabilities is not None and chosen.labels is not None:
            from inference.training.metrics import f1_optimal_threshold

            threshold = f1_optimal_threshold(chosen.labels, chosen.probabilities)
    task_input = task.card_input(spec.size, spec.context_slices, spec.window)
    card = card_dict(config, args, sha, best_auc, best_epoch, task_input, label_name, threshold, task.score_name)
    model.load_state_dict(best_state)  # the saved weights' features go into the card
    card["domain"] = _domain(ds, card["task"], model, device)
    _write_card(run_dir, card)
    on_progress(1.0, f"done: best validation {score} {best_auc:.3f} at epoch {best_epoch}")
    return run_dir
