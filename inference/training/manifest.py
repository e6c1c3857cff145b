"""The manifest of a slice dataset (``manifest.json``, :mod:`inference.training.dataset_format`), typed.

Training reads the preprocessing back from it to write the model card, so that inference
reproduces it (:func:`inference.training.train.input_spec_of`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from inference.training.dataset_format import SPLITS
from inference.training.dataset_spec import LesionInsertion
from inference.training.quality import QualityReport

__all__ = ["DatasetManifest", "LabelSource", "Preprocessing", "SplitCounts"]


class LabelSource(StrEnum):
    """Where the slices' labels came from."""

    CSV = "csv"
    FOLDER_NAME = "folder-name"
    LESION_INSERTION = "lesion-insertion"
    PHANTOM_NODULES = "phantom-nodules"


@dataclass(frozen=True)
class Preprocessing:
    """What every slice went through (the card's ``[input]`` comes from it)."""

    size: tuple[int, int]
    window: tuple[float, float]
    context_slices: int
    whole_stacks: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": list(self.size),
            "window": {"center": float(self.window[0]), "width": float(self.window[1])},
            "context_slices": int(self.context_slices),
            "channels": 2 * int(self.context_slices) + 1,
            "orientation": "axial slices along the patient axes closest to the volume's own (no resampling)",
            "resize": "bilinear, align_corners=False (masks: nearest); pixel aspect not preserved",
            "scale": "clip to [center - width/2, center + width/2], map linearly to 0-255",
            "slices": (
                "every slice, in order" if self.whole_stacks else "sampled: lesion slices and slices away from them"
            ),
        }


@dataclass
class SplitCounts:
    sources: int = 0
    negatives: int = 0
    positives: int = 0
    total: int = 0

    def add(self, positives: int, slices: int) -> None:
        """One more source with ``slices`` samples, ``positives`` of them positive."""
        self.sources += 1
        self.positives += positives
        self.negatives += slices - positives
        self.total += slices

    def to_dict(self) -> dict[str, int]:
        return {"sources": self.sources, "negatives": self.negatives, "positives": self.positives, "total": self.total}


@dataclass
class DatasetManifest:
    """``sources`` holds one record per source (name, path, series UID, label, split, counts, and
    what made it: lesions, phantom or pseudo-CT parameters); ``splits`` their ids by split."""

    inputs: list[str]
    label_source: LabelSource
    preprocessing: Preprocessing
    seed: int
    split_fractions: tuple[float, float, float]
    lesion_insertion: LesionInsertion | None
    sources: list[dict[str, Any]]
    quality: QualityReport
    counts: dict[str, SplitCounts] = field(default_factory=lambda: {s: SplitCounts() for s in SPLITS})
    created_by: str = "radlens dataset build"
    split_by: str = "source (stratified by source label; stacks of one series stay together)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "created_by": self.created_by,
            "inputs": list(self.inputs),
            "label_source": self.label_source.value,
            "preprocessing": self.preprocessing.to_dict(),
            "seed": int(self.seed),
            "split_fractions": [float(f) for f in self.split_fractions],
            "split_by": self.split_by,
            "lesion_insertion": None if self.lesion_insertion is None else self.lesion_insertion.to_dict(),
            "sources": self.sources,
            "splits": {s: [r["id"] for r in self.sources if r["split"] == s] for s in SPLITS},
            "counts": {s: c.to_dict() for s, c in self.counts.items()},
            "quality": self.quality.to_dict(),
        }
