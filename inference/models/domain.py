"""A model card's input domain: what inputs the model was made for, and its training inputs' statistics.

The ``[domain]`` table of a card (all keys optional; a card without it accepts any 3-D volume of
its modality, with a warning that its domain is not stated)::

    [domain]
    body_region = ["chest", "head"]     # what the volume must show ("chest", "head", "brain", "abdomen"...)
    sequence = ["T1"]                   # MR only: the contrasts it expects ("T1", "T2", "FLAIR", "DWI"...)
    dimensionality = "volume"           # "volume": one 3-D volume; "slices": slice-wise, a single slice will do
    slices = [16, 2000]                 # number of slices (min, max)
    in_plane_size = [64, 2048]          # rows/columns (min, max)
    in_plane_spacing_mm = [0.3, 2.0]    # pixel spacing (min, max)
    slice_spacing_mm = [0.3, 7.0]       # distance between slices (min, max)
    orientation = "any"                 # "any" or "axial" (slice normal within 30° of the body's axis)

    [domain.features]                   # slice classifiers: pooled network features (mean, spread, threshold,
                                        # inputs, source); see inference/engine/feature_statistics.py

    [domain.intensity]                  # written by `radlens train`; see inference/engine/input_statistics.py
    quantiles = [...]                   # mean over the training inputs of the model-input quantiles
    spread = [...]                      # their standard deviation
    threshold = 3.0                     # out-of-distribution score above which a warning is shown
    inputs = 24                         # how many training inputs they come from
    source = "train split of dataset v14"
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inference.errors import ModelCardError

#: The quantile levels of the model-input intensities that ``[domain.intensity]`` records.
QUANTILE_LEVELS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98)

BODY_REGIONS = ("head", "brain", "neck", "chest", "abdomen", "pelvis", "extremity", "whole-body")
SEQUENCES = ("T1", "T2", "PD", "FLAIR", "DWI", "ADC", "SWI", "PERFUSION", "ANGIO")
DIMENSIONALITY = ("volume", "slices")
ORIENTATIONS = ("any", "axial")

_DOMAIN_KEYS = {
    "body_region",
    "sequence",
    "dimensionality",
    "slices",
    "in_plane_size",
    "in_plane_spacing_mm",
    "slice_spacing_mm",
    "orientation",
    "intensity",
    "features",
}
_INTENSITY_KEYS = {"quantiles", "spread", "threshold", "inputs", "source"}
_FEATURE_KEYS = {"mean", "spread", "threshold", "inputs", "source"}


@dataclass(frozen=True)
class IntensityStats:
    """The training inputs' model-input intensity quantiles (at :data:`QUANTILE_LEVELS`)."""

    quantiles: tuple[float, ...]
    spread: tuple[float, ...]
    threshold: float = 3.0
    inputs: int = 0
    source: str = ""

    def table(self) -> dict[str, Any]:
        return {
            "quantiles": [round(q, 4) for q in self.quantiles],
            "spread": [round(s, 4) for s in self.spread],
            "threshold": round(self.threshold, 3),
            "inputs": self.inputs,
            "source": self.source,
        }


@dataclass(frozen=True)
class FeatureStats:
    """The training inputs' pooled network features (:mod:`inference.engine.feature_statistics`)."""

    mean: tuple[float, ...]
    spread: tuple[float, ...]
    threshold: float = 3.0
    inputs: int = 0
    source: str = ""

    def table(self) -> dict[str, Any]:
        return {
            "mean": [round(m, 5) for m in self.mean],
            "spread": [round(s, 5) for s in self.spread],
            "threshold": round(self.threshold, 3),
            "inputs": self.inputs,
            "source": self.source,
        }


@dataclass(frozen=True)
class InputDomain:
    body_region: tuple[str, ...] = ()
    sequence: tuple[str, ...] = ()
    dimensionality: str = "volume"
    slices: tuple[int, int] | None = None
    in_plane_size: tuple[int, int] | None = None
    in_plane_spacing_mm: tuple[float, float] | None = None
    slice_spacing_mm: tuple[float, float] | None = None
    orientation: str = "any"
    intensity: IntensityStats | None = None
    features: FeatureStats | None = None
    stated: bool = field(default=False, compare=False)  # False: the card has no [domain] table

    def summary(self) -> dict[str, Any]:
        return {
            "body_region": list(self.body_region),
            "sequence": list(self.sequence),
            "dimensionality": self.dimensionality,
            "slices": list(self.slices) if self.slices else None,
            "in_plane_spacing_mm": list(self.in_plane_spacing_mm) if self.in_plane_spacing_mm else None,
            "slice_spacing_mm": list(self.slice_spacing_mm) if self.slice_spacing_mm else None,
            "orientation": self.orientation,
            "intensity_statistics": self.intensity is not None,
        }


