"""What an inference run returns. Every array lies on the source volume's voxel grid ``[k, j, i]``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Finding:
    """One connected component of the label map (or of a thresholded heatmap)."""

    label: int
    name: str
    centroid_ijk: tuple[float, float, float]
    centroid_lps: tuple[float, float, float]
    volume_ml: float
    voxel_count: int
    max_probability: float

    def summary(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "name": self.name,
            "centroid_ijk": [round(v, 2) for v in self.centroid_ijk],
            "centroid_lps_mm": [round(v, 2) for v in self.centroid_lps],
            "volume_ml": round(self.volume_ml, 4),
            "voxels": self.voxel_count,
            "max_probability": round(self.max_probability, 4),
        }


@dataclass
class Result:
    model: str
    model_version: str
    device: str
    slice_probabilities: npt.NDArray[np.float32] | None = None  # one per source slice k
    study_score: float | None = None
    label_map: npt.NDArray[np.uint8] | None = None  # [k, j, i]
    probability_map: npt.NDArray[np.float32] | None = None  # [k, j, i], foreground probability
    heatmaps: dict[str, npt.NDArray[np.float32]] = field(default_factory=dict)  # [k, j, i] in [0, 1]
    findings: list[Finding] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)  # e.g. "CUDA ran out of memory: fell back to CPU"
    suitability: str = ""  # the input check's verdict (inference.engine.suitability.Verdict), "" if not checked
    input_warnings: list[str] = field(default_factory=list)  # why the input may not suit the model
    ood_score: float | None = None  # the out-of-distribution score that decides (engine.suitability)
    ood_scores: dict[str, float] = field(default_factory=dict)  # each statistic's: "intensity", "features"

    def summary(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "model_version": self.model_version,
            "device": self.device,
            "study_score": self.study_score,
            "findings": [f.summary() for f in self.findings],
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
            "messages": list(self.messages),
            "suitability": self.suitability,
            "input_warnings": list(self.input_warnings),
            "ood_score": None if self.ood_score is None else round(self.ood_score, 3),
            "ood_scores": {k: round(v, 3) for k, v in self.ood_scores.items()},
        }
