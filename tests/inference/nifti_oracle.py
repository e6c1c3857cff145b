"""nibabel as the oracle for RadLens's own NIfTI writer: the image nibabel would write for a volume."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from inference.io.nifti_writer import _INTENT_VECTOR, _nifti_array, is_orthonormal, ras_affine
from inference.volume import Volume


def nibabel_image(volume: Volume, scale: tuple[float, float] | None = None) -> nib.Nifti1Image:
    """``volume`` as nibabel builds a NIfTI-1 image of it: RAS affine in sform and qform (qform code
    0 for a sheared grid), millimetres, colour along the 5th dimension, ``scale`` as scl_slope/inter."""
    data = _nifti_array(volume.voxels)
    affine = ras_affine(volume)
    header = nib.Nifti1Header()
    header.set_data_dtype(data.dtype)
    img = nib.Nifti1Image(data, affine, header=header)
    hdr = img.header
    if is_orthonormal(volume.direction):
        img.set_qform(affine, code=1)
    else:
        # A sheared grid (gantry tilt) has no quaternion form: only the sform can hold it.
        img.set_qform(None, code=0)
    img.set_sform(affine, code=1)
    hdr.set_xyzt_units(xyz="mm")
    if volume.voxels.ndim == 4:
        hdr.set_intent(_INTENT_VECTOR, (), name="colour")
    # Stored values are the values (unless a scale is asked for): never let nibabel choose one.
    hdr["scl_slope"], hdr["scl_inter"] = scale if scale is not None else (np.nan, np.nan)
    return img


def write_with_nibabel(volume: Volume, path: Path, scale: tuple[float, float] | None = None) -> Path:
    nib.save(nibabel_image(volume, scale), path)
    return path
