"""Pulmonary vessel trees for the training phantoms' lungs: hard negatives for a nodule model.

In a real chest CT an axial slice cuts every vessel across, and each cut is a bright dot in the
lung, the size of a small nodule. The generated phantoms had no vessels, and a model trained on
them took the vessels of real scans for nodules (the demo model's README, "On real chest CT").

Each lung gets a few trees grown from its medial side (the hilum) outwards: branches split in two,
thinner each time (about 0.8× the radius per generation, as Murray's law gives for two equal
daughters) and turned by 20–45°, until they are under ~0.7 mm or leave the lung. Vessels are
drawn as chains of balls at blood density (non-contrast, 25–55 HU), only inside the lung and
outside ``keep_out`` (the phantom's nodules and a margin around them).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from inference.volume import Volume

#: Radius of a tree's trunk at the hilum (mm), and where branching stops.
TRUNK_RADIUS_MM = (3.5, 6.0)
MIN_RADIUS_MM = 0.6
#: Radius of a daughter branch as a fraction of its parent's.
DAUGHTER_RATIO = (0.75, 0.85)
BRANCH_ANGLE_DEG = (20.0, 45.0)
#: Length of a branch, in radii of that branch.
LENGTH_IN_RADII = (5.0, 10.0)
VESSEL_HU = (25.0, 55.0)
TREES_PER_LUNG = (6, 9)


def _unit(v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else np.array([1.0, 0.0, 0.0])


def _turn(direction: npt.NDArray[np.float64], angle: float, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """``direction`` turned by ``angle`` radians towards a random perpendicular."""
    perpendicular = _unit(np.cross(direction, _unit(rng.normal(size=3))))
    return _unit(np.cos(angle) * direction + np.sin(angle) * perpendicular)


def vessel_balls(
    inside: npt.NDArray[np.bool_],
    spacing: tuple[float, float, float],
    rng: np.random.Generator,
) -> list[tuple[npt.NDArray[np.float64], float]]:
    """Ball centres (``(i, j, k)`` in mm from voxel 0) and radii (mm) of trees grown in each
    connected part of ``inside`` (``[k, j, i]``) from its side nearest the middle of the grid."""
    sp = np.asarray(spacing, dtype=np.float64)
    parts, n = ndimage.label(inside)
    middle_i = inside.shape[2] / 2.0
    balls: list[tuple[npt.NDArray[np.float64], float]] = []
    for part in range(1, n + 1):
        k, j, i = np.nonzero(parts == part)
        if k.size < 50:
            continue
        points = np.stack([i, j, k], axis=1).astype(np.float64) * sp  # mm
        centre = points.mean(axis=0)
        # The hilum: the point nearest the middle column, around the part's mid-height and depth.
        near = np.abs(points[:, 2] - centre[2]) < 0.25 * np.ptp(points[:, 2]) + sp[2]
        near &= np.abs(points[:, 1] - centre[1]) < 0.25 * np.ptp(points[:, 1]) + sp[1]
        candidates = points[near] if near.any() else points
        hilum = candidates[np.argmin(np.abs(candidates[:, 0] - middle_i * sp[0]))]

        def inside_at(p: npt.NDArray[np.float64]) -> bool:
            idx = np.rint(p / sp).astype(int)[::-1]  # (k, j, i)
            return bool(np.all(idx >= 0) and np.all(idx < inside.shape) and inside[tuple(idx)])

        for _ in range(int(rng.integers(TREES_PER_LUNG[0], TREES_PER_LUNG[1] + 1))):
            lateral = 1.0 if centre[0] > hilum[0] else -1.0
            direction = _unit(np.array([lateral, rng.uniform(-0.6, 0.6), rng.uniform(-1.0, 1.0)]))
            stack = [(hilum.copy(), direction, float(rng.uniform(*TRUNK_RADIUS_MM)))]
            while stack:
                start, d, r = stack.pop()
                length = r * float(rng.uniform(*LENGTH_IN_RADII))
                step = max(min(r, float(sp.min())) * 0.5, 0.3)
                end = start
                for t in np.arange(0.0, length + step, step):
                    p = start + d * min(t, length)
                    if not inside_at(p) and t > 2 * r:
                        break
                    balls.append((p, r))
                    end = p
                else:
                    child = r * float(rng.uniform(*DAUGHTER_RATIO))
                    if child >= MIN_RADIUS_MM:
                        for _branch in range(2):
                            angle = np.radians(rng.uniform(*BRANCH_ANGLE_DEG))
                            stack.append((end, _turn(d, angle, rng), child))
    return balls


def add_lung_vessels(
    volume: Volume,
    lungs: npt.NDArray[np.bool_],
    rng: np.random.Generator,
    keep_out: npt.NDArray[np.bool_] | None = None,
) -> Volume:
    """``volume`` (axial, identity direction) with vessel trees drawn in ``lungs`` (``[k, j, i]``)."""
    if volume.voxels.shape != lungs.shape:
        raise ValueError(f"lung mask {lungs.shape} does not match the volume's {volume.voxels.shape}")
    allowed = lungs if keep_out is None else lungs & ~keep_out
    sp = np.asarray(volume.spacing, dtype=np.float64)
    vessels = np.zeros(lungs.shape, dtype=bool)
    shape_ijk = np.asarray(lungs.shape[::-1])
    for centre, r in vessel_balls(lungs, volume.spacing, rng):
        lo = np.maximum(np.floor((centre - r) / sp).astype(int), 0)
        hi = np.minimum(np.ceil((centre + r) / sp).astype(int) + 1, shape_ijk)
        if np.any(hi <= lo):
            continue
        ii, jj, kk = (np.arange(lo[a], hi[a]) * sp[a] - centre[a] for a in range(3))
        ball = kk[:, None, None] ** 2 + jj[None, :, None] ** 2 + ii[None, None, :] ** 2 <= r * r
        vessels[lo[2] : hi[2], lo[1] : hi[1], lo[0] : hi[0]] |= ball
    vessels &= allowed
    voxels = volume.voxels.copy()
    voxels[vessels] = np.asarray(rng.uniform(*VESSEL_HU), dtype=voxels.dtype)
    return volume.with_voxels(voxels)
