"""Lookup tables for images and overlays: uint8, at most 256 entries, as pyqtgraph draws fastest."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt

from inference.display import colormaps as _display


@lru_cache(maxsize=4)
def grey_lut(invert: bool) -> npt.NDArray[np.uint8]:
    ramp = np.arange(256, dtype=np.uint8)
    return np.ascontiguousarray(ramp[::-1] if invert else ramp)


def heatmap_lut(name: str) -> npt.NDArray[np.uint8]:
    """256×4 RGBA of a heatmap colormap; entry 0 (below threshold) transparent.

    The tables live in :mod:`inference.display.colormaps` so that key images and reports
    colour a heatmap exactly as the viewer does.
    """
    return _display.heatmap_lut(name)
