"""Writing a :class:`Volume` as NIfTI-1 through nibabel, atomically.

NIfTI stores RAS millimetres and voxels with ``i`` fastest; RadLens holds LPS and
``voxels[k, j, i]``. So the affine's first two rows change sign and the array is handed to
nibabel transposed to ``(i, j, k)`` (a view: no copy). The stored type is kept.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.errors import RadLensError
from inference.volume import Volume

NIFTI_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii")

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

# NIFTI_INTENT_VECTOR: colour/vector images are written with the components along dim 5.
_INTENT_VECTOR = 1007


class NiftiWriteError(RadLensError):
    """A NIfTI file could not be written; names the destination and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def _nifti_suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return suffix
    raise NiftiWriteError(path, "the output name must end in .nii or .nii.gz")


def ras_affine(volume: Volume) -> npt.NDArray[np.float64]:
    """The 4×4 voxel ``(i, j, k)`` → RAS mm matrix NIfTI stores for ``volume``."""
    out: npt.NDArray[np.float64] = _LPS_TO_RAS @ volume.affine
    return out


def is_orthonormal(direction: npt.ArrayLike, tol: float = 1e-4) -> bool:
    """Whether the direction columns are unit length and mutually perpendicular (no gantry-tilt shear)."""
    d = np.asarray(direction, dtype=np.float64)
    return bool(np.allclose(d.T @ d, np.eye(3), atol=tol))


def _nifti_array(voxels: npt.NDArray[Any]) -> npt.NDArray[Any]:
    if voxels.dtype == np.bool_:
        voxels = voxels.astype(np.uint8)
    elif voxels.dtype == np.float16:
        voxels = voxels.astype(np.float32)
    if voxels.ndim == 3:
        return voxels.transpose(2, 1, 0)
    # [k, j, i, c] -> (i, j, k, t=1, c)
    return voxels.transpose(2, 1, 0, 3)[:, :, :, np.newaxis, :]


def _make_image(volume: Volume) -> Any:
    import nibabel as nib

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
    # Stored values are the values: never let nibabel scale them.
    hdr["scl_slope"] = np.nan
    hdr["scl_inter"] = np.nan
    return img


def _fsync(path: str) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def write_nifti(volume: Volume, path: str | os.PathLike[str]) -> Path:
    """Write ``volume`` to ``path`` (``.nii`` or ``.nii.gz``, chosen by the name) and return the path.

    The affine is stored as RAS in both sform and qform (code 1, scanner-anatomical); a sheared
    direction (gantry tilt) is stored in the sform only, qform code 0. Units are millimetres and
    the voxel type is kept (int16 stays int16). 4-D colour volumes are written with their
    components along NIfTI's fifth dimension (intent "vector").

    The file appears atomically: it is written to a hidden temporary file in the destination
    folder, then renamed over ``path``; if anything fails the temporary file is removed and an
    existing ``path`` is left untouched. Raises :class:`NiftiWriteError` when the name has the
    wrong suffix, the folder does not exist, or the write fails.
    """
    dest = Path(path)
    suffix = _nifti_suffix(dest)
    parent = dest.parent
    if not parent.is_dir():
        raise NiftiWriteError(dest, f"the folder {parent} does not exist")
    if dest.is_dir():
        raise NiftiWriteError(dest, "is a folder")
    try:
        mode = dest.stat().st_mode & 0o777
    except OSError:
        mode = 0o644
    img = _make_image(volume)

    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.tmp-", suffix=suffix, dir=parent)
    except OSError as exc:
        raise NiftiWriteError(dest, f"cannot create a file in {parent}: {exc.strerror or exc}") from None
    os.close(fd)
    try:
        import nibabel as nib

        nib.save(img, tmp)
        _fsync(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise NiftiWriteError(dest, f"write failed: {exc.strerror or exc}") from exc
        raise
    return dest
