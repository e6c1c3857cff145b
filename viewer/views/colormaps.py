"""The grey ramp images are drawn with: uint8, 256 entries, as pyqtgraph draws fastest. Heatmap tables
are :func:`inference.display.colormaps.heatmap_lut`, shared with the key images and reports."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt


@lru_cache(maxsize=4)
def grey_lut(invert: bool) -> npt.NDArray[np.uint8]:
    """0..255 (255..0 when ``invert``); cached and shared, so never written to."""
    ramp = np.arange(256, dtype=np.uint8)
    return np.ascontiguousarray(ramp[::-1] if invert else ramp)
