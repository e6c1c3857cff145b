"""Reading NIfTI, NRRD and MetaImage files through SimpleITK as one :class:`Volume`.

Where SimpleITK is not installed (the packaged app) or ``RADLENS_NO_SIMPLEITK=1``, the same files
are read by :mod:`inference.io.image_file_fallback`, which follows ITK's rules and gives the same
voxels and geometry; :func:`~inference.io.image_file_fallback.use_simpleitk` chooses.

SimpleITK already reports geometry in LPS millimetres (it converts NIfTI's RAS), and
``GetArrayFromImage`` returns voxels as ``[k, j, i]``, which is the project's order, so the
only conversion here is the direction tuple into a 3×3 matrix. Stored types are kept
(int16 stays int16); only float64 is narrowed to float32, and the metadata says so.
"""

from __future__ import annotations

import gzip
import math
import os
import re
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.errors import (
    AbsurdDimensionsError,
    InvalidValueError,
    LoadError,
    TruncatedFileError,
)
from inference.io.error_boundary import typed_errors
from inference.io.image_checks import MAX_VOXELS, check_image_file
from inference.io.image_file_fallback import read_info, use_simpleitk
from inference.volume import Volume, VolumeMetadata

IMAGE_SUFFIXES: tuple[str, ...] = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")

# The ImageIO used for each suffix, so that (say) a DICOM file named ``.nii`` is not
# silently read as DICOM by SimpleITK's auto-detection.
_IMAGE_IO: dict[str, str] = {
    ".nii": "NiftiImageIO",
    ".nii.gz": "NiftiImageIO",
    ".nrrd": "NrrdImageIO",
    ".nhdr": "NrrdImageIO",
    ".mha": "MetaImageIO",
    ".mhd": "MetaImageIO",
}


def image_suffix(path: str | os.PathLike[str]) -> str | None:
    """The one of :data:`IMAGE_SUFFIXES` that ``path`` ends with (lower case), or None."""
    return _suffix(Path(path))


