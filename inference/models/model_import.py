"""``radlens models add PATH``: a model the field already shares, with a card RadLens writes for it.

Recognised today: a **MONAI bundle** (``configs/metadata.json``, an inference config and
``models/model.pt`` or ``models/model.ts``) and an **ONNX** model, whose card the user completes
(modality, task, labels and preprocessing: :class:`OnnxCardOptions`). The card is written in the user's model folder
(:func:`inference.models.registry.user_models_dir`), never next to the model: labels from the
bundle's ``channel_def``, modality from its input's ``modality``, and the sha256 of the weights
and of both config files, so a changed bundle is refused until it is added again. The model's
files stay where they are; the card names them by absolute path.

A bundle whose config names anything but MONAI and PyTorch components is refused unless the user
says they trust it (:mod:`inference.models.bundle_safety`); the answer is kept in the card.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from inference.errors import ModelCardError, ModelLoadError
from inference.io.atomic import atomic_write
from inference.models.bundle_safety import unsafe_config_items
from inference.models.card import load_card
from inference.models.safe_load import sha256_of

__all__ = ["ModelKind", "OnnxCardOptions", "UntrustedModelError", "add_model", "detect_kind", "remove_model"]

#: Colours given to a bundle's labels in order (RGB); bundles carry none of their own.
PALETTE = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180))
_MODALITIES = {"CT": "CT", "MR": "MR", "MRI": "MR", "PET": "PT", "PT": "PT"}
INFERENCE_CONFIGS = ("inference.json", "inference.yaml", "inference.yml")


class ModelKind(StrEnum):
    MONAI_BUNDLE = "monai-bundle"
    ONNX = "onnx"


@dataclass(frozen=True)
class OnnxCardOptions:
    """What an ONNX file does not say about itself, given by the user (``radlens models add``'s
    flags). ``labels``: value → name; ``window``: (centre, width) for windowed CT input."""

    modality: str = ""
    task: str = ""
    labels: dict[int, str] = field(default_factory=dict)
    window: tuple[float, float] | None = None
    normalise: str = ""
    size: tuple[int, int] | None = None
    context_slices: int = 0
    patch_size: tuple[int, int, int] | None = None
    target_spacing: tuple[float, float, float] | None = None
    threshold: float = 0.5

    def missing(self) -> list[str]:
        wanted = {"--modality": self.modality, "--task": self.task}
        out = [flag for flag, value in wanted.items() if not value]
        if self.task == "slice-classification" and self.size is None:
            out.append("--size H,W")
        return out


class UntrustedModelError(ModelLoadError):
    """A model whose configuration could run code outside MONAI and PyTorch; nothing of it ran."""


def detect_kind(path: Path) -> ModelKind:
    """What ``path`` holds, or :class:`ModelCardError` saying what RadLens looked for."""
    if path.is_file() and path.suffix.lower() == ".onnx":
        return ModelKind.ONNX
    if (path / "configs" / "metadata.json").is_file():
        return ModelKind.MONAI_BUNDLE
    if (path / "dataset.json").is_file() and (path / "plans.json").is_file():
        raise ModelCardError(
            path,
            "this is an nnU-Net v2 result folder; running nnU-Net models is not supported yet "
            "(nnunetv2 2.8 pulls a CUDA build of torch through timm/torchvision)",
        )
    raise ModelCardError(
        path, "not a model RadLens can add: expected a MONAI bundle (configs/metadata.json) or an .onnx file"
    )


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "model"


def _bundle_files(root: Path) -> tuple[Path, Path, Path]:
    """(metadata, inference config, weights) of a bundle, or :class:`ModelCardError`."""
    metadata = root / "configs" / "metadata.json"
    config = next((root / "configs" / n for n in INFERENCE_CONFIGS if (root / "configs" / n).is_file()), None)
    if config is None:
        raise ModelCardError(root, "the bundle has no configs/inference.json (or .yaml)")
    weights = next((root / "models" / n for n in ("model.pt", "model.ts") if (root / "models" / n).is_file()), None)
    if weights is None:
        raise ModelCardError(root, "the bundle has no models/model.pt or models/model.ts")
    return metadata, config, weights


def read_bundle_config(path: Path) -> dict[str, Any]:
    """A bundle config file as a table (JSON, or YAML through MONAI's reader)."""
    if path.suffix == ".json":
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data
    from monai.bundle.config_parser import ConfigParser

    loaded: dict[str, Any] = ConfigParser.load_config_file(str(path))
    return loaded


def bundle_card(root: Path, name: str | None = None, *, trust: bool = False) -> dict[str, Any]:
    """The card of the MONAI bundle at ``root`` as a table; :class:`UntrustedModelError` when its
    config reaches beyond MONAI and PyTorch and ``trust`` is not given."""
    root = root.resolve()
    metadata_path, config_path, weights = _bundle_files(root)
    try:
        metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
        config = read_bundle_config(config_path)
    except (OSError, ValueError) as exc:
        raise ModelCardError(root, f"cannot read the bundle's configs ({exc})") from exc
    problems = unsafe_config_items(config)
    if problems and not trust:
        listed = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise UntrustedModelError(
            config_path,
            f"the bundle's config could run code outside MONAI and PyTorch ({listed}); add it with "
            "--trust only if you trust where it came from",
        )
    formats = metadata.get("network_data_format", {})
    inputs, outputs = formats.get("inputs", {}), formats.get("outputs", {})
    input_key = next(iter(inputs), "image")
    output_key = next(iter(outputs), "pred")
    modality = _MODALITIES.get(str(inputs.get(input_key, {}).get("modality", "")).upper())
    channel_def = outputs.get(output_key, {}).get("channel_def", {})
    labels = []
    for n, (value, label) in enumerate(sorted(((int(k), str(v)) for k, v in channel_def.items()))):
        if value == 0 or label.lower() == "background":
            continue
        labels.append({"value": value, "name": label, "colour": list(PALETTE[n % len(PALETTE)])})
    bundle_name = str(metadata.get("name") or root.name)
    return {
        "name": name or _slug(bundle_name),
        "version": str(metadata.get("version", "0")),
        "task": "segmentation",
        "modality": [modality] if modality else [],
        "architecture": ModelKind.MONAI_BUNDLE.value,
        "pipeline": ModelKind.MONAI_BUNDLE.value,
        "weights": str(weights),
        "weights_format": "torchscript" if weights.suffix == ".ts" else "state-dict",
        "sha256": sha256_of(weights),
        "extra_weights": [{"file": str(p), "sha256": sha256_of(p)} for p in (config_path, metadata_path)],
        "licence": str(metadata.get("license", "see the bundle's LICENSE")),
        "intended_use": str(metadata.get("description") or f"MONAI bundle {bundle_name}"),
        "not_for_clinical_use": True,
        "description": f"MONAI bundle {bundle_name} {metadata.get('version', '')}, added from {root}".strip(),
        "threshold": 0.5,
        "input": {"normalise": "none"},
        "labels": labels,
        "architecture_args": {
            "bundle_root": str(root),
            "config": str(config_path),
            "input_key": input_key,
            "output_key": output_key,
            "trusted": bool(problems),
        },
    }


def onnx_card(path: Path, name: str | None, options: OnnxCardOptions) -> dict[str, Any]:
    """The card of an ONNX file from what the user said of it; :class:`ModelCardError` naming the
    flags still needed."""
    path = path.resolve()
    missing = options.missing()
    if missing:
        raise ModelCardError(path, f"an ONNX model needs its card completed: give {', '.join(missing)}")
    normalise = options.normalise or ("window" if options.window else "percentile")
    inp: dict[str, Any] = {"normalise": normalise, "context_slices": options.context_slices}
    for key, value in (
        ("window", options.window),
        ("size", options.size),
        ("patch_size", options.patch_size),
        ("target_spacing", options.target_spacing),
    ):
        if value is not None:
            inp[key] = list(value)
    return {
        "name": name or _slug(path.stem),
        "version": "1",
        "task": options.task,
        "modality": [options.modality.upper()],
        "architecture": ModelKind.ONNX.value,
        "weights": str(path),
        "weights_format": "onnx",
        "sha256": sha256_of(path),
        "licence": "as given by the model's authors",
        "intended_use": f"ONNX model {path.name}, added by the user",
        "not_for_clinical_use": True,
        "description": f"ONNX model added from {path}",
        "threshold": options.threshold,
        "input": inp,
        "labels": [
            {"value": v, "name": n, "colour": list(PALETTE[i % len(PALETTE)])}
            for i, (v, n) in enumerate(sorted(options.labels.items()))
        ],
    }


def add_model(
    path: str | Path,
    name: str | None = None,
    *,
    trust: bool = False,
    folder: Path | None = None,
    onnx: OnnxCardOptions | None = None,
) -> Path:
    """Write the card of the model at ``path`` into the user's model folder; returns the card's path.

    The card is validated as RadLens reads it before it is kept (written atomically).
    """
    from inference.models.registry import user_models_dir

    root = Path(path)
    if not root.exists():
        raise ModelCardError(root, "no such file or folder")
    kind = detect_kind(root)
    if kind == ModelKind.ONNX:
        table = onnx_card(root, name, onnx or OnnxCardOptions())
    else:
        table = bundle_card(root, name, trust=trust)
    target = (folder or user_models_dir()) / str(table["name"])
    target.mkdir(parents=True, exist_ok=True)
    card_path: Path = target / "card.json"
    atomic_write(card_path, json.dumps(table, indent=2))
    try:
        load_card(card_path)
    except ModelCardError:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return card_path


def remove_model(name: str, *, folder: Path | None = None) -> Path:
    """Forget a model added with :func:`add_model` (its files stay where they were)."""
    from inference.models.registry import user_models_dir

    target = (folder or user_models_dir()) / name
    if not (target / "card.json").is_file():
        raise ModelCardError(target, f"no added model named {name!r}")
    shutil.rmtree(target)
    return Path(target)
