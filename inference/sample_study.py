"""A deterministic chest-like CT phantom, and the sample DICOM study built from it.

The phantom has a body ellipse of soft tissue, two lungs, a spine, ribs, the aorta and a few
spherical nodules at known positions inside the lungs, so the viewer and the detection
pipeline have something real-looking to open without patient data.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from inference.volume import Volume, VolumeMetadata, WindowPreset

__all__ = [
    "DEFAULT_SHAPE",
    "DEFAULT_SPACING",
    "MANIFEST_NAME",
    "SAMPLE_VERSION",
    "Nodule",
    "default_sample_dir",
    "is_complete_sample",
    "lung_mask",
    "make_chest_phantom",
    "nodules_on_grid",
    "sample_nodules",
    "write_sample_study",
]

SAMPLE_VERSION = "sample-study-v1"
MANIFEST_NAME = ".radlens-sample.json"  # hidden: scans skip dot-files
DEFAULT_SHAPE = (80, 192, 192)
DEFAULT_SPACING = (1.5, 1.5, 2.5)
_NOISE_SEED = 20240601

AIR_HU = -1000
TISSUE_HU = 40
LUNG_HU = -850
BONE_HU = 700
CONTRAST_HU = 200
FAT_CANAL_HU = 20

# Geometry in LPS mm relative to the volume centre (+x patient left, +y posterior, +z superior).
BODY_SEMI_AXES = (130.0, 95.0)
LUNG_CENTERS = ((-62.0, -5.0, -10.0), (62.0, -5.0, -10.0))  # patient right, patient left
LUNG_SEMI_AXES = (45.0, 62.0, 115.0)
SPINE_CENTER = (0.0, 60.0)
SPINE_RADIUS = 18.0
CANAL_CENTER = (0.0, 84.0)
CANAL_RADIUS = 7.0
AORTA_DESCENDING = (22.0, 38.0, 11.0)  # x, y, radius
AORTA_ASCENDING = (-5.0, -38.0, 13.0)
RIB_INSET = (8.0, 14.0)  # outer and inner distance of the rib ring inside the body outline
RIB_PERIOD_MM = 25.0
RIB_WIDTH_MM = 9.0

#: Nodules: centre (x, y, z) mm from the volume centre, radius mm, HU.
_NODULES = (
    ((-60.0, -10.0, 20.0), 6.0, 45),
    ((65.0, 5.0, -30.0), 8.0, 35),
    ((-75.0, 20.0, -60.0), 4.0, 55),
    ((50.0, -35.0, 45.0), 3.0, 60),
)


@dataclass(frozen=True)
class Nodule:
    """A spherical nodule of the phantom: continuous ``(i, j, k)`` centre, LPS centre, radius."""

    center_ijk: tuple[float, float, float]
    center_lps: tuple[float, float, float]
    radius_mm: float


def _origin(shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> tuple[float, float, float]:
    """Origin that puts the volume centre at LPS (0, 0, 0)."""
    nk, nj, ni = shape
    si, sj, sk = spacing
    return (-(ni - 1) / 2 * si, -(nj - 1) / 2 * sj, -(nk - 1) / 2 * sk)


def nodules_on_grid(shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> list[Nodule]:
    """The phantom's nodules on a grid of ``shape`` (k, j, i) and ``spacing`` (i, j, k), as
    :func:`make_chest_phantom` draws them there."""
    origin = np.asarray(_origin(shape, spacing))
    out = []
    for center, radius, _hu in _NODULES:
        lps = np.asarray(center, dtype=np.float64)
        ijk = (lps - origin) / np.asarray(spacing)
        out.append(
            Nodule(
                center_ijk=(float(ijk[0]), float(ijk[1]), float(ijk[2])),
                center_lps=(float(lps[0]), float(lps[1]), float(lps[2])),
                radius_mm=radius,
            )
        )
    return out


def sample_nodules() -> list[Nodule]:
    """The nodules of the sample study (the default phantom), computed without building it."""
    return nodules_on_grid(DEFAULT_SHAPE, DEFAULT_SPACING)


def lung_mask(volume: Volume) -> npt.NDArray[np.bool_]:
    """The lung ellipsoids of the phantom on ``volume``'s grid (ground truth for tests)."""
    x, y, z = _grid(volume.shape, volume.spacing, volume.origin)
    return _lungs(x, y, z)


