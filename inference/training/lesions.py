"""Simulated lesions inserted into real or phantom CT volumes, for training when data are scarce.

A lesion is an ellipsoid whose radius is modulated by low-order zonal harmonics (Legendre
polynomials of the angle to random axes, degrees 2–4: a random combination of those spans the
spherical harmonics of that degree), so its edge is lobulated rather than a perfect sphere.
Inside, the attenuation is realistic for CT (HU) with smoothed-noise texture:

* ``solid``: a solid nodule, 0–80 HU, radius 3–12 mm;
* ``part-solid``: a ground-glass rim (−600…−300 HU) around a solid core (0–60 HU), radius 5–12 mm;
* ``mass``: 20–60 HU, radius 12–25 mm;
* ``hyperdense``: 25–60 HU *above* the local tissue (an acute haemorrhage, an enhancing or
  calcifying lesion), radius 3–12 mm;
* ``hypodense``: 20–40 HU *below* the local tissue (a cyst, an infarct, a hypoenhancing
  metastasis), radius 3–12 mm.

The last two are set against the median of the background around the site (measured in the same
shell as the noise), so they keep their conspicuity whatever the tissue: they are meant for soft
tissue (brain, liver, muscle), the first three for the lungs or wherever their absolute HU belongs.

The lesion is blended into the scan through a Gaussian-blurred occupancy (partial-volume
edge), and noise with the standard deviation of the surrounding background (measured in a
shell around the site) is added inside, so the lesion is neither smoother nor noisier than the
tissue around it. Sites are drawn inside ``region_mask`` (e.g. the lungs) or, by default,
inside thick soft tissue of the body away from bone. Everything is drawn from the ``rng``
passed in, so the same generator state gives the same lesions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.volume import Volume

LESION_KINDS = ("solid", "part-solid", "mass", "hyperdense", "hypodense")
#: Kinds whose attenuation is set against the local background rather than in absolute HU.
RELATIVE_KINDS = ("hyperdense", "hypodense")

#: Radius range (mm) of the mean radius per kind.
RADIUS_MM = {
    "solid": (3.0, 12.0),
    "part-solid": (5.0, 12.0),
    "mass": (12.0, 25.0),
    "hyperdense": (3.0, 12.0),
    "hypodense": (3.0, 12.0),
}
#: Mean attenuation range (HU) per kind; for part-solid this is the ground-glass rim; for the
#: relative kinds it is the contrast against the background's median.
MEAN_HU = {
    "solid": (0.0, 80.0),
    "part-solid": (-600.0, -300.0),
    "mass": (20.0, 60.0),
    "hyperdense": (25.0, 60.0),
    "hypodense": (-40.0, -20.0),
}
CORE_HU = (0.0, 60.0)
#: Texture (smoothed-noise) standard deviation in HU per kind.
TEXTURE_SD = {
    "solid": (6.0, 14.0),
    "part-solid": (25.0, 50.0),
    "mass": (8.0, 18.0),
    "hyperdense": (3.0, 8.0),
    "hypodense": (2.0, 6.0),
}
#: Edge blur (Gaussian sigma) in mm; at least EDGE_MIN_VOXELS on every axis.
EDGE_SIGMA_MM = 0.8
EDGE_MIN_VOXELS = 0.6
#: Occupancy below this is treated as zero: the scan outside the blurred rim is left untouched.
OCCUPANCY_FLOOR = 0.01
#: Extra distance (mm) kept between two inserted lesions.
SEPARATION_MM = 4.0
#: Lungs found by :func:`lung_region` are used by ``auto`` placement from this volume on.
MIN_LUNG_ML = 300.0


class LesionPlacementError(ValueError):
    """No site in the region is large enough for the requested lesion."""


@dataclass(frozen=True)
class LesionSpec:
    """One inserted lesion.

    ``centre_ijk``: voxel index ``(i, j, k)``; ``radii_mm``: semi-axes along ``(i, j, k)`` before
    lobulation (for part-solid, of the ground-glass outline); ``mean_hu``: mean attenuation of
    the lesion tissue (texture and noise included, before partial-volume blending at the edge);
    ``label``: its value in the lesion mask.
    """

    centre_ijk: tuple[float, float, float]
    radii_mm: tuple[float, float, float]
    kind: str
    mean_hu: float
    label: int = 1
    voxels: int = 0
    background_sd: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["centre_ijk"] = [round(float(v), 2) for v in self.centre_ijk]
        d["radii_mm"] = [round(float(v), 2) for v in self.radii_mm]
        d["mean_hu"] = round(float(self.mean_hu), 1)
        d["background_sd"] = round(float(self.background_sd), 2)
        return d


# --------------------------------------------------------------------------- regions


def _sampling(volume: Volume) -> tuple[float, float, float]:
    """Voxel size in numpy order ``(k, j, i)``."""
    si, sj, sk = volume.spacing
    return (float(sk), float(sj), float(si))


def body_mask(volume: Volume) -> npt.NDArray[np.bool_]:
    """The largest connected region above −500 HU, holes filled slice by slice."""
    return largest_filled(np.asarray(volume.voxels) > -500)


def largest_filled(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """The largest connected region of ``mask`` (``[k, j, i]``), holes filled slice by slice."""
    from scipy import ndimage

    labels, n = ndimage.label(mask)
    if n == 0:
        return np.zeros(mask.shape, dtype=bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    region = labels == int(np.argmax(sizes))
    for k in range(region.shape[0]):
        region[k] = ndimage.binary_fill_holes(region[k])
    return np.asarray(region, dtype=bool)


def soft_tissue_region(volume: Volume, *, low: float = 0.0, high: float = 100.0) -> npt.NDArray[np.bool_]:
    """Soft tissue inside the body (``low``–``high`` HU after light smoothing), eroded, away from bone.

    On a head CT this is mostly brain; on a chest CT mediastinum, muscle and liver.
    """
    from scipy import ndimage

    vox = np.asarray(volume.voxels, dtype=np.float32)
    sigma = [max(0.5, 1.0 / s) for s in _sampling(volume)]
    smooth = ndimage.gaussian_filter(vox, sigma)
    body = body_mask(volume)
    soft = body & (smooth >= low) & (smooth <= high)
    bone = ndimage.binary_dilation(smooth > 300, iterations=2)
    soft &= ~bone
    soft = ndimage.binary_opening(soft, iterations=1)
    return np.asarray(ndimage.binary_erosion(soft, iterations=2), dtype=bool)


def lung_region(volume: Volume) -> npt.NDArray[np.bool_]:
    """Air-filled regions (−1000…−400 HU) enclosed by the body: the lungs on a chest CT."""
    from scipy import ndimage

    vox = np.asarray(volume.voxels)
    body = body_mask(volume)
    air = (vox < -400) & body
    # Drop air connected to the outside through the slice plane (e.g. around the body).
    labels, n = ndimage.label(air)
    if n == 0:
        return air
    edge = np.zeros(air.shape, dtype=bool)
    edge[:, 0, :] = edge[:, -1, :] = edge[:, :, 0] = edge[:, :, -1] = True
    outside = np.unique(labels[edge & air])
    air &= ~np.isin(labels, outside)
    return np.asarray(ndimage.binary_erosion(air, iterations=1), dtype=bool)


def default_region(volume: Volume) -> tuple[str, npt.NDArray[np.bool_]]:
    """``("lungs", mask)`` when the scan holds at least :data:`MIN_LUNG_ML` of lung, else soft tissue."""
    lungs = lung_region(volume)
    voxel_ml = float(np.prod(volume.spacing)) / 1000.0
    if float(lungs.sum()) * voxel_ml >= MIN_LUNG_ML:
        return "lungs", lungs
    return "soft-tissue", soft_tissue_region(volume)


# --------------------------------------------------------------------------- shape


def _legendre(degree: int, x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    if degree == 2:
        return np.asarray(0.5 * (3 * x**2 - 1))
    if degree == 3:
        return np.asarray(0.5 * (5 * x**3 - 3 * x))
    return np.asarray((35 * x**4 - 30 * x**2 + 3) / 8)


def _lobulation(rng: np.random.Generator, amplitude: float) -> list[tuple[int, npt.NDArray[np.float64], float]]:
    """Random zonal harmonics: ``(degree, unit axis, coefficient)``."""
    terms = []
    for degree in (2, 3, 4):
        for _ in range(2):
            axis = rng.normal(size=3)
            axis /= np.linalg.norm(axis) + 1e-12
            terms.append((degree, axis, float(rng.normal(0.0, amplitude / degree**0.5))))
    return terms


def _radius_factor(
    u: npt.NDArray[np.float64], terms: list[tuple[int, npt.NDArray[np.float64], float]]
) -> npt.NDArray[np.float64]:
    """``1 + Σ c · P_l(d · axis)`` for the unit direction ``d`` of each point in ``u`` (…, 3)."""
    norm = np.linalg.norm(u, axis=-1, keepdims=True)
    d = u / np.maximum(norm, 1e-9)
    out = np.ones(u.shape[:-1])
    for degree, axis, coef in terms:
        out += coef * _legendre(degree, d @ axis)
    return np.asarray(np.clip(out, 0.55, 1.45))


def _smoothed_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: list[float]) -> npt.NDArray[np.float64]:
    from scipy import ndimage

    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    sd = float(field.std())
    return np.asarray(field / sd if sd > 0 else field)


def _robust_sd(values: npt.NDArray[Any]) -> float:
    if values.size < 10:
        return 0.0
    v = values.astype(np.float64)
    centre = np.median(v)
    mad_sd = float(1.4826 * np.median(np.abs(v - centre)))
    if mad_sd == 0:
        return float(v.std())
    # The SD of the values within 3 robust SDs: outliers (vessels, edges) out, the noise's own shape kept.
    kept = v[np.abs(v - centre) <= 3.0 * mad_sd]
    return float(kept.std())


def _background_sd(vox: npt.NDArray[Any], shell: npt.NDArray[np.bool_], sampling: tuple[float, ...]) -> float:
    """Noise SD of the background in ``shell``: robust SD of the high-pass residual.

    The residual (voxel minus its 3×3×3 mean) removes anatomy (vessels, gradients) but keeps the
    noise, scaled by sqrt(1 + 1/26) for white noise, which is corrected here.
    """
    from scipy import ndimage

    f = vox.astype(np.float32)
    residual = f - ndimage.uniform_filter(f, size=3)
    # White noise: var(x - mean27) = var·(1 - 1/27)… ≈ 26/27; correct for it.
    sd = _robust_sd(residual[shell]) / np.sqrt(26.0 / 27.0)
    return float(sd)


def _background_level(vox: npt.NDArray[Any], shell: npt.NDArray[np.bool_]) -> float:
    """Median attenuation of the background in ``shell`` (0 when the shell is empty)."""
    values = vox[shell]
    return float(np.median(values)) if values.size else 0.0


# --------------------------------------------------------------------------- insertion


def _fibonacci_sphere(n: int = 400) -> npt.NDArray[np.float64]:
    """``n`` nearly uniform unit vectors (deterministic)."""
    idx = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * idx / n)
    theta = np.pi * (1 + 5**0.5) * idx
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], axis=-1)


_SPHERE = _fibonacci_sphere()


def _pick_site(
    dist_mm: npt.NDArray[np.float64],
    need_mm: float,
    placed: list[tuple[npt.NDArray[np.float64], float]],
    sampling: npt.NDArray[np.float64],
    radius_mm: float,
    rng: np.random.Generator,
) -> npt.NDArray[np.int64] | None:
    """A voxel ``(k, j, i)`` at least ``need_mm`` inside the region and clear of placed lesions."""
    candidates = np.flatnonzero(dist_mm >= need_mm)
    if candidates.size == 0:
        return None
    for _ in range(200):
        flat = int(candidates[rng.integers(candidates.size)])
        kji = np.asarray(np.unravel_index(flat, dist_mm.shape), dtype=np.int64)
        pos = kji * sampling
        if all(np.linalg.norm(pos - p) >= radius_mm + r + SEPARATION_MM for p, r in placed):
            return kji
    return None


def insert_lesions(
    volume: Volume,
    rng: np.random.Generator,
    n: int = 1,
    kind: str = "solid",
    region_mask: npt.NDArray[np.bool_] | None = None,
) -> tuple[Volume, npt.NDArray[np.uint8], list[LesionSpec]]:
    """Insert ``n`` simulated lesions of ``kind`` into a CT ``volume`` (HU).

    Returns the new volume (same grid, type and metadata, with ``extra["simulated_lesions"]``),
    the lesion mask ``uint8 [k, j, i]`` (lesion ``m`` has value ``m + 1``; a voxel belongs to a
    lesion where its blurred occupancy is at least ½) and one :class:`LesionSpec` per lesion.
    ``region_mask`` (bool ``[k, j, i]``) is where lesion centres may lie and what they should stay
    inside; by default :func:`default_region` (the lungs when there are any, else soft tissue).
    Raises :class:`LesionPlacementError` when the region has no room for a lesion.
    """
    from scipy import ndimage

    if kind not in LESION_KINDS:
        raise ValueError(f"unknown lesion kind {kind!r}; choose one of {', '.join(LESION_KINDS)}")
    if volume.voxels.ndim != 3:
        raise ValueError("lesions can only be inserted into a scalar (greyscale) volume")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if region_mask is None:
        _, region = default_region(volume)
    else:
        region = np.asarray(region_mask, dtype=bool)
        if region.shape != volume.shape:
            raise ValueError(f"region_mask shape {region.shape} does not match the volume {volume.shape}")
    sampling = np.asarray(_sampling(volume))
    padded = region.copy()
    padded[0], padded[-1] = False, False
    padded[:, 0], padded[:, -1] = False, False
    padded[:, :, 0], padded[:, :, -1] = False, False
    if not padded.any():
        raise LesionPlacementError(f"no room for a {kind} lesion: the placement region is empty")
    dist_mm = np.asarray(ndimage.distance_transform_edt(padded, sampling=sampling), dtype=np.float64)

    src = np.asarray(volume.voxels)
    work = src.astype(np.float64)
    mask = np.zeros(volume.shape, dtype=np.uint8)
    specs: list[LesionSpec] = []
    placed: list[tuple[npt.NDArray[np.float64], float]] = []
    edge_sigma = [max(EDGE_MIN_VOXELS, EDGE_SIGMA_MM / s) for s in sampling]
    lo_r, hi_r = RADIUS_MM[kind]
    for m in range(n):
        radius = float(rng.uniform(lo_r, hi_r))
        axes = radius * rng.uniform(0.8, 1.2, size=3)  # (i, j, k) semi-axes, mm
        axes *= radius / float(np.cbrt(np.prod(axes)))  # keep the mean radius
        amplitude = 0.12 if kind == "mass" else 0.08
        terms = _lobulation(rng, amplitude)
        extent = float(axes.max()) * float(_radius_factor(_SPHERE, terms).max())  # largest lobulated radius
        # Most of the lesion inside the region: the centre at least 80 % of the extent from its edge.
        # Where no site is deep enough the lesion shrinks, down to half its kind's smallest radius.
        kji = None
        for scale in (1.0, 0.85, 0.7, 0.55, 0.4, 0.3, 0.2):
            if radius * scale < 0.5 * lo_r and scale < 1.0:
                break
            kji = _pick_site(dist_mm, 0.8 * extent * scale, placed, sampling, extent * scale, rng)
            if kji is not None:
                axes, radius, extent = axes * scale, radius * scale, extent * scale
                break
        if kji is None:
            raise LesionPlacementError(
                f"no room for lesion {m + 1} of {n} ({kind}, radius ≥ {0.5 * lo_r:g} mm) in the placement "
                f"region (its deepest point is {float(dist_mm.max()):.1f} mm from its edge)"
            )
        centre = kji.astype(np.float64) + rng.uniform(-0.5, 0.5, size=3)

        # Bounding box (k, j, i) with room for the blurred rim and the background shell.
        half = np.ceil((2.0 * extent + 3.0 * EDGE_SIGMA_MM) / sampling).astype(int) + 2
        lo = np.maximum(kji - half, 0)
        hi = np.minimum(kji + half + 1, np.asarray(volume.shape))
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
        ranges = (np.arange(a, b, dtype=np.float64) for a, b in zip(lo, hi, strict=True))
        kk, jj, ii = np.meshgrid(*ranges, indexing="ij")
        # Offsets in mm along (i, j, k), normalised by the semi-axes.
        off = np.stack(
            [(ii - centre[2]) * sampling[2], (jj - centre[1]) * sampling[1], (kk - centre[0]) * sampling[0]], axis=-1
        )
        u = off / axes
        rho = np.linalg.norm(u, axis=-1)
        factor = _radius_factor(u, terms)
        inside = rho <= factor
        occ = np.clip(ndimage.gaussian_filter(inside.astype(np.float64), edge_sigma), 0.0, 1.0)
        occ[occ < OCCUPANCY_FLOOR] = 0.0

        # Noise of the background in a shell 1.2–2× the extent around the site, inside the region.
        dist_c = np.linalg.norm(off, axis=-1)
        shell = (dist_c >= 1.2 * extent) & (dist_c <= 2.0 * extent) & region[box] & (mask[box] == 0)
        if shell.sum() < 50:
            shell = (dist_c >= 1.2 * extent) & (dist_c <= 2.0 * extent)
        bg_sd = _background_sd(src[box], shell, tuple(sampling))

        texture_sigma = [max(0.7, 1.5 / s) for s in sampling]
        lo_t, hi_t = TEXTURE_SD[kind]
        texture = _smoothed_noise(rng, occ.shape, texture_sigma) * float(rng.uniform(lo_t, hi_t))
        lo_h, hi_h = MEAN_HU[kind]
        level = float(rng.uniform(lo_h, hi_h))
        if kind in RELATIVE_KINDS:
            level += _background_level(src[box], shell)
        values = level + texture
        if kind == "part-solid":
            core_factor = float(rng.uniform(0.35, 0.6))
            # A core of at least ~1.5 voxels, so that the edge blur does not wash it out.
            core_factor = min(0.7, max(core_factor, 1.5 * float(sampling.max()) / radius))
            core_terms = _lobulation(rng, 0.1)
            core_inside = rho <= core_factor * _radius_factor(u, core_terms)
            core_occ = np.clip(ndimage.gaussian_filter(core_inside.astype(np.float64), edge_sigma), 0.0, 1.0)
            core_level = float(rng.uniform(*CORE_HU))
            core_texture = _smoothed_noise(rng, occ.shape, texture_sigma) * float(rng.uniform(*TEXTURE_SD["solid"]))
            values = values * (1.0 - core_occ) + (core_level + core_texture) * core_occ
        noise = rng.normal(0.0, bg_sd, size=occ.shape) if bg_sd > 0 else np.zeros(occ.shape)
        # Pixels already holding an earlier lesion keep it (lesions never overlap by construction).
        work[box] = work[box] * (1.0 - occ) + occ * (values + noise)
        # The lesion tissue's own attenuation (before partial-volume blending with the background).
        interior_mean = float((values + noise)[inside].mean()) if inside.any() else float("nan")
        label = m + 1
        lesion = (occ >= 0.5) & (mask[box] == 0)
        mask[box][lesion] = label
        placed.append((kji * sampling, extent))
        specs.append(
            LesionSpec(
                centre_ijk=(float(centre[2]), float(centre[1]), float(centre[0])),
                radii_mm=(float(axes[0]), float(axes[1]), float(axes[2])),
                kind=kind,
                mean_hu=interior_mean,
                label=label,
                voxels=int(lesion.sum()),
                background_sd=bg_sd,
            )
        )

    if np.issubdtype(src.dtype, np.integer):
        info = np.iinfo(src.dtype)
        out = np.clip(np.rint(work), info.min, info.max).astype(src.dtype)
    else:
        out = work.astype(src.dtype)
    meta = replace(
        volume.metadata,
        extra={**volume.metadata.extra, "simulated_lesions": [s.to_dict() for s in specs]},
    )
    return replace(volume.with_voxels(out), metadata=meta), mask, specs
