"""NIfTI, NRRD and MetaImage headers and voxels without SimpleITK, the way ITK reads them.

The packaged app leaves SimpleITK out (a 260 MiB library used only for these three formats and
:func:`~inference.io.resample.resample_like`); the installed app keeps reading through SimpleITK,
which :func:`use_simpleitk` decides in one place. Each reader here follows the rules of the ITK
ImageIO it stands in for, so both paths give the same :class:`ImageInfo` and voxels (the tests
compare them file by file, SimpleITK as the oracle):

* NIfTI through nibabel, choosing sform or qform as ITK 5.4's ``NiftiImageIO`` does and scaling
  by ``scl_slope``/``scl_inter`` into float32 as it does;
* NRRD through pynrrd, with ITK's ``NrrdImageIO`` conversion of RAS/LAS spaces into LPS and
  the component ("range") axis last;
* MetaImage (``.mha``, ``.mhd`` + data file) with a small reader of its text header.

Geometry is returned in ITK's terms (size, spacing, origin and a direction matrix per image
dimension) so that :func:`inference.io.image_file.read_image_file` turns both paths into a
:class:`~inference.volume.Volume` the same way.
"""

from __future__ import annotations

import importlib.util
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.errors import LoadError, TruncatedFileError
from inference.io.metaimage_header import MET_TYPES, metaimage_header

#: Set to 1 to read image files without SimpleITK even where it is installed (tests, checks).
NO_SIMPLEITK_ENV = "RADLENS_NO_SIMPLEITK"


def use_simpleitk() -> bool:
    """Whether image files are read (and volumes resampled) through SimpleITK.

    SimpleITK when it is importable, unless ``RADLENS_NO_SIMPLEITK=1``; otherwise this module.
    """
    if os.environ.get(NO_SIMPLEITK_ENV, "") not in ("", "0"):
        return False
    return importlib.util.find_spec("SimpleITK") is not None


@dataclass(frozen=True)
class ImageInfo:
    """What ITK's ``ReadImageInformation`` reports, in ITK's (i, j, k, t) order."""

    size: tuple[int, ...]
    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: npt.NDArray[np.float64]  # dim × dim, columns are the axes
    components: int
    dtype: np.dtype[Any]
    #: Reads the voxels of the first volume (t == 0) as ``[k, j, i]`` (``[k, j, i, c]`` for
    #: several components; ``[j, i]`` for 2-D images).
    read_first_volume: Callable[[], npt.NDArray[Any]]

    @property
    def dim(self) -> int:
        return len(self.size)


def read_info(path: Path, suffix: str) -> ImageInfo:
    """The header of a ``.nii``/``.nii.gz``/``.nrrd``/``.nhdr``/``.mha``/``.mhd`` file.

    Raises :class:`LoadError` (or :class:`TruncatedFileError`) naming ``path``.
    """
    from inference.io.error_boundary import typed_errors
    from inference.io.image_checks import check_image_file

    readers = {".nii": _nifti_info, ".nii.gz": _nifti_info, ".nrrd": _nrrd_info, ".nhdr": _nrrd_info}
    readers.update({".mha": _metaimage_info, ".mhd": _metaimage_info})
    if suffix not in readers:
        raise LoadError(path, f"no reader for {suffix!r} files")
    with typed_errors(path, "reading the image header"):
        check_image_file(path, suffix)
        info = readers[suffix](path)
    return _guarded(path, info)


def _guarded(path: Path, info: ImageInfo) -> ImageInfo:
    """``info`` whose voxel reader raises only typed errors naming ``path``."""
    from dataclasses import replace

    from inference.io.error_boundary import typed_errors

    read = info.read_first_volume

    def read_first_volume() -> npt.NDArray[Any]:
        with typed_errors(path, "reading the voxels"):
            return read()

    return replace(info, read_first_volume=read_first_volume)


