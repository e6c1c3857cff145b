"""CT-like heads made from an MRI T1 head and its brain mask: real anatomy for training when CT is scarce.

Shippable weights need training data whose licence allows it. A permissively licensed T1 head
(Colin27 from Debian's ``mricron-data``, BSD-style) gives real head anatomy — gyri, sulci,
ventricles, skull, scalp, orbits — that generated phantoms lack. Each variant maps the T1 to
Hounsfield units tissue by tissue and re-samples it the way a scanner would see another head:

* **tissues**: inside the brain mask, T1 intensity (relative to white matter) is mapped to CT
  attenuation piecewise linearly — CSF 2–12 HU, grey matter 34–44 HU, white matter 22–30 HU
  (CT reverses the T1 grey/white contrast); outside it, bright T1 (fat) → −110…−70 HU, mid
  intensities (muscle, skin) → 30–55 HU, dark T1 within a few mm of the brain → CSF then skull
  (700–1400 HU, with a marrow-like texture), dark T1 farther away → air where very dark
  (sinuses) or water-like (orbits) otherwise; outside the head −1000 HU;
* **anatomy** (``deform_mm`` > 0): a smooth random deformation of the brain's interior (displacements
  of about ``deform_mm`` that vary over a few centimetres and fade out towards the brain's surface),
  so that ventricles, deep sulci and grey nuclei take other shapes and sizes in every variant.
  Without it every variant has Colin27's one brain, and a model can learn that brain as "normal"
  and call any other brain's folds a lesion;
* **age** (``atrophy_mm`` > 0): the CSF spaces widened by ¼…1 × ``atrophy_mm`` (a variant's own draw):
  every sulcus and the ventricles grow by that much into the brain around them, as they do with
  age. Colin27 is a young adult's brain, with narrow sulci and small ventricles; the frontal horns
  and wide sulci of an older head's CT are otherwise new to a model;
* **calcifications** (``mni_to_kji`` given): the pineal gland, the choroid plexus, the falx and the
  basal ganglia calcified as in most adults' CT (:mod:`inference.training.calcifications`), so that
  a model learns these dense dots are normal;
* **scanner**: a Gaussian point-spread (0.4–0.9 mm), a random rotation (±12° about each axis)
  and head size (×0.88–1.12), a field of view of 200–270 mm on a 256² matrix, a slice thickness
  of 1–3 mm, slices along a random one of the three axes (axial, coronal or sagittal images:
  held-out CT need not be axial), and correlated noise of 3–12 HU;
* **head holder**: in most variants, the thin dense arc of a scanner's head cradle (1–3 mm of
  200–900 HU, 5–30 mm from the scalp, spanning 140–230° on a random side), running the whole
  length of the scan along the slice axis as a real cradle runs along the table. Real head CT
  shows it; a model that never saw one calls it a lesion;
* **straps and pads**: up to four short thin curved strands (0.8–2 mm, −50…600 HU: a strap, a
  pad's edge, a fold of a blanket) in the air within 15 mm of the scalp, over part of the slices.
  The first model trained with a cradle still called such a hook beside the real head's ear a
  lesion, and put its attention there on slices that had one.

Every variant is drawn from its own seed, so a dataset is reproducible. This is a training aid,
not a CT simulator: beam hardening, streaks and the scanner table are not modelled.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.training.calcifications import Calcification, MniToIndex, add_calcifications, draw_calcifications
from inference.volume import Volume

#: In-plane matrix of every variant.
MATRIX = 256
#: Most slices per variant (the head is covered around its centre when thin slices need more).
MAX_SLICES = 120
#: Fraction of variants lying in a head holder (:func:`add_cradle`).
CRADLE_FRACTION = 0.7
#: Spacing of the control points of the anatomy's random deformation: gyri and ventricles bend.
CONTROL_MM = 30.0
#: Depth into the brain over which the deformation fades in (none at the brain's surface).
TAPER_MM = 15.0


@dataclass(frozen=True)
class Strand:
    """A short arc of a circle near the scalp, over a slab of slices (:func:`add_strands`)."""

    direction_deg: float  # where, seen from the head's centre
    offset_mm: float  # how far its circle keeps from the outline
    radius_mm: float
    arc_deg: float
    facing_deg: float  # the middle of the arc, as an angle on its own circle
    thickness_mm: float
    hu: float
    slab: tuple[float, float]  # first and last slice, as fractions of the slices

    @staticmethod
    def draw(rng: np.random.Generator) -> Strand:
        start = float(rng.uniform(0, 0.8))
        return Strand(
            direction_deg=float(rng.uniform(0, 360)),
            offset_mm=float(rng.uniform(0, 15)),
            radius_mm=float(rng.uniform(5, 25)),
            arc_deg=float(rng.uniform(40, 160)),
            facing_deg=float(rng.uniform(0, 360)),
            thickness_mm=float(rng.uniform(0.8, 2.0)),
            hu=float(rng.uniform(-50, 600)),
            slab=(start, float(min(1.0, start + rng.uniform(0.1, 0.5)))),
        )


@dataclass(frozen=True)
class PseudoCtParams:
    csf: float
    grey: float
    white: float
    fat: float
    soft: float
    bone: float
    bone_depth_mm: float
    psf_mm: float
    rotation_deg: tuple[float, float, float]
    scale: float
    fov_mm: float
    slice_mm: float
    axis: int
    noise_sd: float
    cradle: bool = False
    cradle_gap_mm: float = 0.0
    cradle_arc_deg: float = 0.0
    cradle_angle_deg: float = 0.0
    cradle_mm: float = 0.0
    cradle_hu: float = 0.0
    strands: tuple[Strand, ...] = ()
    deform_mm: float = 0.0  # standard deviation of the anatomy's displacement (0: Colin27 as it is)
    atrophy_mm: float = 0.0  # how far the CSF spaces grow into the brain (0: as Colin27's)
    calcifications: tuple[Calcification, ...] = ()  # physiological ones (none: as Colin27's)

    @staticmethod
    def draw(rng: np.random.Generator) -> PseudoCtParams:
        return PseudoCtParams(
            csf=float(rng.uniform(2, 12)),
            grey=float(rng.uniform(34, 44)),
            white=float(rng.uniform(22, 30)),
            fat=float(rng.uniform(-110, -70)),
            soft=float(rng.uniform(30, 55)),
            bone=float(rng.uniform(700, 1400)),
            bone_depth_mm=float(rng.uniform(7, 12)),
            psf_mm=float(rng.uniform(0.4, 0.9)),
            rotation_deg=(float(rng.uniform(-12, 12)), float(rng.uniform(-12, 12)), float(rng.uniform(-12, 12))),
            scale=float(rng.uniform(0.88, 1.12)),
            fov_mm=float(rng.uniform(200, 270)),
            slice_mm=float(rng.uniform(1.0, 3.0)),
            axis=int(rng.choice(3, p=[0.5, 0.3, 0.2])),
            noise_sd=float(rng.uniform(3, 12)),
            cradle=bool(rng.random() < CRADLE_FRACTION),
            cradle_gap_mm=float(rng.uniform(5, 30)),
            cradle_arc_deg=float(rng.uniform(140, 230)),
            cradle_angle_deg=float(rng.uniform(0, 360)),
            cradle_mm=float(rng.uniform(1, 3)),
            cradle_hu=float(rng.uniform(200, 900)),
            strands=tuple(Strand.draw(rng) for _ in range(int(rng.choice(5, p=[0.3, 0.2, 0.2, 0.15, 0.15])))),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tissue_hu(
    t1: npt.NDArray[Any], brain: npt.NDArray[np.bool_], spacing_kji: tuple[float, float, float], p: PseudoCtParams
) -> npt.NDArray[np.float32]:
    """Hounsfield units on the T1's own grid (numpy order ``[k, j, i]``)."""
    from scipy import ndimage

    from inference.training.lesions import largest_filled

    t = np.asarray(t1, dtype=np.float32)
    white_level = float(np.percentile(t[brain], 95)) if brain.any() else float(t.max())
    tn = t / max(white_level, 1e-6)
    head = largest_filled(tn > 0.08)
    hu = np.full(t.shape, -1000.0, dtype=np.float32)
    hu[brain] = np.interp(tn[brain], [0.35, 0.70, 0.95], [p.csf, p.grey, p.white]).astype(np.float32)
    outside = head & ~brain
    dist = ndimage.distance_transform_edt(~brain, sampling=spacing_kji)
    dark = outside & (tn < 0.45)
    near = dark & (dist <= p.bone_depth_mm)
    csf_rim = near & (dist <= 1.5)
    marrow = ndimage.gaussian_filter(np.random.default_rng(int(p.bone)).standard_normal(t.shape), 1.5)
    marrow = (marrow / max(float(marrow.std()), 1e-6)).astype(np.float32)
    hu[near] = p.bone + 180.0 * marrow[near]
    hu[csf_rim] = p.csf
    far = dark & ~near
    hu[far & (tn < 0.15)] = -950.0
    hu[far & (tn >= 0.15)] = 12.0
    hu[outside & (tn >= 0.45) & (tn < 0.85)] = p.soft
    hu[outside & (tn >= 0.85)] = p.fat
    return hu


