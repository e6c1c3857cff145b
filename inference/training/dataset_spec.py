"""What ``radlens dataset build`` makes, as one validated value: :class:`DatasetSpec`.

Every check that needs no file is made when a spec is created, and each error says the value it
got; :func:`inference.training.build_dataset.build_dataset` then only reads and writes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inference.training.dataset_format import DatasetError

__all__ = [
    "DEFAULT_SIZE",
    "DEFAULT_SPLIT",
    "DEFAULT_WINDOW",
    "LESION_REGIONS",
    "DatasetSpec",
    "LesionInsertion",
    "PseudoCtHeads",
]

DEFAULT_SIZE = (224, 224)
DEFAULT_WINDOW = (-600.0, 1500.0)
DEFAULT_SPLIT = (0.7, 0.15, 0.15)
LESION_REGIONS = ("auto", "lungs", "soft-tissue")


@dataclass(frozen=True)
class LesionInsertion:
    """Simulated lesions (:mod:`inference.training.lesions`) inserted into every host volume:
    ``per_volume`` of the ``kinds`` (mixed) in ``region``, each volume used ``variants`` times."""

    kinds: tuple[str, ...] = ("solid",)
    per_volume: int = 1
    region: str = "auto"
    variants: int = 1

    def __post_init__(self) -> None:
        from inference.training.insertion import parse_kinds

        try:
            object.__setattr__(self, "kinds", tuple(parse_kinds(self.kinds)))
        except ValueError as exc:
            raise DatasetError(str(exc)) from exc
        if self.per_volume < 1:
            raise DatasetError(f"per_volume must be at least 1, got {self.per_volume}")
        if self.region not in LESION_REGIONS:
            raise DatasetError(f"unknown lesion region {self.region!r}; choose auto, lungs or soft-tissue")
        if self.variants < 1:
            raise DatasetError(f"variants must be at least 1, got {self.variants}")

    @classmethod
    def from_dict(cls, table: Mapping[str, Any]) -> LesionInsertion:
        """From ``{"kind": "solid,mass", "per_volume": 2, "region": "auto", "variants": 1}`` (the manifest's form)."""
        return cls(
            kinds=tuple(str(table.get("kind", "solid")).split(",")),
            per_volume=int(table.get("per_volume", 1)),
            region=str(table.get("region", "auto")),
            variants=int(table.get("variants", 1)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": ",".join(self.kinds),
            "per_volume": self.per_volume,
            "region": self.region,
            "variants": self.variants,
        }


@dataclass(frozen=True)
class PseudoCtHeads:
    """``count`` pseudo-CT heads from a T1 head and its brain mask (:mod:`inference.training.pseudo_ct`):
    brains bent by up to ``deform_mm``, CSF spaces widened by up to ``atrophy_mm``, calcified when ``calcify``."""

    t1: str
    brain_mask: str
    count: int
    deform_mm: float = 0.0
    atrophy_mm: float = 0.0
    calcify: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.deform_mm <= 10.0:
            raise DatasetError(f"--pseudo-ct-deform must lie in 0…10 mm, got {self.deform_mm}")
        if not 0.0 <= self.atrophy_mm <= 5.0:
            raise DatasetError(f"--pseudo-ct-atrophy must lie in 0…5 mm, got {self.atrophy_mm}")


@dataclass(frozen=True)
class DatasetSpec:
    """Sources (``inputs``: folders or files, a ``.csv`` among them taken as ``labels``; ``phantoms``
    generated chest phantoms, with lung vessel trees when ``phantom_vessels``; ``pseudo_ct`` heads),
    the preprocessing (``size``, ``window`` as (centre, width), ``context_slices``), the sampling
    (``positives_per_source``, ``negatives_per_source``, or ``whole_stacks``: every slice, in order,
    for the CNN + RNN and the 3-D U-Net), the split fractions and the seed.

    A lesion insertion may be given as a :class:`LesionInsertion` or as its ``to_dict()`` table.
    """

    inputs: Sequence[str | os.PathLike[str]] = ()
    labels: str | os.PathLike[str] | None = None
    size: tuple[int, int] = DEFAULT_SIZE
    window: tuple[float, float] = DEFAULT_WINDOW
    context_slices: int = 1
    split: tuple[float, float, float] = DEFAULT_SPLIT
    seed: int = 0
    lesion_insertion: LesionInsertion | Mapping[str, Any] | None = None
    phantoms: int = 0
    phantom_vessels: bool = False
    pseudo_ct: PseudoCtHeads | None = None
    positives_per_source: int | None = None
    negatives_per_source: int | None = None
    whole_stacks: bool = False
    paths: tuple[Path, ...] = field(init=False)

    def __post_init__(self) -> None:
        paths = tuple(Path(p) for p in self.inputs)
        csv_inputs = [p for p in paths if p.suffix.lower() == ".csv" and p.is_file()]
        labels = self.labels
        if csv_inputs:
            if labels is not None or len(csv_inputs) > 1:
                raise DatasetError("give one labels CSV")
            labels = csv_inputs[0]
            paths = tuple(p for p in paths if p != csv_inputs[0])
        object.__setattr__(self, "paths", paths)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "size", (int(self.size[0]), int(self.size[1])))
        if min(self.size) < 1 or self.context_slices < 0 or self.window[1] <= 0:
            raise DatasetError(
                f"bad preprocessing: size {self.size}, context {self.context_slices}, window {self.window}"
            )
        if isinstance(self.lesion_insertion, Mapping):
            object.__setattr__(self, "lesion_insertion", LesionInsertion.from_dict(self.lesion_insertion))
        if self.whole_stacks and (self.positives_per_source is not None or self.negatives_per_source is not None):
            raise DatasetError(
                "--whole-stacks keeps every slice: leave out --positives-per-source/--negatives-per-source"
            )

    @property
    def insertion(self) -> LesionInsertion | None:
        """The lesion insertion, validated."""
        assert not isinstance(self.lesion_insertion, Mapping)
        return self.lesion_insertion

    @property
    def heads(self) -> PseudoCtHeads | None:
        """The pseudo-CT heads, when any are asked for."""
        return self.pseudo_ct if self.pseudo_ct is not None and self.pseudo_ct.count > 0 else None
