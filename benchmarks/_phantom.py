"""The benchmarks' chest-like CT phantom (int16 HU): body ellipse, lungs, spine, aorta, noise.

Not :func:`inference.sample_study.make_chest_phantom` (millimetre anatomy at small sizes): this one
is drawn in image coordinates at any size, fast enough for 512 × 512 × 300.
"""

from __future__ import annotations

import numpy as np

ROWS = COLS = 512


def phantom(
    n_slices: int, rows: int = ROWS, cols: int = COLS, seed: int = 0, *, noise_planes: int | None = None
) -> np.ndarray:
    """``(n_slices, rows, cols)`` int16 HU, the body widest mid-scan, Gaussian noise (SD 12 HU) on
    every slice: drawn fresh for each, or recycled from ``noise_planes`` planes when a large
    volume must be made quickly."""
    rng = np.random.default_rng(seed)
    out = np.empty((n_slices, rows, cols), dtype=np.int16)
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    y = (y - rows / 2) / (rows / 2)
    x = (x - cols / 2) / (cols / 2)
    recycled = None
    if noise_planes is not None:
        recycled = rng.normal(0.0, 12.0, size=(noise_planes, rows, cols)).astype(np.float32)
    for k in range(n_slices):
        t = k / max(n_slices - 1, 1)
        s = np.float32(0.85 + 0.1 * np.sin(np.pi * t))  # body widest mid-scan
        plane = np.full((rows, cols), -1000.0, dtype=np.float32)
        body = (x / (0.9 * s)) ** 2 + (y / (0.65 * s)) ** 2 <= 1
        plane[body] = 40.0
        lung_r = 0.25 + 0.1 * np.sin(np.pi * t)
        for cx in (-0.4, 0.4):
            lung = ((x - cx * s) / (lung_r * 1.1)) ** 2 + ((y + 0.05) / (lung_r * 1.6)) ** 2 <= 1
            plane[lung & body] = -820.0
        spine = (x / 0.09) ** 2 + ((y - 0.45 * s) / 0.09) ** 2 <= 1
        plane[spine] = 700.0
        aorta = ((x - 0.08) / 0.06) ** 2 + ((y - 0.2) / 0.06) ** 2 <= 1
        plane[aorta] = 180.0
        if recycled is None:
            plane += rng.normal(0.0, 12.0, size=plane.shape).astype(np.float32)
        else:
            plane += recycled[k % len(recycled)]
        out[k] = np.clip(np.rint(plane), -1024, 3071).astype(np.int16)
    return out
