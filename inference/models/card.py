"""Model cards: what a model is, what it expects, what it outputs, and its weights' checksum.

A card is a TOML (or JSON) file next to its weights. Unknown keys are refused so a typo does
not silently change preprocessing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from inference.errors import ModelCardError
from inference.models.domain import InputDomain, parse_domain
from inference.suggest import did_you_mean, unknown_keys
from inference.table_file import read_table

__all__ = [
    "DEFAULT_LABEL_COLOUR",
    "Explanation",
    "InputDomain",
    "InputSpec",
    "LabelSpec",
    "ModelCard",
    "Normalise",
    "Task",
    "WeightsFormat",
    "load_card",
    "parse_card",
]


class Task(StrEnum):
    SLICE_CLASSIFICATION = "slice-classification"
    VOLUME_CLASSIFICATION = "volume-classification"
    SEGMENTATION = "segmentation"


class Normalise(StrEnum):
    WINDOW = "window"  # clip to the window, scale to [0, 1]
    PERCENTILE = "percentile"  # 0.5–99.5 percentiles of the volume to [0, 1]
    ZSCORE = "zscore"  # (x - mean) / sd of the volume
    NONE = "none"


class WeightsFormat(StrEnum):
    STATE_DICT = "state-dict"  # torch.load(weights_only=True)
    SAFETENSORS = "safetensors"
    TORCHSCRIPT = "torchscript"
    ONNX = "onnx"  # run by onnxruntime (the radlens[onnx] extra)


class Explanation(StrEnum):
    NONE = "none"
    GRADCAM = "gradcam"
    ATTENTION = "attention"


#: A label's colour when its card gives none (RGB): what outputs and the viewer draw findings in.
DEFAULT_LABEL_COLOUR = (230, 25, 75)


@dataclass(frozen=True)
class LabelSpec:
    value: int
    name: str
    colour: tuple[int, int, int]


@dataclass(frozen=True)
class InputSpec:
    """Preprocessing: in-plane size for slice models, spacing and patch for 3-D models."""

    size: tuple[int, int] | None = None
    context_slices: int = 0  # 2.5D: neighbours on each side stacked as channels
    window: tuple[float, float] | None = None  # (centre, width)
    normalise: Normalise = Normalise.WINDOW
    target_spacing: tuple[float, float, float] | None = None  # (i, j, k) mm for 3-D models
    patch_size: tuple[int, int, int] | None = None  # (k, j, i) voxels for sliding windows
    batch_size: int = 16

    @property
    def channels(self) -> int:
        return 2 * self.context_slices + 1


@dataclass(frozen=True)
class ModelCard:
    name: str
    version: str
    task: Task
    modality: tuple[str, ...]
    architecture: str
    weights: str
    sha256: str
    weights_format: WeightsFormat
    licence: str
    intended_use: str
    not_for_clinical_use: bool
    explanation: Explanation = Explanation.NONE
    input: InputSpec = field(default_factory=InputSpec)
    labels: tuple[LabelSpec, ...] = ()
    architecture_args: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    threshold: float = 0.5
    pipeline: str = ""  # a named adapter for models with their own multi-stage logic (e.g. deepbet)
    default_for: tuple[str, ...] = ()  # modalities for which this is the default model
    weights_distribution: str = ""  # weights shipped inside another installed package (e.g. "deepbet")
    extra_weights: tuple[tuple[str, str], ...] = ()  # (file, sha256) for multi-network pipelines
    domain: InputDomain = field(default_factory=InputDomain)  # the inputs it was made for
    path: Path = Path()

    @property
    def weights_path(self) -> Path:
        return self.resolve_file(self.weights)

    def resolve_file(self, name: str) -> Path:
        """A weights file next to the card, or inside the installed ``weights_distribution``."""
        if not self.weights_distribution:
            return (self.path.parent / name).resolve()
        from importlib.metadata import PackageNotFoundError, distribution

        try:
            dist = distribution(self.weights_distribution)
        except PackageNotFoundError:
            return Path(f"<{self.weights_distribution} is not installed>") / name
        for f in dist.files or []:
            if str(f).replace("\\", "/").endswith("/" + name) or str(f) == name:
                return Path(str(dist.locate_file(f))).resolve()
        return Path(f"<{name} not found in {self.weights_distribution}>")

    @property
    def key(self) -> str:
        return f"{self.name}@{self.version}"

    def accepts(self, modality: str) -> bool:
        return not self.modality or modality.upper() in self.modality

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "task": self.task.value,
            "modality": list(self.modality),
            "architecture": self.architecture,
            "explanation": self.explanation.value,
            "licence": self.licence,
            "intended_use": self.intended_use,
            "not_for_clinical_use": self.not_for_clinical_use,
            "labels": [{"value": lab.value, "name": lab.name} for lab in self.labels],
            "domain": self.domain.summary(),
            "card": str(self.path),
        }


_TOP_KEYS = {
    "name",
    "version",
    "task",
    "modality",
    "architecture",
    "architecture_args",
    "weights",
    "sha256",
    "weights_format",
    "licence",
    "intended_use",
    "not_for_clinical_use",
    "explanation",
    "input",
    "labels",
    "description",
    "threshold",
    "pipeline",
    "default_for",
    "weights_distribution",
    "extra_weights",
    "domain",
}
_INPUT_KEYS = {"size", "context_slices", "window", "normalise", "target_spacing", "patch_size", "batch_size"}


def _enum(enum: type[StrEnum], value: Any, key: str, path: Path) -> Any:
    try:
        return enum(value)
    except ValueError:
        choices = [e.value for e in enum]
        hint = did_you_mean(value, choices)
        raise ModelCardError(path, f"{key} = {value!r} is not one of {', '.join(choices)}{hint}") from None


def _unknown(keys: set[str], allowed: set[str], where: str, path: Path) -> None:
    hints = unknown_keys(keys, allowed)
    if hints:
        raise ModelCardError(path, f"unknown key(s) in {where}: {hints}")


def _tuple(value: Any, n: int, kind: type, key: str, path: Path) -> Any:
    if value is None:
        return None
    try:
        out = tuple(kind(v) for v in value)
    except (TypeError, ValueError):
        raise ModelCardError(path, f"{key} must be a list of {n} numbers, got {value!r}") from None
    if len(out) != n:
        raise ModelCardError(path, f"{key} must have {n} values, got {value!r}")
    return out


def parse_card(data: dict[str, Any], path: Path) -> ModelCard:
    """Validate a card's contents; every problem names the key and the value it got."""
    _unknown(set(data), _TOP_KEYS, "the card", path)
    required = ("name", "version", "task", "architecture", "weights", "sha256", "licence", "intended_use")
    missing = [k for k in required if k not in data]
    if missing:
        raise ModelCardError(path, f"missing required key(s): {', '.join(missing)}")
    sha = str(data["sha256"]).lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ModelCardError(path, f"sha256 must be 64 hexadecimal digits, got {data['sha256']!r}")
    inp = data.get("input", {})
    _unknown(set(inp), _INPUT_KEYS, "[input]", path)
    default_norm = "window" if inp.get("window") else "percentile"
    spec = InputSpec(
        size=_tuple(inp.get("size"), 2, int, "input.size", path),
        context_slices=int(inp.get("context_slices", 0)),
        window=_tuple(inp.get("window"), 2, float, "input.window", path),
        normalise=_enum(Normalise, inp.get("normalise", default_norm), "input.normalise", path),
        target_spacing=_tuple(inp.get("target_spacing"), 3, float, "input.target_spacing", path),
        patch_size=_tuple(inp.get("patch_size"), 3, int, "input.patch_size", path),
        batch_size=int(inp.get("batch_size", 16)),
    )
    if spec.normalise == Normalise.WINDOW and spec.window is None:
        raise ModelCardError(path, "input.normalise = 'window' needs input.window = [centre, width]")
    labels = []
    for n, lab in enumerate(data.get("labels", [])):
        try:
            colour = _tuple(lab.get("colour", DEFAULT_LABEL_COLOUR), 3, int, f"labels[{n}].colour", path)
            labels.append(LabelSpec(int(lab["value"]), str(lab["name"]), colour))
        except KeyError as exc:
            raise ModelCardError(path, f"labels[{n}] needs {exc.args[0]!r}") from None
    modality = data.get("modality", [])
    modality = [modality] if isinstance(modality, str) else modality
    return ModelCard(
        name=str(data["name"]),
        version=str(data["version"]),
        task=_enum(Task, data["task"], "task", path),
        modality=tuple(str(m).upper() for m in modality),
        architecture=str(data["architecture"]),
        architecture_args=dict(data.get("architecture_args", {})),
        weights=str(data["weights"]),
        sha256=sha,
        weights_format=_enum(WeightsFormat, data.get("weights_format", "state-dict"), "weights_format", path),
        licence=str(data["licence"]),
        intended_use=str(data["intended_use"]),
        not_for_clinical_use=bool(data.get("not_for_clinical_use", True)),
        explanation=_enum(Explanation, data.get("explanation", "none"), "explanation", path),
        input=spec,
        labels=tuple(labels),
        description=str(data.get("description", "")),
        threshold=float(data.get("threshold", 0.5)),
        pipeline=str(data.get("pipeline", "")),
        default_for=tuple(str(m).upper() for m in data.get("default_for", [])),
        weights_distribution=str(data.get("weights_distribution", "")),
        extra_weights=tuple((str(e["file"]), str(e["sha256"]).lower()) for e in data.get("extra_weights", [])),
        domain=parse_domain(data.get("domain"), path),
        path=path,
    )


def load_card(path: str | Path) -> ModelCard:
    """A card file (TOML, or JSON when named ``.json``), validated."""
    data = read_table(path, "the card", ModelCardError, json_too=True)
    return parse_card(data, Path(path).resolve())
