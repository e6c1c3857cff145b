"""Physiological intracranial calcifications for pseudo-CT heads: pineal gland, choroid plexus, falx, basal ganglia.

Most adult head CTs show some of them: the pineal gland is calcified in about two thirds of adults,
the choroid plexus in the atria of the lateral ventricles in about half, plaques in the falx in one
in ten, the globus pallidus in a few per cent, more with age. They are dense (90–900 HU), small
(clumps of 1.5–4 mm radius; falx plaques 1–2 mm thick and up to 20 mm long) and sit at fixed
places, so a radiologist passes over them; a model that was trained on a young MRI brain turned
into CT has never seen one and may call them hyperdense lesions.

Sites are given in MNI coordinates (mm, RAS), as Colin27 (``ch2`` of mricron-data) is in MNI space;
:func:`mni_to_index` maps them onto a head's voxel grid (:func:`check_mni` refuses a head that is
not in MNI space or whose voxel axes do not run along x, y and z). Each site is present with its
own probability (:data:`SITES`: drawn more often than in adults, so that every kind is common in
training); a present site gets one to three clumps (each side for paired sites), each a
soft-edged ellipsoid of its own size and density. A clump follows a bent brain (``move``), and
choroid-plexus clumps are then moved to the nearest CSF within :data:`SNAP_MM` (the atrium's, as
they start there; dropped when none is that near).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from inference.errors import RadLensError
from inference.volume import Volume

#: How far a clump that belongs in CSF (the choroid plexus) may be moved to find it.
SNAP_MM = 8.0

MniToIndex = Callable[[tuple[float, float, float]], tuple[float, float, float]]


@dataclass(frozen=True)
class Site:
    name: str
    probability: float
    centre_mni: tuple[float, float, float]  # (x, y, z) mm, RAS; x mirrored for the other side of a pair
    jitter_mm: tuple[float, float, float]  # uniform ± this along x, y, z
    radii_mm: tuple[tuple[float, float], tuple[float, float], tuple[float, float]]  # ranges along x, y, z
    hu: tuple[float, float]
    paired: bool = False
    in_csf: bool = False
    clumps: tuple[int, int] = (1, 3)


#: Where calcifications form, how often (per head, as drawn for training: above the adult rates,
#: so that every kind is common), their sizes and densities.
# fmt: off
SITES: tuple[Site, ...] = (
    #    name             p     MNI centre (mm)    jitter ± (mm)   radii x, y, z (mm)                   HU
    Site("pineal",        0.70, (0, -30, 4),       (1.5, 2, 2),    ((1.5, 4), (1.5, 4), (1.5, 3.5)),   (120, 500)),
    Site("choroid plexus", 0.70, (26, -40, 15),    (3, 4, 3),      ((1.5, 4), (2, 5), (1.5, 4)),       (100, 400),
         paired=True, in_csf=True),
    Site("falx",          0.35, (0, -5, 40),       (0.5, 25, 12),  ((0.5, 1), (3, 10), (2, 6)),        (200, 900)),
    Site("basal ganglia", 0.20, (19, -3, 0),       (2, 3, 2),      ((1, 3), (1.5, 4), (1, 3)),         (90, 250),
         paired=True, clumps=(1, 2)),
)
# fmt: on


@dataclass(frozen=True)
class Calcification:
    """One clump: a soft-edged ellipsoid on the head's voxel grid (``[k, j, i]`` order)."""

    site: str
    centre_kji: tuple[float, float, float]
    radii_mm: tuple[float, float, float]
    hu: float


def mni_to_index(volume: Volume) -> MniToIndex:
    """The map from MNI mm (RAS) to ``(k, j, i)`` voxel indices of ``volume`` (whose geometry is LPS)."""

    def to_index(xyz: tuple[float, float, float]) -> tuple[float, float, float]:
        i, j, k = volume.lps_to_index((-xyz[0], -xyz[1], xyz[2]))
        return float(k), float(j), float(i)

    return to_index


#: MNI points that lie inside every adult brain: the anterior commissure and both thalami.
_DEEP_BRAIN_MNI = ((0.0, 0.0, 0.0), (12.0, -18.0, 8.0), (-12.0, -18.0, 8.0))


def check_mni(volume: Volume, brain: npt.NDArray[np.bool_]) -> MniToIndex:
    """The MNI-to-voxel map of ``volume`` after checking that it is in MNI space: its voxel axes run
    along x, y and z (either way), and points deep in any brain fall inside its ``brain`` mask.
    Raises :class:`RadLensError` otherwise."""
    if not np.allclose(np.abs(np.asarray(volume.direction, dtype=np.float64)), np.eye(3), atol=1e-3):
        raise RadLensError(
            "the head's voxel axes do not run along x, y and z: calcifications are placed at MNI coordinates "
            "and need an MNI-aligned T1 such as Colin27"
        )
    to_index = mni_to_index(volume)
    for xyz in _DEEP_BRAIN_MNI:
        k, j, i = (int(round(v)) for v in to_index(xyz))
        inside = all(0 <= v < n for v, n in zip((k, j, i), brain.shape, strict=True)) and bool(brain[k, j, i])
        if not inside:
            raise RadLensError(
                f"the head is not in MNI space (MNI {xyz} mm falls outside its brain mask): calcifications are "
                "placed at MNI coordinates and need an MNI-aligned T1 such as Colin27"
            )
    return to_index


