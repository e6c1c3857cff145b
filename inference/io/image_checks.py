"""Checks of a NIfTI, NRRD or MetaImage header before any reader (SimpleITK, nibabel, pynrrd) sees it.

ITK's readers and pynrrd trust the header: a NaN in an affine makes ITK spin for minutes, an NRRD
``line skip`` of 10⁹ or a detached data file that is a FIFO blocks the reader, and a size the file
cannot hold is allocated before the read fails. :func:`check_image_file` refuses such headers up
front with a typed error naming the field and its value; the readers then only see headers whose
sizes the file justifies, whose geometry is finite and whose data files are regular files.
"""

from __future__ import annotations

import math
import os
import stat
import struct
import zlib
from pathlib import Path
from typing import Any

from inference.errors import (
    AbsurdDimensionsError,
    EmptyFileError,
    InvalidValueError,
    LoadError,
    TruncatedFileError,
    UnreadableFileError,
)

#: More voxels than this (times components) is no real CT/MR image.
MAX_VOXELS = 2**31
#: Decoded bytes per byte of a deflate stream can never exceed ~1032; bzip2 goes further, so its
#: bound is the voxel limit alone.
MAX_DEFLATE_RATIO = 1032
#: Geometry values (mm, direction cosines) beyond this place nothing on a patient.
MAX_GEOMETRY = 1e9