def smooth_displacement(
    shape: tuple[int, ...], spacing: tuple[float, float, float], sd_mm: float, rng: np.random.Generator,
    control_mm: float = CONTROL_MM,
) -> npt.NDArray[np.float32]:  # fmt: skip
    """A random displacement field ``(3, *shape)`` in voxels of ``spacing``: each component is smooth
    Gaussian noise (control points ``control_mm`` apart, a cubic B-spline between them, evaluated on a
    grid of a quarter of the resolution and interpolated linearly from there) scaled so that its
    standard deviation over the grid is ``sd_mm``."""
    from scipy import ndimage

    coarse = tuple(max(2, int(np.ceil(n * s / control_mm)) + 1) for n, s in zip(shape, spacing, strict=True))
    middle = tuple(max(2, -(-n // 4)) for n in shape)
    out = np.empty((3, *shape), dtype=np.float32)
    for axis in range(3):
        field = ndimage.zoom(
            rng.standard_normal(coarse), [m / c for m, c in zip(middle, coarse, strict=True)], order=3,
            grid_mode=True, mode="reflect",
        )  # fmt: skip
        full = ndimage.zoom(
            field.astype(np.float32), [n / m for n, m in zip(shape, middle, strict=True)], order=1, grid_mode=True,
            mode="nearest",
        )[tuple(slice(0, n) for n in shape)]  # fmt: skip
        out[axis] = (full - float(full.mean())) * (sd_mm / max(float(full.std()), 1e-9) / spacing[axis])
    return out


def brain_displacement(
    brain: npt.NDArray[np.bool_], spacing: tuple[float, float, float], sd_mm: float, rng: np.random.Generator
) -> npt.NDArray[np.float32]:
    """A :func:`smooth_displacement` that fades to nothing over the outer ``TAPER_MM`` of the brain
    and outside it: ventricles, deep sulci and grey nuclei move, the skull and the scalp keep their shape."""
    from scipy import ndimage

    depth = ndimage.distance_transform_edt(brain, sampling=spacing)
    weight = np.clip(depth / TAPER_MM, 0.0, 1.0).astype(np.float32)
    out: npt.NDArray[np.float32] = smooth_displacement(brain.shape, spacing, sd_mm, rng) * weight[None]
    return out


def deform(
    values: npt.NDArray[np.float32], displacement: npt.NDArray[np.float32], background: float
) -> npt.NDArray[np.float32]:
    """``values`` resampled at every voxel's position plus ``displacement`` (voxels; linear interpolation)."""
    from scipy import ndimage

    grid = np.indices(values.shape, dtype=np.float32)
    grid += displacement
    return np.asarray(ndimage.map_coordinates(values, grid, order=1, cval=background), dtype=np.float32)


def follow(displacement: npt.NDArray[np.float32], point: tuple[float, float, float]) -> tuple[float, float, float]:
    """Where ``point`` (voxels) of the unbent head lies after :func:`deform` with ``displacement``:
    the ``x`` with ``x + displacement(x) = point`` (a few fixed-point steps; the field is smooth)."""
    from scipy import ndimage

    target = np.asarray(point, dtype=np.float64)
    x = target.copy()
    for _ in range(4):
        d = [
            float(ndimage.map_coordinates(component, x[:, None], order=1, mode="nearest")[0])
            for component in displacement
        ]
        x = target - np.asarray(d)
    return float(x[0]), float(x[1]), float(x[2])


def widen_csf(
    hu: npt.NDArray[np.float32],
    brain: npt.NDArray[np.bool_],
    spacing: tuple[float, float, float],
    grow_mm: float,
    csf_hu: float,
    below_hu: float,
) -> npt.NDArray[np.float32]:
    """``hu`` with the brain's CSF spaces (voxels of the brain below ``below_hu``) grown by ``grow_mm``
    into the brain around them and filled with ``csf_hu`` (a soft edge one voxel wide): wider sulci,
    larger ventricles. Outside the brain nothing changes."""
    from scipy import ndimage

    csf = brain & (hu < below_hu)
    if grow_mm <= 0 or not csf.any():
        return hu
    dist = ndimage.distance_transform_edt(~csf, sampling=spacing).astype(np.float32)
    weight = np.clip(grow_mm + 0.5 - dist, 0.0, 1.0) * brain
    out: npt.NDArray[np.float32] = hu + weight * (np.float32(csf_hu) - hu)
    return out


def _rotation(angles_deg: tuple[float, float, float]) -> npt.NDArray[np.float64]:
    a, b, c = np.radians(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return np.asarray(rz @ ry @ rx)


def make_pseudo_ct(
    t1: npt.NDArray[Any],
    brain: npt.NDArray[np.bool_],
    spacing_kji: tuple[float, float, float],
    rng: np.random.Generator,
    name: str = "pseudo-ct",
    deform_mm: float = 0.0,
    atrophy_mm: float = 0.0,
    mni_to_kji: MniToIndex | None = None,
) -> tuple[Volume, PseudoCtParams]:
    """One CT-like variant of the head ``t1`` (``[k, j, i]``, voxel size ``spacing_kji`` mm).

    With ``deform_mm`` > 0 the anatomy is bent by a smooth random displacement whose standard
    deviation is drawn from ``deform_mm × [0.5, 1]`` (:func:`smooth_displacement`); with
    ``atrophy_mm`` > 0 the CSF spaces grow by ``atrophy_mm × [0.25, 1]`` (:func:`widen_csf`); with
    ``mni_to_kji`` (the head's MNI-to-voxel map, :func:`~inference.training.calcifications.mni_to_index`)
    physiological calcifications are drawn in. Returns an int16 HU volume (slices along the variant's
    axis, identity direction) and the parameters drawn.
    """
    from scipy import ndimage

    from inference.volume import Volume, VolumeMetadata

    p = PseudoCtParams.draw(rng)
    sampling = np.asarray(spacing_kji, dtype=np.float64)
    hu = tissue_hu(t1, brain, spacing_kji, p)
    displacement: npt.NDArray[np.float32] | None = None
    if deform_mm > 0:  # its own stream (spawned: rng's draws stay as they were), so only the anatomy changes
        drng = rng.spawn(1)[0]
        sd = float(drng.uniform(0.5, 1.0) * deform_mm)
        p = replace(p, deform_mm=sd)
        displacement = brain_displacement(brain, spacing_kji, sd, drng)
        hu = deform(hu, displacement, -1000.0)
    if atrophy_mm > 0:  # its own stream too, spawned after the deformation's
        grow = float(rng.spawn(1)[0].uniform(0.25, 1.0) * atrophy_mm)
        p = replace(p, atrophy_mm=grow)
        hu = widen_csf(hu, brain, spacing_kji, grow, p.csf, (p.csf + p.white) / 2)
    if mni_to_kji is not None:  # its own stream too, spawned after the others
        csf = brain & (hu < (p.csf + p.white) / 2)
        move = None if displacement is None else functools.partial(follow, displacement)
        clumps = draw_calcifications(mni_to_kji, csf, spacing_kji, rng.spawn(1)[0], move)
        p = replace(p, calcifications=clumps)
        hu = add_calcifications(hu, spacing_kji, clumps)
    hu = ndimage.gaussian_filter(hu, [p.psf_mm / s for s in sampling]).astype(np.float32)

    # Output axes (slice, row, column) in the input's (k, j, i) mm frame, then rotated and scaled.
    order = [p.axis] + [a for a in range(3) if a != p.axis]
    axes = np.eye(3)[order]  # rows: unit vectors of output slice, row, column
    if rng.random() < 0.5:
        axes[1] *= -1
    rot = _rotation(p.rotation_deg)
    step = np.array([p.slice_mm, p.fov_mm / MATRIX, p.fov_mm / MATRIX]) / p.scale
    head = hu > -500
    centre_idx = np.array(ndimage.center_of_mass(head)) if head.any() else np.array(hu.shape) / 2
    centre_mm = centre_idx * sampling
    extent = np.ptp(np.argwhere(head) * sampling, axis=0) if head.any() else np.array(hu.shape) * sampling
    cover = float(extent[p.axis] + 10.0) / p.scale
    nk = int(min(MAX_SLICES, max(8, round(cover / p.slice_mm))))
    shape = (nk, MATRIX, MATRIX)
    # mm in input = centre + rot @ (axes.T @ ((out_index - half) * step))
    m_mm = rot @ axes.T @ np.diag(step)
    half = (np.array(shape, dtype=np.float64) - 1) / 2
    matrix = np.diag(1 / sampling) @ m_mm
    offset = centre_mm / sampling - matrix @ half
    out = ndimage.affine_transform(hu, matrix, offset=offset, output_shape=shape, order=1, cval=-1000.0)
    if p.cradle:
        add_cradle(out, float(step[1]), p)
    add_strands(out, float(step[1]), p.strands)
    noise = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), [0, 0.7, 0.7])
    noise *= p.noise_sd / max(float(noise.std()), 1e-6)
    out += noise
    voxels = np.clip(np.rint(out), -1024, 3071).astype(np.int16)
    meta = VolumeMetadata(modality="CT", series_description=name)
    spacing = (float(step[2]), float(step[1]), float(step[0]))
    volume = Volume(voxels=voxels, spacing=spacing, origin=(0.0, 0.0, 0.0), direction=np.eye(3), metadata=meta)
    return volume, p


def _arc_weight(
    shape: tuple[int, int], centre: tuple[float, float], semi_axes: tuple[float, float], mid_deg: float,
    arc_deg: float, thickness_px: float,
) -> npt.NDArray[np.float32]:  # fmt: skip
    """Coverage (0…1, soft edges) of an elliptical arc ``thickness_px`` thick: the ellipse of ``semi_axes``
    (rows, columns) about ``centre``, from ``mid_deg - arc_deg / 2`` to ``mid_deg + arc_deg / 2``
    (0° along the columns, 90° along the rows)."""
    (cy, cx), (ay, ax) = centre, semi_axes
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    dy, dx = (yy - cy) / ay, (xx - cx) / ax
    radius = np.sqrt(dy * dy + dx * dx)
    # Distance to the ellipse in pixels, to first order: |r - 1| over the gradient of r (zero at the centre).
    gradient = np.hypot(dy / ay, dx / ax) / np.maximum(radius, 1e-6)
    distance = np.abs(radius - 1.0) / np.maximum(gradient, 1e-9)
    weight = np.clip(thickness_px / 2 + 0.5 - distance, 0.0, 1.0).astype(np.float32)
    off = (np.degrees(np.arctan2(dy, dx)) - mid_deg + 180.0) % 360.0 - 180.0
    weight[np.abs(off) > arc_deg / 2] = 0.0
    return np.asarray(weight, dtype=np.float32)


def _into_air(hu: npt.NDArray[np.float32], weight: npt.NDArray[np.float32], value: float) -> None:
    """Blend ``value`` into the air (< −500 HU) of every slice of ``hu`` with the in-plane ``weight``."""
    blend = np.where(hu < -500, weight[None], 0.0).astype(np.float32)
    hu += blend * (value - hu)


def _outline(hu: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.bool_], tuple[float, float]] | None:
    """The head's in-plane footprint over all slices and the centre of its bounding box, or None."""
    head = (hu > -500).any(axis=0)
    if not head.any():
        return None
    rows, cols = np.nonzero(head)
    return np.asarray(head), (float(rows.min() + rows.max()) / 2, float(cols.min() + cols.max()) / 2)


def add_cradle(hu: npt.NDArray[np.float32], pixel_mm: float, p: PseudoCtParams) -> npt.NDArray[np.bool_]:
    """Draw a head holder into ``hu`` (``[slice, row, column]``, square pixels of ``pixel_mm``) in place.

    The cradle is an elliptical arc around the head's outline over all slices (its semi-axes are the
    outline's half-extents plus ``cradle_gap_mm``), ``cradle_mm`` thick with soft edges, and only
    replaces air. Returns its in-plane footprint.
    """
    found = _outline(hu)
    if found is None:
        return np.zeros(hu.shape[1:], dtype=bool)
    head, centre = found
    rows, cols = np.nonzero(head)
    gap = p.cradle_gap_mm / pixel_mm
    semi = (float(np.ptp(rows)) / 2 + gap, float(np.ptp(cols)) / 2 + gap)
    weight = _arc_weight(head.shape, centre, semi, p.cradle_angle_deg, p.cradle_arc_deg, p.cradle_mm / pixel_mm)
    _into_air(hu, weight, p.cradle_hu)
    return np.asarray(weight > 0)


def add_strands(hu: npt.NDArray[np.float32], pixel_mm: float, strands: tuple[Strand, ...]) -> npt.NDArray[np.bool_]:
    """Draw ``strands`` into ``hu`` (as :func:`add_cradle`), each over its slab of slices, only into air.

    A strand's circle lies ``offset_mm`` beyond the head's outline in its direction from the centre.
    Returns the footprint of each strand, stacked (``[strand, row, column]``).
    """
    found = _outline(hu)
    footprints = np.zeros((len(strands), *hu.shape[1:]), dtype=bool)
    if found is None:
        return footprints
    head, (cy, cx) = found
    n = hu.shape[0]
    for m, strand in enumerate(strands):
        t = np.radians(strand.direction_deg)
        unit = np.array([np.sin(t), np.cos(t)])
        steps = np.arange(0.0, float(np.hypot(*head.shape)), 0.5)
        points = np.rint(np.array([cy, cx])[:, None] + unit[:, None] * steps[None]).astype(np.intp)
        inside = (points >= 0).all(axis=0) & (points[0] < head.shape[0]) & (points[1] < head.shape[1])
        along = steps[inside][head[points[0, inside], points[1, inside]]]
        edge = float(along.max()) if along.size else 0.0
        radius = strand.radius_mm / pixel_mm
        centre = (cy, cx) + unit * (edge + strand.offset_mm / pixel_mm + radius)
        weight = _arc_weight(
            head.shape, (float(centre[0]), float(centre[1])), (radius, radius), strand.facing_deg, strand.arc_deg,
            strand.thickness_mm / pixel_mm,
        )  # fmt: skip
        k0 = int(strand.slab[0] * n)
        k1 = max(k0 + 1, int(round(strand.slab[1] * n)))
        _into_air(hu[k0:k1], weight, strand.hu)
        footprints[m] = weight > 0
    return footprints


def read_head(t1_path: str | Path, brain_path: str | Path) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_], Volume]:
    """The T1 voxels, the brain mask (non-zero voxels of ``brain_path``, on the same grid) and the T1 volume."""
    from inference.errors import RadLensError
    from inference.io.open_path import open_volume

    t1 = open_volume(t1_path)
    brain = open_volume(brain_path)
    if brain.shape != t1.shape:
        raise RadLensError(f"{brain_path}: brain mask shape {brain.shape} differs from the T1's {t1.shape}")
    return np.asarray(t1.voxels), np.asarray(brain.voxels) > 0, t1


