"""Lookup tables for images and overlays: uint8, at most 256 entries, as pyqtgraph draws fastest."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt


@lru_cache(maxsize=4)
def grey_lut(invert: bool) -> npt.NDArray[np.uint8]:
    ramp = np.arange(256, dtype=np.uint8)
    return np.ascontiguousarray(ramp[::-1] if invert else ramp)


@lru_cache(maxsize=16)
def heatmap_lut(name: str) -> npt.NDArray[np.uint8]:
    """256×4 RGBA from a pyqtgraph colormap; entry 0 (below threshold) transparent."""
    import pyqtgraph as pg

    cmap = (
        pg.colormap.get(name)
        if name != "jet"
        else pg.ColorMap([0, 0.35, 0.5, 0.65, 1], [(0, 0, 128), (0, 128, 255), (0, 255, 0), (255, 200, 0), (200, 0, 0)])
    )
    lut = np.asarray(cmap.getLookupTable(0.0, 1.0, 256, alpha=True), dtype=np.uint8).copy()
    lut[:, 3] = 255
    lut[0, 3] = 0
    return lut