def _choices(value: Any, allowed: tuple[str, ...], key: str, path: Path, upper: bool = False) -> tuple[str, ...]:
    import difflib

    items = [value] if isinstance(value, str) else list(value)
    out = []
    for item in items:
        text = str(item).upper() if upper else str(item).lower()
        if text not in allowed:
            close = difflib.get_close_matches(text, allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ModelCardError(path, f"{key} = {item!r} is not one of {', '.join(allowed)}{hint}")
        out.append(text)
    return tuple(out)


def _range(value: Any, kind: type, key: str, path: Path) -> Any:
    if value is None:
        return None
    try:
        lo, hi = (kind(v) for v in value)
    except (TypeError, ValueError):
        raise ModelCardError(path, f"{key} must be [min, max], got {value!r}") from None
    if not 0 <= lo <= hi:
        raise ModelCardError(path, f"{key} must be [min, max] with 0 <= min <= max, got {value!r}")
    return (lo, hi)


def _floats(value: Any, key: str, path: Path) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ModelCardError(path, f"{key} must be a list of numbers, got {value!r}") from None
    if len(out) != len(QUANTILE_LEVELS):
        raise ModelCardError(path, f"{key} must have {len(QUANTILE_LEVELS)} values (one per level), got {len(out)}")
    return out


def parse_intensity(data: Any, path: Path) -> IntensityStats:
    if not isinstance(data, dict):
        raise ModelCardError(path, f"[domain.intensity] must be a table, got {data!r}")
    extra = sorted(set(data) - _INTENSITY_KEYS)
    if extra:
        raise ModelCardError(path, f"unknown key(s) in [domain.intensity]: {', '.join(map(repr, extra))}")
    for key in ("quantiles", "spread"):
        if key not in data:
            raise ModelCardError(path, f"[domain.intensity] needs {key!r}")
    quantiles = _floats(data["quantiles"], "domain.intensity.quantiles", path)
    if any(b < a for a, b in itertools.pairwise(quantiles)):
        raise ModelCardError(path, "domain.intensity.quantiles must not decrease")
    spread = _floats(data["spread"], "domain.intensity.spread", path)
    if any(s < 0 for s in spread):
        raise ModelCardError(path, "domain.intensity.spread must not be negative")
    threshold = float(data.get("threshold", 3.0))
    if threshold <= 0:
        raise ModelCardError(path, f"domain.intensity.threshold must be positive, got {threshold}")
    return IntensityStats(quantiles, spread, threshold, int(data.get("inputs", 0)), str(data.get("source", "")))


def parse_features(data: Any, path: Path) -> FeatureStats:
    if not isinstance(data, dict):
        raise ModelCardError(path, f"[domain.features] must be a table, got {data!r}")
    extra = sorted(set(data) - _FEATURE_KEYS)
    if extra:
        raise ModelCardError(path, f"unknown key(s) in [domain.features]: {', '.join(map(repr, extra))}")
    try:
        mean = tuple(float(v) for v in data["mean"])
        spread = tuple(float(v) for v in data["spread"])
    except KeyError as exc:
        raise ModelCardError(path, f"[domain.features] needs {exc.args[0]!r}") from None
    except (TypeError, ValueError):
        raise ModelCardError(path, "domain.features.mean and .spread must be lists of numbers") from None
    if not mean or len(mean) != len(spread) or any(s < 0 for s in spread):
        raise ModelCardError(path, "domain.features.mean and .spread must be as long as each other, spreads >= 0")
    threshold = float(data.get("threshold", 3.0))
    if threshold <= 0:
        raise ModelCardError(path, f"domain.features.threshold must be positive, got {threshold}")
    return FeatureStats(mean, spread, threshold, int(data.get("inputs", 0)), str(data.get("source", "")))


def parse_domain(data: Any, path: Path) -> InputDomain:
    """Validate a card's ``[domain]`` table; every problem names the key and the value it got."""
    if data is None:
        return InputDomain()
    if not isinstance(data, dict):
        raise ModelCardError(path, f"[domain] must be a table, got {data!r}")
    extra = set(data) - _DOMAIN_KEYS
    if extra:
        import difflib

        hints = [
            f"{k!r} (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(k, _DOMAIN_KEYS, n=1)) else repr(k)
            for k in sorted(extra)
        ]
        raise ModelCardError(path, f"unknown key(s) in [domain]: {', '.join(hints)}")
    return InputDomain(
        body_region=_choices(data.get("body_region", []), BODY_REGIONS, "domain.body_region", path),
        sequence=_choices(data.get("sequence", []), SEQUENCES, "domain.sequence", path, upper=True),
        dimensionality=_choices(data.get("dimensionality", "volume"), DIMENSIONALITY, "domain.dimensionality", path)[0],
        slices=_range(data.get("slices"), int, "domain.slices", path),
        in_plane_size=_range(data.get("in_plane_size"), int, "domain.in_plane_size", path),
        in_plane_spacing_mm=_range(data.get("in_plane_spacing_mm"), float, "domain.in_plane_spacing_mm", path),
        slice_spacing_mm=_range(data.get("slice_spacing_mm"), float, "domain.slice_spacing_mm", path),
        orientation=_choices(data.get("orientation", "any"), ORIENTATIONS, "domain.orientation", path)[0],
        intensity=parse_intensity(data["intensity"], path) if "intensity" in data else None,
        features=parse_features(data["features"], path) if "features" in data else None,
        stated=True,
    )