def _grid(
    shape: tuple[int, int, int], spacing: tuple[float, float, float], origin: tuple[float, float, float]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    nk, nj, ni = shape
    x = origin[0] + spacing[0] * np.arange(ni, dtype=np.float64)[None, None, :]
    y = origin[1] + spacing[1] * np.arange(nj, dtype=np.float64)[None, :, None]
    z = origin[2] + spacing[2] * np.arange(nk, dtype=np.float64)[:, None, None]
    return x, y, z


def _lungs(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], z: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    ax, ay, az = LUNG_SEMI_AXES
    mask = np.zeros(np.broadcast_shapes(x.shape, y.shape, z.shape), dtype=bool)
    for cx, cy, cz in LUNG_CENTERS:
        mask |= ((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2 + ((z - cz) / az) ** 2 <= 1.0
    return mask


def make_chest_phantom(
    shape: tuple[int, int, int] = DEFAULT_SHAPE,
    spacing: tuple[float, float, float] = DEFAULT_SPACING,
) -> tuple[Volume, list[Nodule]]:
    """Build the phantom: int16 HU ``voxels[k, j, i]``, axial head-first, identity direction.

    ``shape`` is ``(k, j, i)``; ``spacing`` is ``(si, sj, sk)`` mm. The volume centre lies at
    LPS (0, 0, 0); the result is the same on every call.
    """
    nk, nj, ni = (int(n) for n in shape)
    if min(nk, nj, ni) < 1:
        raise ValueError(f"shape must be positive, got {shape}")
    grid_shape = (nk, nj, ni)
    sp = (float(spacing[0]), float(spacing[1]), float(spacing[2]))
    origin = _origin(grid_shape, sp)
    x, y, z = _grid(grid_shape, sp, origin)
    full = (nk, nj, ni)

    a, b = BODY_SEMI_AXES
    body2d = (x / a) ** 2 + (y / b) ** 2 <= 1.0  # (1, nj, ni)
    hu = np.full(full, AIR_HU, dtype=np.int16)
    hu[np.broadcast_to(body2d, full)] = TISSUE_HU

    lungs = _lungs(x, y, z)
    hu[lungs] = LUNG_HU

    # Ribs: a ring just inside the body outline, in bands along z, open at the sternum.
    outer = (x / (a - RIB_INSET[0])) ** 2 + (y / (b - RIB_INSET[0])) ** 2 <= 1.0
    inner = (x / (a - RIB_INSET[1])) ** 2 + (y / (b - RIB_INSET[1])) ** 2 <= 1.0
    not_sternum = ~((np.abs(x) < 25.0) & (y < 0))
    ring = outer & ~inner & not_sternum  # (1, nj, ni)
    bands = np.mod(z - origin[2], RIB_PERIOD_MM) < RIB_WIDTH_MM  # (nk, 1, 1)
    hu[ring & bands] = BONE_HU

    # Spine: vertebral body and the spinal canal behind it, through every slice.
    spine = (x - SPINE_CENTER[0]) ** 2 + (y - SPINE_CENTER[1]) ** 2 <= SPINE_RADIUS**2
    canal_ring = (x - CANAL_CENTER[0]) ** 2 + (y - CANAL_CENTER[1]) ** 2 <= (CANAL_RADIUS + 4.0) ** 2
    canal = (x - CANAL_CENTER[0]) ** 2 + (y - CANAL_CENTER[1]) ** 2 <= CANAL_RADIUS**2
    hu[np.broadcast_to(spine | canal_ring, full)] = BONE_HU
    hu[np.broadcast_to(canal, full)] = FAT_CANAL_HU

    # Aorta: descending beside the spine through every slice, ascending in the upper half.
    for cx, cy, r in (AORTA_DESCENDING,):
        vessel = (x - cx) ** 2 + (y - cy) ** 2 <= r**2
        hu[np.broadcast_to(vessel, full)] = CONTRAST_HU
    cx, cy, r = AORTA_ASCENDING
    ascending = ((x - cx) ** 2 + (y - cy) ** 2 <= r**2) & (z > -20.0)
    hu[ascending] = CONTRAST_HU

    for center, radius, value in _NODULES:
        cx, cy, cz = center
        sphere = (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= radius**2
        hu[sphere] = value

    # Small deterministic noise inside the body; the air outside stays exactly -1000.
    rng = np.random.default_rng(_NOISE_SEED)
    noise = rng.integers(-6, 7, size=full, dtype=np.int16)
    inside = np.broadcast_to(body2d, full)
    hu[inside] += noise[inside]

    metadata = VolumeMetadata(
        modality="CT",
        patient_name="RADLENS^PHANTOM",
        patient_id="RADLENS-PHANTOM",
        study_description="RadLens sample chest phantom",
        series_description="Chest phantom",
        units="HU",
        windows=(WindowPreset(40.0, 400.0, "Soft tissue"), WindowPreset(-600.0, 1500.0, "Lung")),
        source="phantom",
    )
    volume = Volume(voxels=hu, spacing=sp, origin=origin, direction=np.eye(3), metadata=metadata)
    return volume, nodules_on_grid(grid_shape, sp)


def default_sample_dir() -> Path:
    """Where the sample study is cached: ``<user cache>/radlens/sample-study-v1``."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("radlens")) / SAMPLE_VERSION


def _content_hash(folder: Path, names: list[str]) -> str:
    h = hashlib.sha256()
    for name in sorted(names):
        h.update(name.encode("utf-8") + b"\0")
        h.update((folder / name).read_bytes())
    return h.hexdigest()


def is_complete_sample(folder: Path) -> bool:
    """Whether ``folder`` holds a complete, unaltered sample study (per its manifest)."""
    try:
        manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
        names = list(manifest["files"])
        if manifest.get("version") != SAMPLE_VERSION or len(names) != int(manifest["file_count"]):
            return False
        present = {p.name for p in folder.iterdir() if p.name != MANIFEST_NAME}
        if present != set(names):
            return False
        return bool(_content_hash(folder, names) == manifest["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _remove_stale(folder: Path) -> None:
    """Remove an incomplete copy, refusing folders that hold anything but ours."""
    if not folder.exists():
        return
    entries = list(folder.iterdir())
    foreign = [p for p in entries if not p.is_file() or not (p.suffix == ".dcm" or p.name == MANIFEST_NAME)]
    if foreign:
        raise FileExistsError(f"{folder} exists and is not a RadLens sample study; not overwriting it")
    for p in entries:
        p.unlink()
    folder.rmdir()


def write_sample_study(out_dir: Path | None = None) -> Path:
    """Write the phantom as a CT DICOM series into ``out_dir`` (default: the user cache).

    A complete copy already there is reused. The series is written into a temporary sibling
    folder with its manifest last, then renamed into place, so a crash never leaves a folder
    that looks complete. Returns the study folder.
    """
    target = Path(out_dir) if out_dir is not None else default_sample_dir()
    if is_complete_sample(target):
        return target
    from inference.io.dicom_writer import write_dicom_series

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        volume, _ = make_chest_phantom()
        paths = write_dicom_series(
            volume.voxels,
            tmp,
            spacing=volume.spacing,
            origin=volume.origin,
            direction=volume.direction,
            modality="CT",
            patient_name="RADLENS^PHANTOM",
            patient_id="RADLENS-PHANTOM",
            uid_seed=f"radlens-{SAMPLE_VERSION}",
            series_number=1,
            series_description="Chest phantom",
            study_description="RadLens sample chest phantom",
            study_date="20240601",
            window_center=[40.0, -600.0],
            window_width=[400.0, 1500.0],
        )
        names = [p.name for p in paths]
        manifest = {
            "version": SAMPLE_VERSION,
            "file_count": len(names),
            "files": names,
            "sha256": _content_hash(tmp, names),
        }
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        if is_complete_sample(target):  # another process finished first
            return target
        _remove_stale(target)
        try:
            os.rename(tmp, target)
        except OSError:
            if is_complete_sample(target):
                return target
            raise
        return target
    finally:
        if tmp.exists():
            with contextlib.suppress(OSError):
                shutil.rmtree(tmp)
