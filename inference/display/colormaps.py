"""Heatmap colour tables: 256×4 uint8 RGBA, entry 0 transparent, without pyqtgraph or matplotlib.

The anchors are stored here because both libraries are slow to import and the viewer asks for a
table the moment a heatmap is shown. inferno and viridis are pyqtgraph's tables (the CC0 data of
matplotlib's maps) sampled at every fourth entry: linear interpolation between them reproduces
the full 256-entry table within one unit. "jet" is the viewer's own five-colour ramp; "hot" is
matplotlib's segment data (black, red, yellow, white).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt

from inference.suggest import did_you_mean

__all__ = ["HEATMAP_COLORMAPS", "heatmap_lut"]

#: The names a heatmap can be drawn with, in the order the viewer offers them.
HEATMAP_COLORMAPS = ("inferno", "viridis", "jet", "hot")

_SAMPLED = {
    "inferno": """
000004 02010a 040312 07051b 0b0724 10092d 150b37 1b0c41 210c4a 280b53 2f0a5b 360961 3d0965 440a68 4a0c6b
510e6c 57106e 5d126e 64156e 6a176e 71196e 771c6d 7d1e6d 84206b 8a226a 902568 972766 9d2964 a32c61 a92e5e
b0315b b63458 bc3754 c13a50 c73e4c cc4248 d24644 d74b3f db503b e05536 e45a31 e8602d eb6628 ef6c23 f1731d
f47918 f68013 f8870e f98e09 fb9606 fb9d07 fca50a fcac11 fcb418 fbbc21 fac42a f9cb35 f7d340 f5db4c f3e35a
f2ea69 f1f179 f3f68a f8fb9a fcffa4
""",
    "viridis": """
440154 46075a 470d60 471365 48186a 481d6f 482374 482878 472d7b 46327e 453781 443b84 424086 404588 3e4989
3d4e8a 3b528b 39568c 375b8d 355f8d 33638d 31678e 2f6b8e 2e6f8e 2c728e 2a768e 297a8e 277e8e 26828e 25858e
23898e 228d8d 21918c 1f948c 1f988b 1e9c89 1fa088 20a386 22a785 25ab82 28ae80 2db27d 32b67a 38b977 3fbc73
46c06f 4ec36b 56c667 5ec962 67cc5c 70cf57 7ad151 84d44b 8ed645 98d83e a2da37 addc30 b8de29 c2df23 cde11d
d8e219 e2e418 ece51b f6e620 fde725
""",
}

#: (position in [0, 1], (r, g, b) in 0..255) anchors of the piecewise-linear maps.
_ANCHORS: dict[str, tuple[tuple[float, tuple[float, float, float]], ...]] = {
    "jet": (
        (0.0, (0, 0, 128)),
        (0.35, (0, 128, 255)),
        (0.5, (0, 255, 0)),
        (0.65, (255, 200, 0)),
        (1.0, (200, 0, 0)),
    ),
    # matplotlib's _hot_data: red rises first, then green, then blue.
    "hot": (
        (0.0, (0.0416 * 255, 0, 0)),
        (0.365079, (255, 0, 0)),
        (0.746032, (255, 255, 0)),
        (1.0, (255, 255, 255)),
    ),
}


def _anchors(name: str) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    if name in _SAMPLED:
        colours = np.array([[int(h[n : n + 2], 16) for n in (0, 2, 4)] for h in _SAMPLED[name].split()], float)
        entries = np.r_[np.arange(0, 256, 4), 255]
        return entries / 255.0, colours
    positions = np.array([p for p, _ in _ANCHORS[name]], dtype=np.float64)
    return positions, np.array([c for _, c in _ANCHORS[name]], dtype=np.float64)


def _to_bytes(name: str, values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    # Between sampled entries the nearest integer is the best guess; the ramps truncate, as
    # pyqtgraph and matplotlib do when they turn their float tables into bytes.
    return np.rint(values) if name in _SAMPLED else np.floor(values + 1e-6)


@lru_cache(maxsize=len(HEATMAP_COLORMAPS))
def heatmap_lut(name: str) -> npt.NDArray[np.uint8]:
    """256×4 RGBA table of colormap ``name``; entry 0 (below the threshold) is transparent.

    The array is shared and read-only. Raises ValueError naming the choices for an unknown name.
    """
    if name not in HEATMAP_COLORMAPS:
        hint = did_you_mean(name, HEATMAP_COLORMAPS)
        raise ValueError(f"colormap {name!r} is not one of {', '.join(HEATMAP_COLORMAPS)}{hint}")
    positions, colours = _anchors(name)
    x = np.linspace(0.0, 1.0, 256)
    lut = np.empty((256, 4), dtype=np.uint8)
    for c in range(3):
        lut[:, c] = np.clip(_to_bytes(name, np.interp(x, positions, colours[:, c])), 0, 255)
    lut[:, 3] = 255
    lut[0, 3] = 0
    lut.flags.writeable = False
    return lut
