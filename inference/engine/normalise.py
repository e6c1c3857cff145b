"""Intensity preprocessing named by the card: window, percentile, z-score."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from inference.models.card import InputSpec, Normalise


def normalise(voxels: npt.NDArray[Any], spec: InputSpec) -> npt.NDArray[np.float32]:
    """float32 copy of ``voxels`` (one copy, never float64) normalised as the card says."""
    out = np.asarray(voxels, dtype=np.float32).copy() if voxels.dtype != np.float32 else voxels.copy()
    if spec.normalise == Normalise.WINDOW:
        assert spec.window is not None
        centre, width = spec.window
        lo = centre - width / 2
        np.subtract(out, lo, out=out)
        np.multiply(out, 1.0 / max(width, 1e-6), out=out)
        np.clip(out, 0.0, 1.0, out=out)
    elif spec.normalise == Normalise.PERCENTILE:
        step = max(1, out.size // 1_000_000)
        lo, hi = np.percentile(out.reshape(-1)[::step], [0.5, 99.5])
        np.subtract(out, lo, out=out)
        np.multiply(out, 1.0 / max(float(hi - lo), 1e-6), out=out)
        np.clip(out, 0.0, 1.0, out=out)
    elif spec.normalise == Normalise.ZSCORE:
        mean, sd = float(out.mean()), float(out.std())
        np.subtract(out, mean, out=out)
        np.multiply(out, 1.0 / max(sd, 1e-6), out=out)
    return out


def normalise_params(voxels: npt.NDArray[Any], spec: InputSpec) -> tuple[float, float, bool]:
    """``(offset, scale, clip)`` such that ``(v - offset) * scale`` (clipped to [0, 1] if ``clip``)
    is what :func:`normalise` computes; statistics come from the whole volume, once."""
    if spec.normalise == Normalise.WINDOW:
        assert spec.window is not None
        centre, width = spec.window
        return (centre - width / 2, 1.0 / max(width, 1e-6), True)
    if spec.normalise == Normalise.PERCENTILE:
        flat = np.asarray(voxels).reshape(-1)
        step = max(1, flat.size // 1_000_000)
        lo, hi = np.percentile(flat[::step].astype(np.float32), [0.5, 99.5])
        return (float(lo), 1.0 / max(float(hi - lo), 1e-6), True)
    if spec.normalise == Normalise.ZSCORE:
        v = np.asarray(voxels, dtype=np.float32)
        return (float(v.mean()), 1.0 / max(float(v.std()), 1e-6), False)
    return (0.0, 1.0, False)