def add_pseudo_ct(
    t1_path: str | Path, brain_path: str | Path, n: int, seed: int = 0, deform_mm: float = 0.0,
    atrophy_mm: float = 0.0, calcify: bool = False,
) -> list[Any]:  # fmt: skip
    """``n`` pseudo-CT heads from one T1 head, each a source of its own (:class:`SourceVolume`);
    ``deform_mm`` > 0 bends each one's anatomy, ``atrophy_mm`` > 0 widens its CSF spaces, ``calcify``
    adds physiological calcifications at their MNI sites (the T1 must be in MNI space, as Colin27 is)
    (:func:`make_pseudo_ct`).

    The T1 is read once, when the first variant is loaded; variants differ in every parameter of
    :class:`PseudoCtParams`. They share one anatomy, so validation scores on them are optimistic:
    judge a model on held-out real CT.
    """
    from inference.errors import RadLensError
    from inference.training.calcifications import check_mni
    from inference.training.sources import SourceVolume

    cache: dict[str, Any] = {}
    seeds = np.random.default_rng([seed, 7919]).integers(2**31, size=n)

    def read() -> None:
        t1, brain, vol = read_head(t1_path, brain_path)
        spacing = (float(vol.spacing[2]), float(vol.spacing[1]), float(vol.spacing[0]))
        try:
            to_index = check_mni(vol, brain) if calcify else None
        except RadLensError as exc:
            raise RadLensError(f"{t1_path}: {exc}") from exc
        cache["head"] = (t1, brain, spacing, to_index)

    if calcify:  # a head that cannot take calcifications stops the build now, not once per variant
        read()

    def loader(m: int) -> Any:
        def load() -> Volume:
            if "head" not in cache:
                read()
            t1, brain, spacing, to_index = cache["head"]
            volume, params = make_pseudo_ct(
                t1, brain, spacing, np.random.default_rng(int(seeds[m])), f"pseudo-ct-{m:03d}", deform_mm,
                atrophy_mm, to_index,
            )  # fmt: skip
            volume.metadata.extra["pseudo_ct"] = params.to_dict()
            return volume

        return load

    return [
        SourceVolume(
            name=f"pseudo-ct-{m:03d}",
            load=loader(m),
            label=None,
            path=f"(pseudo-CT from {Path(t1_path).name})",
            info={
                "pseudo_ct": {"t1": str(t1_path), "brain_mask": str(brain_path), "seed": int(seeds[m])}
                | ({"deform_mm": deform_mm} if deform_mm > 0 else {})
                | ({"atrophy_mm": atrophy_mm} if atrophy_mm > 0 else {})
                | ({"calcifications": True} if calcify else {})
            },
        )
        for m in range(n)
    ]