def _suffix(path: Path) -> str | None:
    name = path.name.lower()
    # Longest first so ``.nii.gz`` wins over a bare ``.gz`` check.
    for suffix in sorted(IMAGE_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix) and len(name) > len(suffix):
            return suffix
    return None


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` has one of :data:`IMAGE_SUFFIXES` (case-insensitive); the file is not opened."""
    return _suffix(Path(path)) is not None


def _short(exc: BaseException, limit: int = 200) -> str:
    """The useful part of an ITK exception message, shortened.

    ITK messages look like ``Exception thrown in SimpleITK ...: file.cxx:490:\nITK ERROR:
    MetaImageIO(0x...): File cannot be read ...\nReason: <errno text>``; the errno text is often
    stale ("Success", "No such file or directory") so only the ITK ERROR text is kept.
    """
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("Exception thrown in SimpleITK", "Reason:"))]
    text = " ".join(useful) if useful else (lines[-1] if lines else type(exc).__name__)
    text = re.sub(r"(itk::)?ITK ERROR: \w+\(0x[0-9a-fA-F]+\):\s*", "", text)
    if "[nrrd]" in text:
        text = text.rsplit("[nrrd]", 1)[1].strip()
    text = re.sub(r"itk::ERROR: \w+\(0x[0-9a-fA-F]+\):\s*", "", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _error_for(path: Path, exc: BaseException, stage: str) -> LoadError:
    message = _short(exc)
    low = str(exc).replace(str(path), "").lower()  # a folder named "truncated" says nothing about the file
    truncated_markers = (
        "truncat", "end of file", "unexpected eof", "premature", "read failed", "got only", "but received",
    )  # fmt: skip
    if any(m in low for m in truncated_markers):
        return TruncatedFileError(path, f"the file ends early ({stage}): {message}")
    return LoadError(path, f"SimpleITK cannot {stage} this image: {message}")


def _nifti_expected_end(header: bytes) -> int | None:
    """``vox_offset + data bytes`` from a NIfTI-1/2 header, or None when it cannot be parsed."""
    if len(header) < 348:
        return None
    for endian in ("<", ">"):
        (sizeof_hdr,) = struct.unpack(endian + "i", header[:4])
        if sizeof_hdr == 348:
            dims = struct.unpack(endian + "8h", header[40:56])
            (bitpix,) = struct.unpack(endian + "h", header[72:74])
            (vox_offset_f,) = struct.unpack(endian + "f", header[108:112])
            if not math.isfinite(vox_offset_f):
                return None
            vox_offset = int(vox_offset_f)
            break
        if sizeof_hdr == 540 and len(header) >= 540:
            (bitpix,) = struct.unpack(endian + "h", header[14:16])
            dims = struct.unpack(endian + "8q", header[16:80])
            (vox_offset,) = struct.unpack(endian + "q", header[168:176])
            break
    else:
        return None
    ndim = int(dims[0])
    if not 1 <= ndim <= 7 or bitpix <= 0 or bitpix % 8 or vox_offset < 0:
        return None
    n = 1
    for d in dims[1 : ndim + 1]:
        if d <= 0:
            return None
        n *= int(d)
    return int(vox_offset) + n * (int(bitpix) // 8)


def _gzip_length(path: Path) -> int:
    """Decompressed length of a gzip file; raises EOFError/OSError/zlib.error when truncated or corrupt."""
    total = 0
    with gzip.open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            total += len(chunk)
    return total


def _check_nifti_complete(path: Path, compressed: bool) -> None:
    """Raise :class:`TruncatedFileError` when a NIfTI file holds fewer bytes than its header says.

    ITK's NIfTI reader does not notice a short file: it fills the missing voxels with zeros.
    For ``.nii.gz`` the gzip trailer (uncompressed size mod 2**32) is compared first, which costs
    nothing; only when it disagrees (a cut file, or a multi-member gzip) is the stream decompressed.
    """
    try:
        with path.open("rb") as fh:
            head_raw = fh.read(1 << 16)
    except OSError:
        return  # ITK reports the unreadable file in its own words
    if compressed:
        inflater = zlib.decompressobj(wbits=31)
        try:
            header = inflater.decompress(head_raw, 540)
        except zlib.error:
            return  # not gzip at all: ITK says so
        if len(header) < 348 and not inflater.eof and len(head_raw) < (1 << 16):
            raise TruncatedFileError(path, "the compressed file ends inside the NIfTI header")
    else:
        header = head_raw[:540]
        if (
            len(header) < 348
            and len(header) >= 4
            and 348 in struct.unpack("<i", header[:4]) + struct.unpack(">i", header[:4])
        ):
            raise TruncatedFileError(path, f"the file ends inside the NIfTI header ({len(header)} of 348 bytes)")
    expected = _nifti_expected_end(header)
    if expected is None:
        return
    if not compressed:
        actual = path.stat().st_size
    else:
        with path.open("rb") as fh:
            fh.seek(-4, os.SEEK_END)
            (isize,) = struct.unpack("<I", fh.read(4))
        if isize == expected % 2**32:
            return
        try:
            actual = _gzip_length(path)
        except (OSError, EOFError, zlib.error) as exc:
            raise TruncatedFileError(path, f"the compressed data is cut short or corrupt ({exc})") from None
    if actual < expected:
        raise TruncatedFileError(path, f"the header announces {expected} bytes but the file holds {actual}")


def _direction_matrix(direction: tuple[float, ...], dim: int) -> npt.NDArray[np.float64]:
    full = np.asarray(direction, dtype=np.float64).reshape(dim, dim)
    out = np.eye(3)
    n = min(dim, 3)
    out[:n, :n] = full[:n, :n]
    return out


def _read_sheared_nifti(path: Path, suffix: str) -> Volume:
    """Read a NIfTI file whose sform is not orthonormal (a sheared grid) through nibabel."""
    import nibabel as nib

    try:
        img = nib.load(str(path))
        affine_ras = np.asarray(img.affine, dtype=np.float64)
        shape = tuple(int(s) for s in img.shape)
        qa: list[str] = []
        if len(shape) > 3 and int(np.prod(shape[3:])) > 1:
            if len(shape) == 5 and shape[3] == 1:
                pass  # vector/colour components along dim 5
            else:
                qa.append(f"4-D series of {shape[3]} volumes: only the first is shown")
        proxy = img.dataobj
        slope, inter = img.header.get_slope_inter()
        if (slope is None or slope == 1.0) and (inter is None or inter == 0.0):
            data = np.asarray(proxy.get_unscaled()) if hasattr(proxy, "get_unscaled") else np.asarray(proxy)
        else:
            data = np.asarray(proxy)
    except (OSError, ValueError, EOFError, zlib.error) as exc:
        raise LoadError(path, f"nibabel cannot read this sheared NIfTI image: {exc}") from None
    if data.ndim == 5 and data.shape[3] == 1:
        arr = np.ascontiguousarray(data[:, :, :, 0, :].transpose(2, 1, 0, 3))
    else:
        while data.ndim > 3:
            data = data[..., 0]
        arr = np.ascontiguousarray(data.transpose(2, 1, 0))
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine_ras
    m = affine[:3, :3]
    spacing_arr = np.linalg.norm(m, axis=0)
    direction = m / spacing_arr[None, :]
    extra: dict[str, Any] = {"format": suffix.lstrip("."), "sheared": True}
    return Volume(
        voxels=arr,
        spacing=(float(spacing_arr[0]), float(spacing_arr[1]), float(spacing_arr[2])),
        origin=(float(affine[0, 3]), float(affine[1, 3]), float(affine[2, 3])),
        direction=direction,
        metadata=VolumeMetadata(modality="", source=str(path), extra=extra),
        qa_warnings=tuple(qa),
    )


def read_image_file(path: str | os.PathLike[str]) -> Volume:
    """Read a NIfTI/NRRD/MetaImage file as a :class:`Volume` in LPS millimetres.

    * 3-D scalar images give ``voxels[k, j, i]`` in the stored type; float64 becomes float32
      (``metadata.extra["converted_from"] == "float64"``).
    * Vector/RGB images give 4-D ``voxels[k, j, i, c]``, colour last.
    * 2-D images become one slice (``k == 1``, 1 mm between slices).
    * 4-D time series: the first volume is kept and a QA warning says how many were dropped.

    Raises :class:`UnreadableFileError` (missing, folder, no permission), :class:`EmptyFileError`,
    :class:`TruncatedFileError`, :class:`AbsurdDimensionsError` or :class:`LoadError`, each
    naming ``path``.
    """
    p = Path(path)
    with typed_errors(p, "reading this image"):
        return _read_image_file(p)


def _read_image_file(p: Path) -> Volume:
    suffix = _suffix(p)
    check_image_file(p, suffix)
    if suffix in (".nii", ".nii.gz"):
        _check_nifti_complete(p, compressed=suffix == ".nii.gz")
    if not use_simpleitk():
        return _read_without_simpleitk(p, suffix)
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(p))
    if suffix is not None:
        reader.SetImageIO(_IMAGE_IO[suffix])
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        if suffix in (".nii", ".nii.gz") and "orthonormal" in str(exc):
            # ITK refuses sheared NIfTI affines (gantry-tilt CT as written by write_nifti,
            # sform only); nibabel reads the sform as it is.
            return _read_sheared_nifti(p, suffix)
        raise _error_for(p, exc, "read the header of") from None

    size = tuple(int(s) for s in reader.GetSize())
    dim = len(size)
    components = int(reader.GetNumberOfComponents())
    qa = _check_size(p, size, components)
    if dim == 4:
        # Read only the first volume rather than the whole series.
        reader.SetExtractIndex([0, 0, 0, 0])
        reader.SetExtractSize([size[0], size[1], size[2], 0])

    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise _error_for(p, exc, "read the voxels of") from None

    if image.GetPixelID() in (sitk.sitkComplexFloat32, sitk.sitkComplexFloat64):
        raise LoadError(p, f"complex-valued images are not supported ({image.GetPixelIDTypeAsString()})")

    arr: npt.NDArray[Any] = sitk.GetArrayFromImage(image)
    del image
    return _volume(
        p,
        suffix,
        arr,
        dim,
        components,
        [float(x) for x in reader.GetSpacing()],
        [float(x) for x in reader.GetOrigin()],
        _direction_matrix(tuple(reader.GetDirection()), dim),
        qa,
    )


def _check_size(p: Path, size: tuple[int, ...], components: int) -> list[str]:
    """Refuse dimensions no image has before anything is allocated; the QA notes of a 4-D series."""
    dim = len(size)
    if dim < 2 or dim > 4:
        raise LoadError(p, f"{dim}-D images are not supported (only 2-D, 3-D and 4-D)")
    n_voxels = int(np.prod(size[:3], dtype=np.int64)) * max(components, 1)
    if n_voxels > MAX_VOXELS or any(s <= 0 for s in size):
        raise AbsurdDimensionsError(p, f"the header claims size {size} × {components} components")
    if dim == 4 and size[3] > 1:
        return [f"4-D series of {size[3]} volumes: only the first is shown"]
    return []


def _read_without_simpleitk(p: Path, suffix: str | None) -> Volume:
    """The same file read by :mod:`inference.io.image_file_fallback` (the packaged app has no SimpleITK)."""
    if suffix is None:
        raise LoadError(p, f"not a NIfTI, NRRD or MetaImage file name (expected one of {', '.join(IMAGE_SUFFIXES)})")
    try:
        info = read_info(p, suffix)
    except LoadError as exc:
        if suffix in (".nii", ".nii.gz") and "orthonormal" in exc.reason:
            return _read_sheared_nifti(p, suffix)
        raise
    qa = _check_size(p, info.size, info.components)
    arr = info.read_first_volume()
    return _volume(
        p,
        suffix,
        arr,
        info.dim,
        info.components,
        list(info.spacing),
        list(info.origin),
        _direction_matrix(tuple(info.direction.ravel()), info.dim),
        qa,
    )


def _volume(
    p: Path,
    suffix: str | None,
    arr: npt.NDArray[Any],
    dim: int,
    components: int,
    spacing_in: list[float],
    origin_in: list[float],
    direction: npt.NDArray[np.float64],
    qa: list[str],
) -> Volume:
    """ITK's image (``arr`` as ``GetArrayFromImage`` gives it, geometry per image dimension) as a Volume."""
    if np.iscomplexobj(arr):
        raise LoadError(p, f"complex-valued images are not supported ({arr.dtype})")
    if dim == 2:
        arr = arr[np.newaxis]
        spacing_in = [*spacing_in[:2], 1.0]
        origin_in = [*origin_in[:2], 0.0]
    spacing = (spacing_in[0], spacing_in[1], spacing_in[2])
    origin = (origin_in[0], origin_in[1], origin_in[2])

    extra: dict[str, Any] = {"format": suffix.lstrip(".") if suffix else "", "components": components}
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
        extra["converted_from"] = "float64"

    if any(not np.isfinite(s) or s <= 0 for s in spacing):
        qa.append(f"the file gives spacing {spacing}; shown on 1 mm voxels")
        spacing = (1.0, 1.0, 1.0)
    if abs(np.linalg.det(direction)) < 1e-6:
        qa.append("the file gives a degenerate direction matrix; shown axis-aligned")
        direction = np.eye(3)

    metadata = VolumeMetadata(modality="", source=str(p), extra=extra)
    if not all(np.isfinite(origin)) or not np.all(np.isfinite(direction)):
        raise InvalidValueError(p, f"the file gives a non-finite origin {origin} or direction")
    return Volume(
        voxels=arr,
        spacing=spacing,
        origin=origin,
        direction=direction,
        metadata=metadata,
        qa_warnings=tuple(qa),
    )
