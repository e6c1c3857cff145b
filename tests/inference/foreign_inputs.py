"""Inputs a model was not made for, generated from real data: a diffusion-like MR volume from Colin27,
and nibabel's real Siemens DWI mosaics (headers: their pixels are zeroed) as DICOM files.

The diffusion-like volume keeps Colin27's anatomy and gives it diffusion imaging's contrast and
grid: tissue classes from the T1 (CSF, grey, white matter inside ``ch2bet``; scalp outside), the
b = 0 image's T2 weighting (CSF brightest, grey above white matter, fat-suppressed scalp dim), on a
2 × 2 × 2.5 mm EPI grid with its blur and noise.
"""

from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path

import numpy as np

from inference.io.image_file import read_image_file
from inference.volume import Volume, VolumeMetadata

TEMPLATES = Path("/usr/share/mricron/templates")
COLIN = TEMPLATES / "ch2.nii.gz"
COLIN_BET = TEMPLATES / "ch2bet.nii.gz"


def nibabel_dicom(name: str) -> Path:
    import nibabel

    return Path(nibabel.__file__).parent / "nicom" / "tests" / "data" / name


def colin(modality: str = "") -> Volume:
    vol = read_image_file(COLIN)
    return dataclasses.replace(vol, metadata=dataclasses.replace(vol.metadata, modality=modality))


def dwi_like(b_value: int = 0, seed: int = 0) -> Volume:
    """Colin27 with a diffusion series' contrast and grid (see the module)."""
    from scipy import ndimage

    t1 = colin()
    vox = np.asarray(t1.voxels, dtype=np.float32)
    brain = np.asarray(read_image_file(COLIN_BET).voxels) > 0
    inside = vox[brain]
    csf_max, gm_max = np.percentile(inside, [15, 55])
    head = vox > 0.1 * np.percentile(vox, 99)
    out = np.zeros_like(vox)
    if b_value == 0:
        csf, gm, wm, scalp = 1.0, 0.62, 0.48, 0.12
    else:  # b = 1000: CSF dark (free water diffuses), tissue dim
        csf, gm, wm, scalp = 0.08, 0.35, 0.30, 0.03
    out[head & ~brain] = scalp
    out[brain & (vox <= csf_max)] = csf
    out[brain & (vox > csf_max) & (vox <= gm_max)] = gm
    out[brain & (vox > gm_max)] = wm
    out = ndimage.gaussian_filter(out, 1.2)
    zoom = (1 / 2.5, 1 / 2.0, 1 / 2.0)  # (k, j, i): 2.5 mm slices, 2 mm pixels
    small = ndimage.zoom(out, zoom, order=1)
    rng = np.random.default_rng(seed)
    small = np.abs(small + rng.normal(0, 0.03, small.shape).astype(np.float32)) * 800
    spacing = (t1.spacing[0] * 2.0, t1.spacing[1] * 2.0, t1.spacing[2] * 2.5)
    return Volume(small.astype(np.float32), spacing, t1.origin, t1.direction, VolumeMetadata(modality="MR"))


def unzip_dicom(name: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / name.removesuffix(".gz")
    out.write_bytes(gzip.decompress(nibabel_dicom(name).read_bytes()))
    return out