def _unit_columns(m: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Columns scaled to unit length (zero columns kept), as ITK's ``Normalize``."""
    norms = np.linalg.norm(m, axis=0)
    out: npt.NDArray[np.float64] = m / np.where(norms == 0, 1.0, norms)[None, :]
    return out


# --- NIfTI ------------------------------------------------------------------------------------

_NIFTI_UNIT_SCALE = {1: 1000.0, 2: 1.0, 3: 0.001}  # metre, mm, micron -> mm (xyzt_units & 7)
NIFTI_XFORM_UNKNOWN = 0
NIFTI_XFORM_SCANNER_ANAT = 1


def _quatern_to_mat44(hdr: Any) -> npt.NDArray[np.float64]:
    """nifti1_io's ``nifti_quatern_to_mat44`` (double arithmetic, stored as float32)."""
    b, c, d = (float(hdr["quatern_b"]), float(hdr["quatern_c"]), float(hdr["quatern_d"]))
    a = 1.0 - (b * b + c * c + d * d)
    if a < 1.0e-7:
        a = 1.0 / np.sqrt(b * b + c * c + d * d)
        b, c, d, a = b * a, c * a, d * a, 0.0
    else:
        a = float(np.sqrt(a))
    pixdim = [float(x) for x in hdr["pixdim"]]
    xd, yd, zd = (p if p > 0 else 1.0 for p in pixdim[1:4])
    if pixdim[0] < 0:
        zd = -zd
    r = np.array(
        [
            [(a * a + b * b - c * c - d * d) * xd, 2 * (b * c - a * d) * yd, 2 * (b * d + a * c) * zd],
            [2 * (b * c + a * d) * xd, (a * a + c * c - b * b - d * d) * yd, 2 * (c * d - a * b) * zd],
            [2 * (b * d - a * c) * xd, 2 * (c * d + a * b) * yd, (a * a + d * d - c * c - b * b) * zd],
        ]
    )
    out = np.eye(4)
    out[:3, :3] = r
    out[:3, 3] = [float(hdr["qoffset_x"]), float(hdr["qoffset_y"]), float(hdr["qoffset_z"])]
    return out.astype(np.float32).astype(np.float64)


def _is_affine(m: npt.NDArray[np.float64]) -> bool:
    """ITK's ``IsAffine``: bottom row (0, 0, 0, 1) and an invertible matrix."""
    if abs(m[3, 3] - 1.0) + float(np.abs(m[3, :3]).sum()) > np.finfo(np.float32).eps:
        return False
    try:
        cond = np.linalg.cond(m[:3, :3])
    except np.linalg.LinAlgError:
        return False
    return bool(np.isfinite(cond) and 1.0 / cond > np.finfo(np.float64).eps)


def _nifti_form(hdr: Any, pixdim: list[float]) -> npt.NDArray[np.float64] | None:
    """The matrix ITK's ``SetImageIOOrientationFromNIfTI`` uses: sform, qform, or None (neither set).

    Raises ValueError where ITK throws (no orthonormal form).
    """
    qcode, scode = int(hdr["qform_code"]), int(hdr["sform_code"])
    qcode = qcode if qcode > 0 else NIFTI_XFORM_UNKNOWN
    scode = scode if scode > 0 else NIFTI_XFORM_UNKNOWN
    if qcode == NIFTI_XFORM_UNKNOWN and scode == NIFTI_XFORM_UNKNOWN:
        return None
    if qcode != NIFTI_XFORM_UNKNOWN:
        qto = _quatern_to_mat44(hdr)
    else:
        qto = np.diag([pixdim[1], pixdim[2], pixdim[3], 1.0]).astype(np.float32).astype(np.float64)
    sto = np.zeros((4, 4))
    if scode != NIFTI_XFORM_UNKNOWN:
        sto[0] = hdr["srow_x"]
        sto[1] = hdr["srow_y"]
        sto[2] = hdr["srow_z"]
        sto[3, 3] = 1.0
    sto = sto.astype(np.float32).astype(np.float64)

    similar = bool(
        np.all(np.abs(sto[:3, :3] - qto[:3, :3]) <= 1e-5)
        and float(np.abs(sto[:, 3] - qto[:, 3]).sum()) <= 1e-7
        and float(np.abs(sto[3] - qto[3]).sum()) <= 1e-7
    )
    prefer_sform = similar
    if not prefer_sform or scode != NIFTI_XFORM_UNKNOWN:
        decomposable = False
        if _is_affine(sto):
            rot = _unit_columns(sto[:3, :3])
            decomposable = bool(np.all(np.abs(rot @ rot.T - np.eye(3)) <= 1e-4))
        if decomposable:
            if qcode == NIFTI_XFORM_UNKNOWN or scode == NIFTI_XFORM_SCANNER_ANAT:
                prefer_sform = True
            else:
                us, ws, _ = np.linalg.svd(sto[:3, :3])
                uq, wq, _ = np.linalg.svd(qto[:3, :3])
                prefer_sform = bool(
                    np.all(np.abs(us @ np.linalg.inv(uq) - np.eye(3)) <= 1e-4)
                    and np.all(np.abs(ws - wq) <= 1e-4)
                    and np.all(np.abs(sto[:3, 3] - qto[:3, 3]) <= 1e-4)
                    and np.all(np.abs(sto[3] - qto[3]) <= 1e-4)
                )
    if prefer_sform:
        return sto
    if qcode != NIFTI_XFORM_UNKNOWN:
        return qto
    raise ValueError("ITK only supports orthonormal direction cosines: neither sform nor qform is orthonormal")


def _nifti_info(path: Path) -> ImageInfo:
    import nibabel as nib

    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises many kinds (ImageFileError, ValueError, zlib.error...)
        raise LoadError(path, f"cannot read the header of this image: {exc}") from None
    hdr = img.header
    dims = [int(x) for x in hdr["dim"]]
    pixdim = [float(x) for x in hdr["pixdim"]]
    ndim = dims[0]
    components = 1
    if ndim == 5:
        components = max(dims[5], 1)
        ndim = 4
    while ndim > 3 and dims[ndim] <= 1:
        ndim -= 1
    code = int(hdr["datatype"])
    rgb = code in (128, 2304)  # RGB24, RGBA32
    if rgb:
        components = 3 if code == 128 else 4
    unit_scale = _NIFTI_UNIT_SCALE.get(int(hdr["xyzt_units"]) & 7, 1.0)
    size = tuple(dims[1 : ndim + 1])
    spacing = tuple(pixdim[d] * (unit_scale if d <= 3 else 1.0) for d in range(1, ndim + 1))
    try:
        form = _nifti_form(hdr, pixdim)
    except ValueError as exc:
        raise LoadError(path, f"cannot read the header of this image: {exc}") from None
    origin = [0.0] * ndim
    direction = np.eye(ndim)
    if form is not None:
        n = min(ndim, 3)
        lps = np.diag([-1.0, -1.0, 1.0]) @ form[:3, :3]
        direction[:n, :n] = _unit_columns(lps[:n, :n])
        origin[:n] = list((np.array([-1.0, -1.0, 1.0]) * form[:3, 3])[:n])

    # nibabel moves scl_slope/scl_inter from the loaded header to the array proxy (0 or NaN
    # slope -> 1, NaN intercept -> 0, as nifti1_io does before ITK sees them).
    slope = float(getattr(img.dataobj, "slope", 1.0))
    inter = float(getattr(img.dataobj, "inter", 0.0))
    slope = slope if np.isfinite(slope) else 0.0
    inter = inter if np.isfinite(inter) else 0.0
    eps = np.finfo(np.float64).eps
    rescale = abs(slope) > eps and (abs(slope - 1.0) > eps or abs(inter) > eps)
    stored = hdr.get_data_dtype()
    dtype: np.dtype[Any]
    if rgb:
        dtype = np.dtype(np.uint8)
    elif rescale:
        dtype = np.dtype(np.float64 if stored == np.float64 else np.float32)
    else:
        dtype = np.dtype(stored.newbyteorder("="))

    file_shape = tuple(int(s) for s in img.shape)

    def first_volume() -> npt.NDArray[Any]:
        proxy: Any = img.dataobj
        # The first time point (and, for vectors stored as (x, y, z, 1, c), every component).
        slicer: tuple[Any, ...] = tuple(slice(None) if a < 3 else 0 for a in range(len(file_shape)))
        if components > 1 and not rgb:
            slicer = (*slicer[:-1], slice(None))
        try:
            if hasattr(proxy, "_get_unscaled"):
                raw = np.asarray(proxy._get_unscaled(slicer))
            else:
                raw = np.asarray(proxy.get_unscaled())[slicer]
        except Exception as exc:  # nibabel/gzip/zlib errors of a cut or corrupt file
            low = str(exc).replace(str(path), "").lower()
            cut = isinstance(exc, EOFError) or any(m in low for m in ("end of", "ended", "truncat"))
            cls = TruncatedFileError if cut else LoadError
            raise cls(path, f"cannot read the voxels of this image: {exc}") from None
        if rgb:
            raw = np.stack([raw[name] for name in raw.dtype.names or ()], axis=-1)
        spatial = (*file_shape[:3], *(1,) * (3 - min(len(file_shape), 3)))
        raw = raw.reshape(*spatial, *((components,) if components > 1 else ()), order="F")
        arr = raw.transpose(2, 1, 0, 3) if components > 1 else raw.transpose(2, 1, 0)
        if ndim == 2:
            arr = arr[0]
        arr = np.ascontiguousarray(arr)
        if rescale and not rgb:
            return (arr.astype(dtype).astype(np.float64) * slope + inter).astype(dtype)
        return arr.astype(dtype, copy=False)

    return ImageInfo(size, spacing, tuple(origin), direction, components, dtype, first_volume)


# --- NRRD -------------------------------------------------------------------------------------

# ITK's NrrdImageIO converts these spaces to LPS by negating the listed world axes.
_NRRD_SPACE_FLIPS = {
    "right-anterior-superior": (0, 1),
    "ras": (0, 1),
    "left-anterior-superior": (1,),
    "las": (1,),
    "right-anterior-superior-time": (0, 1),
    "left-anterior-superior-time": (1,),
}
_NRRD_RANGE_KINDS = {
    "list", "point", "vector", "covariant-vector", "normal", "stub", "scalar", "complex", "2-vector",
    "3-color", "rgb-color", "hsv-color", "xyz-color", "4-color", "rgba-color", "3-vector", "3-gradient",
    "3-normal", "4-vector", "quaternion", "2d-symmetric-matrix", "2d-masked-symmetric-matrix", "2d-matrix",
    "2d-masked-matrix", "3d-symmetric-matrix", "3d-masked-symmetric-matrix", "3d-matrix", "3d-masked-matrix",
}  # fmt: skip


def _nrrd_error(path: Path, exc: BaseException, stage: str) -> LoadError:
    text = str(exc) or type(exc).__name__
    low = text.lower()
    if isinstance(exc, (EOFError, zlib.error)) or any(
        m in low for m in ("size of the data", "end of", "compressed file ended", "expected", "buffer size must be")
    ):
        return TruncatedFileError(path, f"the file ends early ({stage}): {text[:200]}")
    return LoadError(path, f"cannot {stage} this image: {text[:200]}")


def _nrrd_info(path: Path) -> ImageInfo:
    import nrrd

    try:
        with path.open("rb") as fh:
            header = nrrd.read_header(fh)
    except Exception as exc:  # pynrrd raises NRRDError, ValueError, KeyError, TypeError… on garbage
        raise _nrrd_error(path, exc, "read the header of") from None
    if "sizes" not in header or "type" not in header:
        raise LoadError(path, "cannot read the header of this image: it has no 'sizes' or 'type' field")
    sizes = [int(s) for s in header["sizes"]]
    n_axes = len(sizes)
    kinds = [str(k).lower() for k in header.get("kinds", ["domain"] * n_axes)]
    directions = header.get("space directions")
    range_axes = [a for a in range(n_axes) if kinds[a] in _NRRD_RANGE_KINDS]
    if directions is not None:
        range_axes = sorted(set(range_axes) | {a for a in range(n_axes) if np.all(np.isnan(directions[a]))})
    if len(range_axes) > 1:
        raise LoadError(path, f"cannot read the header of this image: {len(range_axes)} non-spatial axes")
    domain = [a for a in range(n_axes) if a not in range_axes]
    components = sizes[range_axes[0]] if range_axes else 1
    dim = len(domain)
    size = tuple(sizes[a] for a in domain)

    space = str(header.get("space", "")).lower()
    space_dim = int(header.get("space dimension", 3 if space else dim))
    flips = _NRRD_SPACE_FLIPS.get(space, ())
    if directions is not None:
        vecs = np.array([directions[a] for a in domain], dtype=np.float64).T  # space_dim × dim
        spacing_list = list(np.linalg.norm(vecs, axis=0))
        cols = _unit_columns(vecs)
        direction = np.eye(dim)
        n = min(dim, space_dim)
        direction[:n, :n] = cols[:n, :n]
        origin_full = np.asarray(header.get("space origin", np.zeros(space_dim)), dtype=np.float64)
        origin_full = np.where(np.isnan(origin_full), 0.0, origin_full)
        origin = [0.0] * dim
        origin[:n] = list(origin_full[:n])
        for axis in flips:
            if axis < dim:
                direction[axis, :] *= -1
                origin[axis] *= -1
    else:
        spacings = header.get("spacings")
        spacing_list = [float(spacings[a]) if spacings is not None else 1.0 for a in domain]
        spacing_list = [s if np.isfinite(s) else 1.0 for s in spacing_list]
        direction = np.eye(dim)
        origin = [0.0] * dim
    dtype = np.dtype(nrrd.reader._determine_datatype(header)).newbyteorder("=")

    def first_volume() -> npt.NDArray[Any]:
        try:
            with path.open("rb") as fh:
                nrrd.read_header(fh)  # leaves fh at the first data byte of an attached header
                data = nrrd.read_data(header, fh, str(path), index_order="C")
        except Exception as exc:  # pynrrd, numpy, zlib and bz2 errors of a cut or corrupt file
            raise _nrrd_error(path, exc, "read the voxels of") from None
        # C order: axis a of the file is numpy axis n_axes - 1 - a.
        if range_axes:
            data = np.moveaxis(data, n_axes - 1 - range_axes[0], -1)
        if dim == 4:
            data = data[0]
        return np.ascontiguousarray(data).astype(dtype, copy=False)

    return ImageInfo(size, tuple(spacing_list), tuple(origin), direction, components, dtype, first_volume)


# --- MetaImage --------------------------------------------------------------------------------


def _numbers(text: str, n: int, what: str) -> list[float]:
    values = [float(x) for x in text.split()]
    if len(values) < n:
        raise ValueError(f"{what} has {len(values)} values, not {n}")
    return values[:n]


def _metaimage_info(path: Path) -> ImageInfo:
    try:
        fields, data_start = metaimage_header(path)
        if fields.get("objecttype", "Image").lower() != "image":
            raise ValueError(f"ObjectType is {fields['objecttype']}, not Image")
        dim = int(fields["ndims"])
        size = tuple(int(x) for x in _numbers(fields["dimsize"], dim, "DimSize"))
        if "elementspacing" in fields:
            spacing = tuple(_numbers(fields["elementspacing"], dim, "ElementSpacing"))
        elif "elementsize" in fields:
            spacing = tuple(_numbers(fields["elementsize"], dim, "ElementSize"))
        else:
            spacing = (1.0,) * dim
        origin: tuple[float, ...] = (0.0,) * dim
        for key in ("offset", "position", "origin"):
            if key in fields:
                origin = tuple(_numbers(fields[key], dim, key))
        direction = np.eye(dim)
        for key in ("transformmatrix", "rotation", "orientation"):
            if key in fields:
                # ITK: axis i of the image is row i of the matrix as written.
                direction = np.array(_numbers(fields[key], dim * dim, key)).reshape(dim, dim).T
        type_name = fields.get("elementtype", "").upper().removesuffix("_ARRAY")
        if type_name not in MET_TYPES:
            raise ValueError(f"unknown ElementType {fields.get('elementtype', '')!r}")
        components = int(fields.get("elementnumberofchannels", "1"))
        msb = fields.get("binarydatabyteordermsb", fields.get("elementbyteordermsb", "False")).lower() == "true"
        dtype = np.dtype(MET_TYPES[type_name]).newbyteorder(">" if msb else "<")
        compressed = fields.get("compresseddata", "False").lower() == "true"
        binary = fields.get("binarydata", "True").lower() == "true"
        data_file = fields["elementdatafile"]
        header_size = int(fields.get("headersize", "0"))
    except (ValueError, KeyError, TypeError, IndexError, OverflowError) as exc:
        raise LoadError(path, f"cannot read the header of this image: {exc}") from None
    if not binary:
        raise LoadError(path, "cannot read the header of this image: ASCII MetaImage data is not supported")
    if data_file.upper() in ("LIST",) or len(data_file.split()) > 1:
        raise LoadError(path, f"cannot read the header of this image: ElementDataFile {data_file!r} is not supported")
    out_dtype = dtype.newbyteorder("=")

    def first_volume() -> npt.NDArray[Any]:
        plane = int(np.prod(size[:3], dtype=np.int64)) * components
        count = plane * (size[3] if dim > 3 else 1) if compressed else plane
        want = count * dtype.itemsize
        local = data_file.upper() == "LOCAL"
        source = path if local else path.parent / data_file
        try:
            with source.open("rb") as fh:
                if local:
                    fh.seek(data_start)
                elif header_size == -1 and not compressed:
                    fh.seek(-want, os.SEEK_END)
                else:
                    fh.seek(max(header_size, 0))
                raw = zlib.decompressobj(47).decompress(fh.read(), want) if compressed else fh.read(want)
        except (OSError, zlib.error) as exc:
            raise LoadError(path, f"cannot read the voxels of this image: {exc}") from None
        if len(raw) < plane * dtype.itemsize:
            raise LoadError(
                path, f"cannot read the voxels of this image: data not read completely ({len(raw)} of {want} bytes)"
            )
        arr = np.frombuffer(raw, dtype=dtype, count=plane)
        shape = tuple(reversed(size[:3])) + ((components,) if components > 1 else ())
        return np.ascontiguousarray(arr.reshape(shape)).astype(out_dtype, copy=False)

    return ImageInfo(size, spacing, origin, direction, components, out_dtype, first_volume)