def draw_calcifications(
    to_index: MniToIndex,
    csf: npt.NDArray[np.bool_],
    spacing_kji: tuple[float, float, float],
    rng: np.random.Generator,
    move: Callable[[tuple[float, float, float]], tuple[float, float, float]] | None = None,
) -> tuple[Calcification, ...]:
    """The clumps of one head: each of :data:`SITES` present with its probability (``csf``: the
    brain's CSF on the head's grid, for the sites that sit in it; ``move``: where a voxel of the
    unbent head lies in the head, when its brain was bent)."""
    out: list[Calcification] = []
    for site in SITES:
        if rng.random() >= site.probability:
            continue
        for side in (1.0, -1.0) if site.paired else (1.0,):
            for _ in range(int(rng.integers(site.clumps[0], site.clumps[1] + 1))):
                x, y, z = (c + rng.uniform(-j, j) for c, j in zip(site.centre_mni, site.jitter_mm, strict=True))
                rx, ry, rz = (float(rng.uniform(lo, hi)) for lo, hi in site.radii_mm)
                hu = float(rng.uniform(*site.hu))
                centre = to_index((side * x, y, z))
                if move is not None:
                    centre = move(centre)
                if site.in_csf:
                    found = _nearest(csf, centre, spacing_kji, SNAP_MM)
                    if found is None:
                        continue
                    centre = found
                out.append(Calcification(site.name, centre, (rz, ry, rx), hu))
    return tuple(out)


def _nearest(
    mask: npt.NDArray[np.bool_], centre: tuple[float, float, float], spacing: tuple[float, float, float], within: float
) -> tuple[float, float, float] | None:
    box = _box(mask.shape, centre, (within, within, within), spacing)
    points = np.argwhere(mask[box]) + [s.start for s in box]
    if points.size == 0:
        return None
    d = np.linalg.norm((points - np.asarray(centre)) * np.asarray(spacing), axis=1)
    best = int(np.argmin(d))
    if d[best] > within:
        return None
    k, j, i = (float(v) for v in points[best])
    return k, j, i


def _box(
    shape: tuple[int, ...], centre: tuple[float, float, float], radii_mm: tuple[float, float, float],
    spacing: tuple[float, float, float],
) -> tuple[slice, slice, slice]:  # fmt: skip
    lo = [
        min(n, max(0, int(np.floor(c - r / s)) - 1))
        for n, c, r, s in zip(shape, centre, radii_mm, spacing, strict=True)
    ]
    hi = [
        max(a, min(n, int(np.ceil(c + r / s)) + 2))
        for a, n, c, r, s in zip(lo, shape, centre, radii_mm, spacing, strict=True)
    ]
    return slice(lo[0], hi[0]), slice(lo[1], hi[1]), slice(lo[2], hi[2])


def add_calcifications(
    hu: npt.NDArray[np.float32], spacing_kji: tuple[float, float, float], clumps: tuple[Calcification, ...]
) -> npt.NDArray[np.float32]:
    """``hu`` with every clump blended in (a soft edge one voxel wide along the clump's thinnest axis,
    wider in proportion along the others; a clump only ever makes a voxel denser). Returns a new array."""
    out = hu.copy()
    for c in clumps:
        # The clump's radius in voxels along its thinnest axis (at least half a voxel, so that its
        # centre takes its full density); the soft edge ends at 1 + 0.5 / edge radii.
        edge = max(0.5, min(r / s for r, s in zip(c.radii_mm, spacing_kji, strict=True)))
        reach = 1.0 + 0.5 / edge
        grown = (c.radii_mm[0] * reach, c.radii_mm[1] * reach, c.radii_mm[2] * reach)
        box = _box(out.shape, c.centre_kji, grown, spacing_kji)
        grid = np.meshgrid(*(np.arange(s.start, s.stop) for s in box), indexing="ij")
        terms = zip(grid, c.centre_kji, spacing_kji, c.radii_mm, strict=True)
        r = np.sqrt(sum(((g - ci) * sp / ra) ** 2 for g, ci, sp, ra in terms))
        weight = np.clip((1.0 - r) * edge + 0.5, 0.0, 1.0).astype(np.float32)
        part = out[box]
        out[box] = np.maximum(part, part + weight * (np.float32(c.hu) - part))
    return out
