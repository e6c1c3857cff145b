"""Geometry checks on a sorted stack of slices. Problems are reported, never silently fixed."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt


class QACode(StrEnum):
    IRREGULAR_SPACING = "irregular-spacing"
    MISSING_SLICES = "missing-slices"
    DUPLICATE_POSITIONS = "duplicate-positions"
    GANTRY_TILT = "gantry-tilt"
    MIXED_RESCALE = "mixed-rescale"
    INCONSISTENT_ORIENTATION = "inconsistent-orientation"
    NO_GEOMETRY = "no-geometry"
    SINGLE_SLICE = "single-slice"


@dataclass(frozen=True)
class QAIssue:
    code: QACode
    message: str

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}"


def slice_normal(orientation: tuple[float, ...]) -> npt.NDArray[np.float64]:
    """Unit normal (row × column) of an ImageOrientationPatient sextuple."""
    row = np.asarray(orientation[:3], dtype=np.float64)
    col = np.asarray(orientation[3:6], dtype=np.float64)
    n = np.cross(row, col)
    norm = float(np.linalg.norm(n))
    return n / norm if norm > 0 else n


def check_stack_geometry(
    positions: npt.NDArray[np.float64],
    orientations: list[tuple[float, ...]],
    rescales: list[tuple[float, float]],
    *,
    tolerance: float = 0.01,
) -> list[QAIssue]:
    """QA of slices already sorted along the normal.

    ``positions``: ``(n, 3)`` ImagePositionPatient of each slice in order.
    ``tolerance``: relative spacing deviation accepted as regular (1 %).
    """
    issues: list[QAIssue] = []
    n = len(positions)
    distinct_rescales = sorted(set(rescales))
    if len(distinct_rescales) > 1:
        shown = ", ".join(f"{s:g}/{i:g}" for s, i in distinct_rescales[:4])
        issues.append(
            QAIssue(QACode.MIXED_RESCALE, f"slices use {len(distinct_rescales)} slope/intercept pairs ({shown})")
        )
    if orientations:
        ref = np.asarray(orientations[0])
        worst = max(float(np.max(np.abs(np.asarray(o) - ref))) for o in orientations)
        if worst > 1e-4:
            issues.append(
                QAIssue(
                    QACode.INCONSISTENT_ORIENTATION, f"orientation cosines differ by up to {worst:.2g} between slices"
                )
            )
    if n < 2:
        return issues
    normal = slice_normal(orientations[0])
    along = positions @ normal
    gaps = np.diff(along)
    steps = np.diff(positions, axis=0)
    dup = int(np.sum(np.abs(gaps) < 1e-3))
    if dup:
        issues.append(QAIssue(QACode.DUPLICATE_POSITIONS, f"{dup} slice(s) share a position with another slice"))
    real = gaps[np.abs(gaps) >= 1e-3]
    if len(real) == 0:
        return issues
    median = float(np.median(real))
    big = real > 1.5 * median
    if np.any(big):
        missing = int(np.sum(np.round(real[big] / median) - 1))
        issues.append(
            QAIssue(
                QACode.MISSING_SLICES,
                f"{int(np.sum(big))} gap(s) larger than 1.5× the median spacing {median:.3g} mm "
                f"(about {max(missing, 1)} slice(s) missing; largest gap {float(real.max()):.3g} mm)",
            )
        )
    regular = real[~big]
    if len(regular) and float(np.max(np.abs(regular - median))) > tolerance * median:
        issues.append(
            QAIssue(
                QACode.IRREGULAR_SPACING,
                f"slice spacing varies from {float(regular.min()):.4g} to {float(regular.max()):.4g} mm",
            )
        )
    step_norms = np.linalg.norm(steps, axis=1)
    ok = step_norms > 1e-3
    if np.any(ok):
        cosines = np.abs(steps[ok] @ normal) / step_norms[ok]
        angle = float(np.degrees(np.arccos(np.clip(cosines.min(), -1.0, 1.0))))
        if angle > 0.05:
            issues.append(
                QAIssue(
                    QACode.GANTRY_TILT, f"slices are offset along the image plane: tilt of {angle:.2f}° to the normal"
                )
            )
    return issues
