"""Training configuration: a TOML file, validated like a model card (unknown keys are refused
with a "did you mean" hint, every error names the key and the value it got).

Example::

    [data]
    dataset = "datasets/lidc-slices"     # relative paths are relative to this file

    [model]
    architecture = "cnn"                 # keras-baseline | cnn | cnn-attention
    args = { channels = [16, 32, 64, 128], dropout = 0.3 }

    [train]
    epochs = 20
    batch_size = 32
    lr = 1e-3
    weight_decay = 1e-4
    schedule = "cosine"                  # cosine | step | none
    warmup_epochs = 1
    class_weighting = true               # pos_weight = negatives / positives of the train split
    early_stopping_patience = 5          # epochs without a better validation AUC; 0 = never stop
    attention_loss = 0.0                 # cnn-attention: weight of the mask-guided attention loss
    attention_target = "touch"           # touch: all attention on cells the lesion touches;
                                         # coverage: attention in proportion to the lesion's share of each cell
    ema_decay = 0.0                      # > 0: validate and keep an exponential moving average of the weights
    sequence_length = 32                 # cnn-rnn: consecutive slices per training window
    patch_size = [16, 64, 64]            # unet3d: slices, rows, columns of a training patch
    seed = 0
    amp = true                           # mixed precision, CUDA only
    num_threads = 0                      # CPU threads; 0 = torch's default
    device = "auto"                      # auto | cpu | cuda | cuda:N | mps (as inference chooses)

    [augment]
    flip = true                          # random left-right flips
    rotate_deg = 10.0                    # uniform in ±rotate_deg
    scale = 0.1                          # zoom factor uniform in 1 ± scale
    intensity = 0.1                      # brightness and contrast jitter, ± this fraction
    noise = 0.0                          # Gaussian noise, SD uniform in [0, noise] (fraction of 0–1)

    [card]
    name = "nodule-cnn"
    version = "1.0.0"
    modality = ["CT"]
    explanation = "gradcam"              # gradcam | attention | none (default: by architecture)
    threshold = 0.5                      # or "auto": the F1-optimal threshold on the validation split
    intended_use = "research: lung nodule slice detection"
    licence = "Apache-2.0"
    default_for = []
    description = ""

    [output]
    run_dir = "runs/nodule-cnn"
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from inference.engine.device import DEVICE_CHOICES
from inference.errors import RadLensError
from inference.suggest import did_you_mean, unknown_keys
from inference.table_file import read_table

__all__ = [
    "ATTENTION_TARGETS",
    "DEVICES",
    "EXPLANATIONS",
    "SCHEDULES",
    "TRAINABLE_ARCHITECTURES",
    "AugmentConfig",
    "CardConfig",
    "DataConfig",
    "ModelConfig",
    "OutputConfig",
    "TrainConfig",
    "TrainingConfig",
    "TrainingConfigError",
    "dumps_toml",
    "load_config",
    "parse_config",
]

SCHEDULES = ("cosine", "step", "none")
#: What the mask-guided attention loss asks for (see ``train.attention_guidance_loss``).
ATTENTION_TARGETS = ("touch", "coverage")
DEVICES = DEVICE_CHOICES
EXPLANATIONS = ("gradcam", "attention", "none")
#: Architectures ``train`` can fit: (B, C, H, W) slice classifiers with one logit, the CNN + RNN
#: over windows of consecutive slices (a stack classifier), and the 3-D U-Net on patches (lesion masks).
TRAINABLE_ARCHITECTURES = ("keras-baseline", "cnn", "cnn-attention", "cnn-rnn", "unet3d")


class TrainingConfigError(RadLensError):
    """A training config is missing a key or has a wrong one."""

    def __init__(self, path: str | Path | None, reason: str) -> None:
        self.path = None if path is None else Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path else reason)


@dataclass(frozen=True)
class DataConfig:
    dataset: Path


@dataclass(frozen=True)
class ModelConfig:
    architecture: str = "cnn"
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    warmup_epochs: int = 0
    class_weighting: bool = True
    early_stopping_patience: int = 5
    seed: int = 0
    amp: bool = True
    attention_loss: float = 0.0
    attention_target: str = "touch"
    ema_decay: float = 0.0
    sequence_length: int = 32
    patch_size: tuple[int, int, int] = (16, 64, 64)
    num_threads: int = 0
    device: str = "auto"


@dataclass(frozen=True)
class AugmentConfig:
    flip: bool = True
    rotate_deg: float = 10.0
    scale: float = 0.1
    intensity: float = 0.1
    noise: float = 0.0


@dataclass(frozen=True)
class CardConfig:
    name: str = "slice-classifier"
    version: str = "0.1.0"
    modality: tuple[str, ...] = ()
    explanation: str = "gradcam"  # default by architecture: attention for cnn-attention, else gradcam
    threshold: float | None = 0.5  # None: chosen on the validation split ("auto")
    intended_use: str = "research only: slice classification"
    licence: str = "proprietary"
    default_for: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class OutputConfig:
    run_dir: Path


@dataclass(frozen=True)
class TrainingConfig:
    data: DataConfig
    output: OutputConfig
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    card: CardConfig = field(default_factory=CardConfig)
    path: Path | None = None  # the file it was read from, if any

    def to_dict(self) -> dict[str, Any]:
        """The complete config (defaults filled in, paths absolute), as TOML-ready tables."""

        def table(obj: Any) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for f in fields(obj):
                v = getattr(obj, f.name)
                if isinstance(v, Path):
                    v = str(v)
                elif isinstance(v, tuple):
                    v = list(v)
                elif isinstance(v, dict):
                    v = _plain(v)
                elif v is None and f.name == "threshold":
                    v = "auto"
                out[f.name] = v
            return out

        return {
            "data": table(self.data),
            "model": table(self.model),
            "train": table(self.train),
            "augment": table(self.augment),
            "card": table(self.card),
            "output": table(self.output),
        }


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


_SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "augment": AugmentConfig,
    "card": CardConfig,
    "output": OutputConfig,
}


def _unknown(keys: set[str], allowed: set[str], where: str, path: Path | None) -> None:
    hints = unknown_keys(keys, allowed)
    if hints:
        raise TrainingConfigError(path, f"unknown key(s) in {where}: {hints}")


def _choice(value: Any, choices: tuple[str, ...], key: str, path: Path | None) -> str:
    if isinstance(value, str) and value in choices:
        return value
    hint = did_you_mean(value, choices)
    raise TrainingConfigError(path, f"{key} = {value!r} is not one of {', '.join(choices)}{hint}")


def _device(value: Any, path: Path | None) -> str:
    """One of :data:`DEVICES`, or ``cuda:N`` for one GPU of several."""
    if isinstance(value, str) and value.startswith("cuda:") and value[5:].isdigit():
        return value
    return _choice(value, DEVICES, "train.device", path)


def _bool(value: Any, key: str, path: Path | None) -> bool:
    if not isinstance(value, bool):
        raise TrainingConfigError(path, f"{key} must be true or false, got {value!r}")
    return value


def _int(value: Any, key: str, path: Path | None, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TrainingConfigError(path, f"{key} must be a whole number, got {value!r}")
    if minimum is not None and value < minimum:
        raise TrainingConfigError(path, f"{key} must be at least {minimum}, got {value!r}")
    return value


def _float(
    value: Any, key: str, path: Path | None, minimum: float | None = None, maximum: float | None = None
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TrainingConfigError(path, f"{key} must be a number, got {value!r}")
    out = float(value)
    if (minimum is not None and out < minimum) or (maximum is not None and out > maximum):
        lo = "-inf" if minimum is None else f"{minimum:g}"
        hi = "inf" if maximum is None else f"{maximum:g}"
        raise TrainingConfigError(path, f"{key} = {value!r} is outside [{lo}, {hi}]")
    return out


def _patch(value: Any, key: str, path: Path | None) -> tuple[int, int, int]:
    """Three whole numbers, each a multiple of 8 (the 3-D U-Net halves its grid three times)."""
    if not isinstance(value, list | tuple) or len(value) != 3:
        raise TrainingConfigError(path, f"{key} must be three numbers [slices, rows, columns], got {value!r}")
    sizes = tuple(_int(v, key, path, 8) for v in value)
    if any(v % 8 for v in sizes):
        raise TrainingConfigError(path, f"{key} = {list(value)!r}: each size must be a multiple of 8")
    return (sizes[0], sizes[1], sizes[2])


def _str(value: Any, key: str, path: Path | None) -> str:
    if not isinstance(value, str):
        raise TrainingConfigError(path, f"{key} must be a string, got {value!r}")
    return value


def _strings(value: Any, key: str, path: Path | None) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TrainingConfigError(path, f"{key} must be a string or a list of strings, got {value!r}")
    return tuple(v.upper() for v in value)


def _path(value: Any, key: str, path: Path | None) -> Path:
    p = Path(os.path.expanduser(_str(value, key, path)))
    if not p.is_absolute():
        base = path.parent if path is not None else Path.cwd()
        p = base / p
    return p.resolve()


#: What a card explains with when the config does not say (cnn-rnn and unet3d: no per-slice map).
_DEFAULT_EXPLANATION = {"cnn-attention": "attention", "cnn-rnn": "none", "unet3d": "none"}


def parse_config(data: dict[str, Any], path: Path | None = None) -> TrainingConfig:
    """Validate a config's contents; every problem names the key and the value it got."""
    _unknown(set(data), set(_SECTIONS), "the config", path)
    for name in ("data", "output"):
        if name not in data:
            raise TrainingConfigError(path, f"missing section [{name}]")
    tables: dict[str, dict[str, Any]] = {}
    for name, cls in _SECTIONS.items():
        t = data.get(name, {})
        if not isinstance(t, dict):
            raise TrainingConfigError(path, f"{name} must be a table ([{name}]), got {t!r}")
        _unknown(set(t), {f.name for f in fields(cls)}, f"[{name}]", path)
        tables[name] = t

    d = tables["data"]
    if "dataset" not in d:
        raise TrainingConfigError(path, "missing data.dataset (the dataset folder)")
    data_cfg = DataConfig(dataset=_path(d["dataset"], "data.dataset", path))

    o = tables["output"]
    if "run_dir" not in o:
        raise TrainingConfigError(path, "missing output.run_dir (where checkpoints and the model go)")
    output_cfg = OutputConfig(run_dir=_path(o["run_dir"], "output.run_dir", path))

    m = tables["model"]
    arch = m.get("architecture", ModelConfig.architecture)
    if not isinstance(arch, str) or arch not in TRAINABLE_ARCHITECTURES:
        from inference.models.architectures import unknown_architecture_message

        raise TrainingConfigError(path, "model.architecture: " + unknown_architecture_message(arch))
    args = m.get("args", {})
    if not isinstance(args, dict):
        raise TrainingConfigError(path, f"model.args must be a table, got {args!r}")
    model_cfg = ModelConfig(architecture=arch, args=dict(args))

    t = tables["train"]
    dt = TrainConfig()
    train_cfg = TrainConfig(
        epochs=_int(t.get("epochs", dt.epochs), "train.epochs", path, 1),
        batch_size=_int(t.get("batch_size", dt.batch_size), "train.batch_size", path, 1),
        lr=_float(t.get("lr", dt.lr), "train.lr", path, 0.0),
        weight_decay=_float(t.get("weight_decay", dt.weight_decay), "train.weight_decay", path, 0.0),
        schedule=_choice(t.get("schedule", dt.schedule), SCHEDULES, "train.schedule", path),
        warmup_epochs=_int(t.get("warmup_epochs", dt.warmup_epochs), "train.warmup_epochs", path, 0),
        class_weighting=_bool(t.get("class_weighting", dt.class_weighting), "train.class_weighting", path),
        early_stopping_patience=_int(
            t.get("early_stopping_patience", dt.early_stopping_patience), "train.early_stopping_patience", path, 0
        ),
        seed=_int(t.get("seed", dt.seed), "train.seed", path, 0),
        amp=_bool(t.get("amp", dt.amp), "train.amp", path),
        attention_loss=_float(t.get("attention_loss", dt.attention_loss), "train.attention_loss", path, 0.0, 100.0),
        attention_target=_choice(
            t.get("attention_target", dt.attention_target), ATTENTION_TARGETS, "train.attention_target", path
        ),
        ema_decay=_float(t.get("ema_decay", dt.ema_decay), "train.ema_decay", path, 0.0, 0.9999),
        sequence_length=_int(t.get("sequence_length", dt.sequence_length), "train.sequence_length", path, 2),
        patch_size=_patch(t.get("patch_size", list(dt.patch_size)), "train.patch_size", path),
        num_threads=_int(t.get("num_threads", dt.num_threads), "train.num_threads", path, 0),
        device=_device(t.get("device", dt.device), path),
    )
    if train_cfg.lr <= 0:
        raise TrainingConfigError(path, f"train.lr must be positive, got {train_cfg.lr!r}")
    if train_cfg.warmup_epochs >= train_cfg.epochs and train_cfg.warmup_epochs > 0:
        raise TrainingConfigError(
            path,
            f"train.warmup_epochs = {train_cfg.warmup_epochs} leaves no epochs after warm-up (epochs = "
            f"{train_cfg.epochs})",
        )

    a = tables["augment"]
    da = AugmentConfig()
    augment_cfg = AugmentConfig(
        flip=_bool(a.get("flip", da.flip), "augment.flip", path),
        rotate_deg=_float(a.get("rotate_deg", da.rotate_deg), "augment.rotate_deg", path, 0.0, 180.0),
        scale=_float(a.get("scale", da.scale), "augment.scale", path, 0.0, 0.9),
        intensity=_float(a.get("intensity", da.intensity), "augment.intensity", path, 0.0, 1.0),
        noise=_float(a.get("noise", da.noise), "augment.noise", path, 0.0, 0.5),
    )

    c = tables["card"]
    dc = CardConfig()
    card_cfg = CardConfig(
        name=_str(c.get("name", dc.name), "card.name", path),
        version=_str(c.get("version", dc.version), "card.version", path),
        modality=_strings(c.get("modality", list(dc.modality)), "card.modality", path),
        explanation=_choice(
            c.get("explanation", _DEFAULT_EXPLANATION.get(arch, "gradcam")),
            EXPLANATIONS,
            "card.explanation",
            path,
        ),
        threshold=None
        if c.get("threshold") == "auto"
        else _float(c.get("threshold", dc.threshold), "card.threshold", path, 0.0, 1.0),
        intended_use=_str(c.get("intended_use", dc.intended_use), "card.intended_use", path),
        licence=_str(c.get("licence", dc.licence), "card.licence", path),
        default_for=_strings(c.get("default_for", list(dc.default_for)), "card.default_for", path),
        description=_str(c.get("description", dc.description), "card.description", path),
    )
    if not card_cfg.name.strip():
        raise TrainingConfigError(path, "card.name must not be empty")
    if card_cfg.explanation != "none" and _DEFAULT_EXPLANATION.get(arch) == "none":
        raise TrainingConfigError(
            path, f"card.explanation = {card_cfg.explanation!r}: the engine draws no map for {arch!r}; use 'none'"
        )
    if card_cfg.explanation == "attention" and model_cfg.architecture != "cnn-attention":
        raise TrainingConfigError(
            path, f"card.explanation = 'attention' needs architecture 'cnn-attention', not {arch!r}"
        )
    return TrainingConfig(
        data=data_cfg,
        output=output_cfg,
        model=model_cfg,
        train=train_cfg,
        augment=augment_cfg,
        card=card_cfg,
        path=path,
    )