def check_regular_file(path: Path) -> os.stat_result:
    """The file's ``stat``; a typed error for a missing, unreadable, empty or non-regular file."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise UnreadableFileError(path, "no such file") from None
    except OSError as exc:
        raise UnreadableFileError(path, exc.strerror or str(exc)) from None
    if stat.S_ISDIR(st.st_mode):
        raise UnreadableFileError(path, "is a folder, not an image file")
    if not stat.S_ISREG(st.st_mode):
        # A FIFO or device would block or never end; only plain files are read.
        raise UnreadableFileError(path, "is not a regular file")
    if not os.access(path, os.R_OK):
        raise UnreadableFileError(path, "permission denied")
    if st.st_size == 0:
        raise EmptyFileError(path, "the file is empty (0 bytes)")
    return st


def _data_file(header_path: Path, name: str, field: str) -> tuple[Path, os.stat_result]:
    """A detached data file named in a header: it must be a regular file (a FIFO or device would block)."""
    target = Path(name) if os.path.isabs(name) else header_path.parent / name
    try:
        st = os.stat(target)
    except ValueError:  # a NUL byte in the name
        raise InvalidValueError(header_path, f"{field} {name[:60]!r} is not a file name") from None
    except OSError as exc:
        raise UnreadableFileError(header_path, f"{field} {name!r} cannot be opened ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "a FIFO, socket or device"
        raise UnreadableFileError(header_path, f"{field} {name!r} is {kind}, not a regular file")
    return target, st


def _finite(values: Any, field: str, path: Path, skip_all_nan: bool = False) -> None:
    for v in values:
        vs = [float(x) for x in (v if isinstance(v, list | tuple) or hasattr(v, "__len__") else [v])]
        if skip_all_nan and vs and all(math.isnan(x) for x in vs):
            continue  # NRRD's "none" for a non-spatial axis
        for x in vs:
            if not math.isfinite(x) or abs(x) > MAX_GEOMETRY:
                raise InvalidValueError(path, f"{field} holds {x!r}: not a finite coordinate")


def _check_count(path: Path, field: str, sizes: list[int], components: int) -> int:
    for n, s in enumerate(sizes):
        if s < 1:
            raise AbsurdDimensionsError(path, f"{field}[{n}] is {s}; refusing to allocate")
    voxels = math.prod(sizes) * max(components, 1)
    if voxels > MAX_VOXELS:
        raise AbsurdDimensionsError(path, f"{field} {sizes} claims {voxels} voxels; refusing to allocate")
    return voxels


def _fits(path: Path, need: int, have: int, compressed: str | None, field: str) -> None:
    """``need`` decoded bytes from ``have`` bytes in the file: refuse what the file cannot hold."""
    if compressed is None:
        if need > have:
            raise TruncatedFileError(path, f"{field} needs {need} bytes of voxels; the file holds {have}")
    elif compressed == "gzip" and need > MAX_DEFLATE_RATIO * have + (1 << 16):
        raise AbsurdDimensionsError(
            path, f"{field} claims {need} bytes from {have} compressed ones; refusing to allocate"
        )


def check_image_file(path: str | os.PathLike[str], suffix: str | None) -> None:
    """Refuse a header no reader should be handed (see the module); returns when the file may be read.

    ``suffix`` is the file's image suffix (``.nii``, ``.nii.gz``, ``.nrrd``, ``.nhdr``, ``.mha``, ``.mhd``).
    """
    p = Path(path)
    st = check_regular_file(p)
    if suffix in (".nii", ".nii.gz"):
        _check_nifti(p, st, suffix == ".nii.gz")
    elif suffix in (".nrrd", ".nhdr"):
        _check_nrrd(p, st)
    elif suffix in (".mha", ".mhd"):
        _check_metaimage(p, st)


# --- NIfTI ----------------------------------------------------------------------------------------

_NIFTI_BITPIX = {8, 16, 24, 32, 64, 128, 256}
#: Bytes per voxel of each NIfTI datatype code (readers go by the datatype, not bitpix).
_NIFTI_DATATYPE_BYTES = {
    2: 1, 4: 2, 8: 4, 16: 4, 32: 8, 64: 8, 128: 3, 256: 1, 512: 2, 768: 4, 1024: 8, 1280: 8, 1536: 16,
    1792: 16, 2048: 32, 2304: 4,
}  # fmt: skip


def _nifti_head(p: Path, compressed: bool) -> bytes:
    with p.open("rb") as fh:
        raw = fh.read(1 << 16)
    if not compressed:
        return raw[:540]
    try:
        return zlib.decompressobj(wbits=31).decompress(raw, 540)
    except zlib.error:
        return b""  # not gzip: the reader says so


def _check_nifti(p: Path, st: os.stat_result, compressed: bool) -> None:
    head = _nifti_head(p, compressed)
    if len(head) < 348:
        return  # cut inside the header: the readers' own checks name it
    for e in ("<", ">"):
        (sizeof_hdr,) = struct.unpack(e + "i", head[:4])
        if sizeof_hdr in (348, 540):
            break
    else:
        raise InvalidValueError(p, "sizeof_hdr is neither 348 (NIfTI-1) nor 540 (NIfTI-2): not a NIfTI header")
    if sizeof_hdr == 540 and len(head) < 540:
        return
    if sizeof_hdr == 348:
        dims = list(struct.unpack(e + "8h", head[40:56]))
        datatype, bitpix = struct.unpack(e + "2h", head[70:74])
        pixdim = struct.unpack(e + "8f", head[76:108])
        (vox_offset,) = struct.unpack(e + "f", head[108:112])
        qcode, scode = struct.unpack(e + "2h", head[252:256])
        quatern = struct.unpack(e + "6f", head[256:280])
        srows = struct.unpack(e + "12f", head[280:328])
    else:
        datatype, bitpix = struct.unpack(e + "2h", head[12:16])
        dims = list(struct.unpack(e + "8q", head[16:80]))
        pixdim = struct.unpack(e + "8d", head[104:168])
        (vox_offset,) = struct.unpack(e + "q", head[168:176])
        qcode, scode = struct.unpack(e + "2i", head[344:352])
        quatern = struct.unpack(e + "6d", head[352:400])
        srows = struct.unpack(e + "12d", head[400:496])
    ndim = dims[0]
    if not 1 <= ndim <= 7:
        raise InvalidValueError(p, f"dim[0] is {ndim}: a NIfTI image has 1 to 7 dimensions")
    sizes = [int(d) for d in dims[1 : ndim + 1]]
    for n, s in enumerate(sizes):
        if s < 1:
            raise AbsurdDimensionsError(p, f"dim[{n + 1}] is {s}; refusing to allocate")
    if bitpix not in _NIFTI_BITPIX:
        raise InvalidValueError(p, f"bitpix is {bitpix}, not a NIfTI voxel size")
    if datatype not in _NIFTI_DATATYPE_BYTES:
        raise InvalidValueError(p, f"datatype is {datatype}, not a NIfTI data type")
    if not math.isfinite(vox_offset) or vox_offset < 0:
        raise InvalidValueError(p, f"vox_offset is {vox_offset}: not where voxels can start")
    voxels = math.prod(sizes)
    need = voxels * max(bitpix // 8, _NIFTI_DATATYPE_BYTES[datatype])
    if voxels > MAX_VOXELS * 8:  # all volumes of a 4-D series (the first is read, the rest checked)
        raise AbsurdDimensionsError(p, f"dim {sizes} claims {voxels} voxels; refusing to allocate")
    if compressed:
        _fits(p, need, st.st_size, "gzip", f"dim {sizes}")
    elif int(vox_offset) + need > st.st_size:
        raise TruncatedFileError(
            p, f"the header announces {int(vox_offset) + need} bytes but the file holds {st.st_size}"
        )
    if qcode > 0:
        _finite(quatern, "the qform (quatern_b/c/d, qoffset_x/y/z)", p)
        _finite(pixdim[:4], "pixdim (used by the qform)", p)
    if scode > 0:
        _finite(srows, "the sform (srow_x/y/z)", p)


# --- NRRD -----------------------------------------------------------------------------------------

_NRRD_TEXT = ("ascii", "text", "txt")


def _bad_nrrd_field(p: Path) -> str | None:
    """``field 'sizes' is '4 x 2' (reason)`` for the first header line pynrrd cannot parse alone, or None."""
    import nrrd

    with p.open("rb") as fh:
        head = fh.read(1 << 16).split(b"\n\n", 1)[0].decode("latin-1", "replace").splitlines()
    for line in head[1:]:
        if not line.strip() or line.startswith("#") or ":=" in line:
            continue
        try:
            nrrd.read_header([head[0], line])
        except Exception as exc:
            key, _, value = line.partition(":")
            return f"field {key.strip()!r} is {value.strip()[:60]!r} ({str(exc)[:100]})"
    return None


def _check_nrrd(p: Path, st: os.stat_result) -> None:
    import nrrd
    import numpy as np

    try:
        with p.open("rb") as fh:
            header = nrrd.read_header(fh)
            data_start = fh.tell()
    except Exception as exc:  # pynrrd raises NRRDError, ValueError, KeyError, TypeError… on garbage
        text = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise InvalidValueError(p, f"the NRRD header cannot be read: {_bad_nrrd_field(p) or text}") from None
    if "sizes" not in header or "type" not in header:
        raise InvalidValueError(p, "the NRRD header has no 'sizes' or 'type' field")
    try:
        sizes = [int(s) for s in np.atleast_1d(header["sizes"])]
        dtype = np.dtype(nrrd.reader._determine_datatype(header))
    except Exception as exc:
        raise InvalidValueError(p, f"the NRRD 'sizes' or 'type' field cannot be used ({exc})") from None
    dimension = header.get("dimension")
    if dimension is not None and int(dimension) != len(sizes):
        raise InvalidValueError(p, f"dimension is {dimension} but sizes lists {len(sizes)} axes")
    voxels = _check_count(p, "sizes", sizes, 1)
    encoding = str(header.get("encoding", "raw")).lower()
    data_name = header.get("data file") or header.get("datafile")
    if data_name is not None:
        name = str(data_name)
        if name.upper().startswith("LIST") or len(name.split()) > 1:
            raise LoadError(p, f"data file {name!r}: NRRD data split over several files is not supported")
        _, data_st = _data_file(p, name, "data file")
        available = data_st.st_size
    else:
        available = st.st_size - data_start
    line_skip = int(header.get("line skip", header.get("lineskip", 0)) or 0)
    byte_skip = int(header.get("byte skip", header.get("byteskip", 0)) or 0)
    if line_skip < 0 or line_skip > available:
        raise InvalidValueError(p, f"line skip is {line_skip}: the data holds at most {available} lines")
    if byte_skip < -1 or byte_skip > available:
        raise InvalidValueError(p, f"byte skip is {byte_skip}: the data holds {available} bytes")
    if byte_skip == -1 and encoding != "raw":
        raise InvalidValueError(p, f"byte skip -1 is only allowed with raw encoding, not {encoding}")
    need = voxels * dtype.itemsize
    if encoding == "raw":
        _fits(p, need, available - max(byte_skip, 0), None, f"sizes {sizes} of {dtype}")
    elif encoding in ("gzip", "gz"):
        _fits(p, need, available, "gzip", f"sizes {sizes} of {dtype}")
    elif encoding in _NRRD_TEXT:
        _fits(p, voxels, available, None, f"sizes {sizes} as text")
    elif encoding == "hex":
        _fits(p, 2 * need, available, None, f"sizes {sizes} as hex")
    directions = header.get("space directions")
    if directions is not None:
        _finite(list(np.asarray(directions, dtype=np.float64)), "space directions", p, skip_all_nan=True)
    if header.get("space origin") is not None:
        _finite(list(np.asarray(header["space origin"], dtype=np.float64)), "space origin", p)


# --- MetaImage ------------------------------------------------------------------------------------


def _check_metaimage(p: Path, st: os.stat_result) -> None:
    import numpy as np

    from inference.io.metaimage_header import MET_TYPES, metaimage_header

    try:
        fields, data_start = metaimage_header(p)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidValueError(p, f"the MetaImage header cannot be read: {exc}") from None

    def ints(key: str) -> list[int]:
        try:
            return [int(x) for x in fields[key].split()]
        except (KeyError, ValueError):
            raise InvalidValueError(p, f"{key} is {fields.get(key)!r}, not whole numbers") from None

    def floats(key: str) -> list[float]:
        try:
            return [float(x) for x in fields[key].split()]
        except ValueError:
            raise InvalidValueError(p, f"{key} is {fields[key]!r}, not numbers") from None

    (ndims,) = ints("ndims")[:1] or [0]
    if not 1 <= ndims <= 4:
        raise InvalidValueError(p, f"NDims is {ndims}: RadLens reads 2-D to 4-D images")
    sizes = ints("dimsize")
    if len(sizes) < ndims:
        raise InvalidValueError(p, f"DimSize lists {len(sizes)} sizes for NDims {ndims}")
    channels = ints("elementnumberofchannels")[0] if "elementnumberofchannels" in fields else 1
    if not 1 <= channels <= 64:
        raise AbsurdDimensionsError(p, f"ElementNumberOfChannels is {channels}; refusing to allocate")
    voxels = _check_count(p, "DimSize", sizes[:ndims], channels)
    type_name = fields.get("elementtype", "").upper().removesuffix("_ARRAY")
    if type_name not in MET_TYPES:
        raise InvalidValueError(p, f"ElementType {fields.get('elementtype', '')!r} is not a MetaImage type")
    for key in ("elementspacing", "elementsize", "offset", "position", "origin", "transformmatrix", "rotation"):
        if key in fields:
            _finite(floats(key), key, p)
    need = voxels * np.dtype(MET_TYPES[type_name]).itemsize
    compressed = fields.get("compresseddata", "False").lower() == "true"
    name = fields.get("elementdatafile", "")
    header_size = ints("headersize")[0] if "headersize" in fields else 0
    if name.upper() == "LOCAL":
        available = st.st_size - data_start
    elif name.upper().startswith("LIST") or len(name.split()) > 1 or "%" in name:
        # Several data files (each of which could be a FIFO): not read, as the packaged reader does not.
        raise LoadError(p, f"ElementDataFile {name[:60]!r}: MetaImage data split over several files is not supported")
    else:
        _, data_st = _data_file(p, name, "ElementDataFile")
        available = data_st.st_size
    if header_size < -1 or header_size > available:
        raise InvalidValueError(p, f"HeaderSize is {header_size}: the data file holds {available} bytes")
    _fits(p, need, available - max(header_size, 0), "gzip" if compressed else None, f"DimSize {sizes[:ndims]}")
