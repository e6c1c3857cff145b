"""Writing a :class:`Volume` as NIfTI-1, atomically.

NIfTI stores RAS millimetres and voxels with ``i`` fastest; RadLens holds LPS and
``voxels[k, j, i]``. So the affine's first two rows change sign and the array is handed to
nibabel transposed to ``(i, j, k)`` (a view: no copy). The stored type is kept.

The 348-byte NIfTI-1 header is written here with numpy (the same fields nibabel writes: the tests
compare them with nibabel's) and the voxels follow in one write — ``voxels[k, j, i]`` in C order
already has ``i`` fastest, as NIfTI wants. nibabel takes ~200 ms to import, more than a whole
``radlens convert`` of a CT series should take, and compresses with zlib; ``.nii.gz`` here goes
through ISA-L's gzip (python-isal) when it is installed, about ten times faster at level 1.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import queue
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.errors import RadLensError
from inference.io.cpus import spare_cpu
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


def _nifti_array(voxels: npt.NDArray[Any], four_d: bool = False) -> npt.NDArray[Any]:
    if voxels.dtype == np.bool_:
        voxels = voxels.astype(np.uint8)
    elif voxels.dtype == np.float16:
        voxels = voxels.astype(np.float32)
    if voxels.ndim == 3:
        return voxels.transpose(2, 1, 0)
    if four_d:  # [t, k, j, i] -> (i, j, k, t)
        return voxels.transpose(3, 2, 1, 0)
    # [k, j, i, c] -> (i, j, k, t=1, c)
    return voxels.transpose(2, 1, 0, 3)[:, :, :, np.newaxis, :]


#: NIfTI-1 header layout (348 bytes, little endian).
_HEADER_DTYPE = np.dtype(
    [
        ("sizeof_hdr", "<i4"), ("data_type", "S10"), ("db_name", "S18"), ("extents", "<i4"),
        ("session_error", "<i2"), ("regular", "S1"), ("dim_info", "u1"), ("dim", "<i2", (8,)),
        ("intent_p1", "<f4"), ("intent_p2", "<f4"), ("intent_p3", "<f4"), ("intent_code", "<i2"),
        ("datatype", "<i2"), ("bitpix", "<i2"), ("slice_start", "<i2"), ("pixdim", "<f4", (8,)),
        ("vox_offset", "<f4"), ("scl_slope", "<f4"), ("scl_inter", "<f4"), ("slice_end", "<i2"),
        ("slice_code", "u1"), ("xyzt_units", "u1"), ("cal_max", "<f4"), ("cal_min", "<f4"),
        ("slice_duration", "<f4"), ("toffset", "<f4"), ("glmax", "<i4"), ("glmin", "<i4"),
        ("descrip", "S80"), ("aux_file", "S24"), ("qform_code", "<i2"), ("sform_code", "<i2"),
        ("quatern_b", "<f4"), ("quatern_c", "<f4"), ("quatern_d", "<f4"),
        ("qoffset_x", "<f4"), ("qoffset_y", "<f4"), ("qoffset_z", "<f4"),
        ("srow_x", "<f4", (4,)), ("srow_y", "<f4", (4,)), ("srow_z", "<f4", (4,)),
        ("intent_name", "S16"), ("magic", "S4"),
    ]
)  # fmt: skip
_NIFTI_TYPES = {
    "u1": 2, "i2": 4, "i4": 8, "f4": 16, "f8": 64, "i1": 256, "u2": 512, "u4": 768, "i8": 1024, "u8": 1280,
}  # fmt: skip


def _quaternion(affine: npt.NDArray[np.float64]) -> tuple[tuple[float, float, float], float, tuple[float, ...]]:
    """``(b, c, d)``, qfac and zooms of an orthogonal affine (``nifti_mat44_to_quatern``)."""
    m = affine[:3, :3]
    zooms = np.sqrt((m * m).sum(axis=0))
    r = m / np.where(zooms == 0, 1.0, zooms)
    qfac = 1.0
    if np.linalg.det(r) < 0:
        qfac = -1.0
        r = r.copy()
        r[:, 2] = -r[:, 2]
    # Nearest proper rotation (polar decomposition), as nibabel does before taking the quaternion.
    u, _, vt = np.linalg.svd(r)
    r = u @ vt
    trace = r[0, 0] + r[1, 1] + r[2, 2] + 1.0
    if trace > 0.5:
        a = 0.5 * np.sqrt(trace)
        b = 0.25 * (r[2, 1] - r[1, 2]) / a
        c = 0.25 * (r[0, 2] - r[2, 0]) / a
        d = 0.25 * (r[1, 0] - r[0, 1]) / a
    else:
        xd = 1.0 + r[0, 0] - (r[1, 1] + r[2, 2])
        yd = 1.0 + r[1, 1] - (r[0, 0] + r[2, 2])
        zd = 1.0 + r[2, 2] - (r[0, 0] + r[1, 1])
        if xd > 1.0:
            b = 0.5 * np.sqrt(xd)
            c = 0.25 * (r[0, 1] + r[1, 0]) / b
            d = 0.25 * (r[0, 2] + r[2, 0]) / b
            a = 0.25 * (r[2, 1] - r[1, 2]) / b
        elif yd > 1.0:
            c = 0.5 * np.sqrt(yd)
            b = 0.25 * (r[0, 1] + r[1, 0]) / c
            d = 0.25 * (r[1, 2] + r[2, 1]) / c
            a = 0.25 * (r[0, 2] - r[2, 0]) / c
        else:
            d = 0.5 * np.sqrt(zd)
            b = 0.25 * (r[0, 2] + r[2, 0]) / d
            c = 0.25 * (r[1, 2] + r[2, 1]) / d
            a = 0.25 * (r[1, 0] - r[0, 1]) / d
        if a < 0:
            b, c, d = -b, -c, -d
    return (float(b), float(c), float(d)), qfac, tuple(float(z) for z in zooms)


def _nifti_header(volume: Volume, data: npt.NDArray[Any], scale: tuple[float, float] | None = None) -> bytes:
    """The 348-byte NIfTI-1 header and the 4-byte empty extension flag for ``data`` (as nibabel writes them)."""
    affine = ras_affine(volume)
    hdr = np.zeros((), dtype=_HEADER_DTYPE)
    hdr["sizeof_hdr"] = 348
    dim = np.ones(8, dtype=np.int16)
    dim[0] = data.ndim
    dim[1 : 1 + data.ndim] = data.shape
    hdr["dim"] = dim
    dt = data.dtype.newbyteorder("<")
    hdr["datatype"] = _NIFTI_TYPES[dt.str[1:]]
    hdr["bitpix"] = dt.itemsize * 8
    (b, c, d), qfac, zooms = _quaternion(affine)
    pixdim = np.ones(8, dtype=np.float32)
    pixdim[0] = qfac
    pixdim[1:4] = zooms
    hdr["pixdim"] = pixdim
    hdr["vox_offset"] = 352.0
    # Stored values are the values, unless the caller stores them scaled (value = slope * stored + inter).
    hdr["scl_slope"], hdr["scl_inter"] = scale if scale is not None else (np.nan, np.nan)
    hdr["xyzt_units"] = 2  # mm
    if volume.is_4d:
        step = _time_step(volume)
        if step is not None:
            pixdim[4] = step
            hdr["pixdim"] = pixdim
            hdr["xyzt_units"] = 2 | 8  # mm, seconds
    hdr["quatern_b"], hdr["quatern_c"], hdr["quatern_d"] = b, c, d
    hdr["qoffset_x"], hdr["qoffset_y"], hdr["qoffset_z"] = affine[:3, 3]
    # A sheared grid (gantry tilt) has no quaternion form: only the sform holds it (qform code 0).
    hdr["qform_code"] = 1 if is_orthonormal(volume.direction) else 0
    hdr["sform_code"] = 1
    hdr["srow_x"], hdr["srow_y"], hdr["srow_z"] = affine[0], affine[1], affine[2]
    if volume.is_colour:
        hdr["intent_code"] = _INTENT_VECTOR
        hdr["intent_name"] = b"colour"
    hdr["magic"] = b"n+1"
    return hdr.tobytes() + b"\0\0\0\0"


def _write_direct(volume: Volume, path: str, compressed: bool, scale: tuple[float, float] | None = None) -> None:
    """Header, then the voxels in NIfTI order (``i`` fastest; colour components slowest), one write."""
    data = _nifti_array(volume.voxels, volume.is_4d)
    header = _nifti_header(volume, data, scale)
    vox = volume.voxels
    if vox.dtype == np.bool_:
        vox = vox.astype(np.uint8)
    elif vox.dtype == np.float16:
        vox = vox.astype(np.float32)
    if volume.is_colour:
        vox = vox.transpose(3, 0, 1, 2)  # (c, k, j, i): NIfTI's 5th dimension runs slowest
    vox = np.ascontiguousarray(vox, dtype=vox.dtype.newbyteorder("<"))
    body = vox.reshape(-1).view(np.uint8).data
    with open(path, "wb") as fh:
        if compressed:
            with gzip_writer(fh) as gz:
                gz.write(header)
                gz.write(body)
        else:
            fh.write(header)
            fh.write(body)


def gzip_writer(fileobj: Any) -> gzip.GzipFile:
    """A gzip stream into ``fileobj`` at level 1 (nibabel's), with no file name in its header:
    ISA-L's (python-isal) when installed, else the standard library's."""
    try:
        from isal import igzip
    except ImportError:
        return gzip.GzipFile(filename="", mode="wb", fileobj=fileobj, compresslevel=1)
    return igzip.GzipFile(filename="", mode="wb", fileobj=fileobj, compresslevel=1)  # type: ignore[no-untyped-call]


def require_regular(volume: Volume, dest: str | Path) -> None:
    """Refuse a volume whose slices are off its grid: a NIfTI affine would misplace some of them."""
    if volume.slice_positions is not None:
        from inference.errors import IrregularSlicesError

        raise IrregularSlicesError(
            dest,
            "the slices are not on a regular grid (a gap or uneven spacing): one affine would misplace "
            "some of them; resample to a regular grid first (radlens convert --resample)",
        )


def _time_step(volume: Volume) -> float | None:
    """Seconds between volumes of a time series (the median step), for NIfTI's pixdim[4]."""
    from inference.volume import FourthAxis

    if not volume.frames or volume.frames[0].axis is not FourthAxis.TIME or len(volume.frames) < 2:
        return None
    steps = np.diff([f.value for f in volume.frames])
    step = float(np.median(steps))
    return step if np.isfinite(step) and step > 0 else None


def _fsync(path: str) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def write_nifti(volume: Volume, path: str | os.PathLike[str], *, scale: tuple[float, float] | None = None) -> Path:
    """Write ``volume`` to ``path`` (``.nii`` or ``.nii.gz``, chosen by the name) and return the path.

    The affine is stored as RAS in both sform and qform (code 1, scanner-anatomical); a sheared
    direction (gantry tilt) is stored in the sform only, qform code 0. Units are millimetres and
    the voxel type is kept (int16 stays int16). 4-D colour volumes are written with their
    components along NIfTI's fifth dimension (intent "vector"). ``scale = (slope, inter)`` stores
    the voxels as given with ``scl_slope``/``scl_inter`` set, so readers see ``slope * stored + inter``
    (a [0, 1] map kept as uint8 with slope 1/255 is a quarter of the bytes of float32).

    The file appears atomically: it is written to a hidden temporary file in the destination
    folder, then renamed over ``path``; if anything fails the temporary file is removed and an
    existing ``path`` is left untouched. Raises :class:`NiftiWriteError` when the name has the
    wrong suffix, the folder does not exist, or the write fails.
    """
    dest, suffix, mode = _destination(path)
    require_regular(volume, dest)
    tmp = _temporary(dest, suffix)
    try:
        _write_direct(volume, tmp, suffix == ".nii.gz", scale)
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


def _destination(path: str | os.PathLike[str]) -> tuple[Path, str, int]:
    """The checked destination, its NIfTI suffix, and the mode the new file gets (an existing file's)."""
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
    return dest, suffix, mode


def _temporary(dest: Path, suffix: str) -> str:
    """A new hidden file beside ``dest``, to be renamed over it once complete."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.tmp-", suffix=suffix, dir=dest.parent)
    except OSError as exc:
        raise NiftiWriteError(dest, f"cannot create a file in {dest.parent}: {exc.strerror or exc}") from None
    os.close(fd)
    return tmp


class NiftiStream:
    """A NIfTI-1 file written slice by slice, as :func:`write_nifti` would write the whole volume.

    ``volume`` gives the grid, geometry and voxel type (its voxels may be a placeholder: see
    :func:`inference.io.dicom_loader.stream_stack`, whose sink this is); :meth:`write` takes the
    slices ``voxels[k]`` in order. The bytes are those :func:`write_nifti` writes for the whole
    volume (without nibabel), and the file appears the same way, atomically, on :meth:`close`;
    :meth:`abort` removes it.

    Slices are gathered into chunks of a few MiB that a writer thread writes (and compresses)
    while the next ones are read, when a CPU is free for it; the disk is asked to start
    writing each chunk at once, so the final flush to disk finds little left to do.
    """

    #: Bytes per chunk handed to the writer, and between two requests to start writing to disk.
    CHUNK = 4 << 20
    #: Chunks in memory at most: one being filled, the others queued or being written.
    BUFFERS = 3

    def __init__(self, volume: Volume, path: str | os.PathLike[str], *, threaded: bool | None = None) -> None:
        if volume.voxels.ndim != 3:
            raise ValueError("NiftiStream writes greyscale volumes; write colour ones with write_nifti")
        self.dest, suffix, self._mode = _destination(path)
        require_regular(volume, self.dest)
        dtype: np.dtype[Any] = volume.voxels.dtype
        if dtype == np.bool_:
            dtype = np.dtype(np.uint8)
        elif dtype == np.float16:
            dtype = np.dtype(np.float32)
        k, j, i = volume.shape
        data = np.broadcast_to(np.zeros((), dtype=dtype), (i, j, k))  # what _nifti_array gives, without memory
        self._dtype = dtype.newbyteorder("<")
        self._plane = (j, i)
        self._slices, self._written = k, 0
        self._per_chunk = max(1, self.CHUNK // max(1, j * i * dtype.itemsize))
        self._chunk: npt.NDArray[Any] | None = None
        self._in_chunk = 0
        self._lent: npt.NDArray[Any] | None = None  # the view plane() handed out for the next slice
        self._free: list[npt.NDArray[Any]] = []
        self._made = 0
        self._free_lock = threading.Condition()
        self._error: BaseException | None = None
        self._queue: queue.Queue[tuple[npt.NDArray[Any], int] | None] | None = None
        self._thread: threading.Thread | None = None
        header = _nifti_header(volume, data)
        self._tmp = _temporary(self.dest, suffix)
        self._fh: Any = None
        self._gz: gzip.GzipFile | None = None
        self._pending = 0  # bytes written since the last request to start writing to disk
        self._flushed = 0
        try:
            self._fh = open(self._tmp, "wb", buffering=0)  # noqa: SIM115 (closed in close() or abort())
            if suffix == ".nii.gz":
                self._gz = gzip_writer(self._fh)
            self._put(header)
        except BaseException as exc:
            self.abort()
            if isinstance(exc, OSError):
                raise NiftiWriteError(self.dest, f"write failed: {exc.strerror or exc}") from exc
            raise
        if threaded if threaded is not None else spare_cpu():
            self._queue = queue.Queue()
            self._thread = threading.Thread(target=self._writer, name="radlens-nifti-writer", daemon=True)
            self._thread.start()

    def _put(self, data: bytes | memoryview) -> None:
        if self._gz is not None:
            self._gz.write(data)
        else:
            view = memoryview(data)
            while view:
                view = view[self._fh.write(view) :]
        self._pending += len(data)
        if self._pending >= self.CHUNK and hasattr(os, "posix_fadvise"):
            # Ask the kernel to start writing what is there (DONTNEED writes dirty pages back, then
            # drops the clean ones); the fsync in close() then waits for the tail only.
            end = self._fh.tell()
            os.posix_fadvise(self._fh.fileno(), self._flushed, end - self._flushed, os.POSIX_FADV_DONTNEED)
            self._flushed, self._pending = end, 0

    def _put_chunk(self, chunk: npt.NDArray[Any], count: int) -> None:
        self._put(chunk[:count].reshape(-1).view(np.uint8).data)

    def _writer(self) -> None:
        """The writer thread: writes queued chunks in order, then hands their buffers back."""
        assert self._queue is not None
        while True:
            item = self._queue.get()
            if item is None:
                return
            chunk, count = item
            if self._error is None:
                try:
                    self._put_chunk(chunk, count)
                except BaseException as exc:  # reported by the next write() or close()
                    self._error = exc
            with self._free_lock:
                self._free.append(chunk)
                self._free_lock.notify()

    def _raise_error(self) -> None:
        exc = self._error
        if exc is not None:
            self.abort()
            if isinstance(exc, OSError):
                raise NiftiWriteError(self.dest, f"write failed: {exc.strerror or exc}") from exc
            raise exc

    def _next_chunk(self) -> npt.NDArray[Any]:
        """A free chunk buffer: a new one while fewer than :attr:`BUFFERS` exist, else one the writer is done with."""
        with self._free_lock:
            while not self._free:
                if self._made < (self.BUFFERS if self._queue is not None else 1):
                    self._made += 1
                    return np.empty((self._per_chunk, *self._plane), dtype=self._dtype)
                self._free_lock.wait()
            return self._free.pop()

    def _send(self) -> None:
        chunk, count = self._chunk, self._in_chunk
        self._chunk, self._in_chunk = None, 0
        if chunk is None or not count:
            return
        if self._queue is not None:
            self._queue.put((chunk, count))
            return
        try:
            self._put_chunk(chunk, count)
        except OSError as exc:
            self.abort()
            raise NiftiWriteError(self.dest, f"write failed: {exc.strerror or exc}") from exc
        self._free.append(chunk)

    def plane(self) -> npt.NDArray[Any] | None:
        """Where the next slice may be put before :meth:`write` (saving a copy), or ``None``."""
        if self._written >= self._slices or not self._dtype.isnative:
            return None
        if self._chunk is None:
            self._chunk = self._next_chunk()
        self._lent = self._chunk[self._in_chunk]
        return self._lent

    def write(self, plane: npt.NDArray[Any]) -> None:
        """Append the next slice (``voxels[k]``, shape ``(j, i)``) in the file's voxel type."""
        self._raise_error()
        if self._written >= self._slices:
            raise ValueError(f"more than the {self._slices} slices of the volume")
        if self._chunk is None:
            self._chunk = self._next_chunk()
        if plane is not self._lent:
            self._chunk[self._in_chunk] = plane
        self._lent = None
        self._in_chunk += 1
        self._written += 1
        if self._in_chunk == len(self._chunk):
            self._send()

    def _stop_writer(self) -> None:
        if self._thread is not None and self._queue is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def close(self) -> Path:
        """Finish the file and rename it into place."""
        if self._written != self._slices:
            self.abort()
            raise ValueError(f"{self._written} of {self._slices} slices written")
        self._send()
        self._stop_writer()
        self._raise_error()
        try:
            if self._gz is not None:
                self._gz.close()
            os.fsync(self._fh.fileno())
            self._fh.close()
            os.chmod(self._tmp, self._mode)
            os.replace(self._tmp, self.dest)
        except BaseException as exc:
            self.abort()
            if isinstance(exc, OSError):
                raise NiftiWriteError(self.dest, f"write failed: {exc.strerror or exc}") from exc
            raise
        return self.dest

    def abort(self) -> None:
        """Remove the temporary file; the destination is left as it was."""
        self._error = self._error or OSError("aborted")  # the writer skips what is still queued
        self._stop_writer()
        for f in (self._gz, self._fh):
            if f is not None:
                with contextlib.suppress(OSError, ValueError):
                    f.close()
        with contextlib.suppress(OSError):
            os.unlink(self._tmp)