def load_config(path: str | Path) -> TrainingConfig:
    """A training config file (TOML), validated."""
    return parse_config(read_table(path, "the config", TrainingConfigError), Path(path).resolve())


# --------------------------------------------------------------------------------------------
# writing TOML (configs copied into run folders, model cards) and files, atomically


def _toml_key(key: str) -> str:
    if key and all(ch.isalnum() or ch in "-_" for ch in key):
        return key
    return _toml_value(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        escaped = (
            value.replace("\\", "\\\\")
            .replace('"', '\\"')
            .replace("\n", "\\n")
            .replace("\r", "\\r")
            .replace("\t", "\\t")
        )
        return f'"{escaped}"'
    if isinstance(value, Path):
        return _toml_value(str(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def dumps_toml(data: dict[str, Any]) -> str:
    """A small TOML writer: scalars and inline tables first, then ``[table]`` sections and
    ``[[array of tables]]`` (lists of dicts). Enough for configs and model cards."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    arrays: list[tuple[str, list[dict[str, Any]]]] = []
    for k, v in data.items():
        if isinstance(v, dict) and k != "architecture_args" and k != "args":
            tables.append((k, v))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            arrays.append((k, v))
        else:
            lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
    for k, t in tables:
        lines.append("")
        lines.append(f"[{_toml_key(k)}]")
        lines.extend(f"{_toml_key(kk)} = {_toml_value(vv)}" for kk, vv in t.items())
    for k, items in arrays:
        for item in items:
            lines.append("")
            lines.append(f"[[{_toml_key(k)}]]")
            lines.extend(f"{_toml_key(kk)} = {_toml_value(vv)}" for kk, vv in item.items())
    return "\n".join(lines) + "\n"
