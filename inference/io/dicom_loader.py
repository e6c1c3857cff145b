"""Turning a scanned DICOM stack into a :class:`Volume`.

Uncompressed little-endian slices are read straight from the byte offset found at scan
time into one preallocated array; everything else goes through pydicom's decoders.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from inference.errors import (
    InconsistentStackError,
    InvalidValueError,
    LoadError,
    MissingGeometryError,
    TruncatedFileError,
    UnreadableFileError,
)
from inference.io.cpus import spare_cpu
from inference.io.dicom_record import DicomHeader, check_pixel_length
from inference.io.error_boundary import typed_errors
from inference.io.geometry_qa import QACode, median, slice_normal
from inference.io.mosaic import cut_tile
from inference.io.stacks import SliceRef, Stack
from inference.progress import CancelToken, ProgressCallback, no_progress
from inference.volume import Volume, VolumeFrame, VolumeMetadata, WindowPreset

#: Projection images that may have no patient geometry; shown with 1 mm pixels.
PLANAR_MODALITIES = {"CR", "DX", "MG", "US", "XA", "RF", "OT", "SC", "IO", "PX", "ES", "XC", "GM", "SM", "NM", ""}


def _stored_dtype(h: DicomHeader) -> np.dtype[Any]:
    signed = h.pixel_representation == 1
    kind = {8: "i1" if signed else "u1", 16: "i2" if signed else "u2", 32: "i4" if signed else "u4"}
    try:
        return np.dtype("<" + kind[h.bits_allocated])
    except KeyError as exc:
        raise LoadError(h.path, f"unsupported BitsAllocated {h.bits_allocated}") from exc


def _stored_range(h: DicomHeader) -> tuple[int, int]:
    bits = min(h.bits_stored or h.bits_allocated, h.bits_allocated)
    if h.pixel_representation == 1:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


class _Int16Overflow(Exception):
    """A rescaled value left the int16 range: reload as float32."""


def _output_dtype(stack: Stack) -> tuple[np.dtype[Any], bool]:
    """The voxel type, and whether each slice must be checked to fit it.

    int16 whenever rescaled values fit (CT in HU); when only the stored bit depth leaves
    that in doubt, the values are checked and the load falls back to float32 on overflow.
    """
    h0 = stack.headers[0]
    if h0.is_colour:
        palette = h0.photometric == "PALETTE COLOR"
        return (np.dtype(np.uint8) if h0.bits_allocated == 8 or palette else np.dtype(np.uint16)), False
    geo = [ref.geometry for ref in stack.slices]
    if any(g.slope != int(g.slope) or g.intercept != int(g.intercept) for g in geo):
        return np.dtype(np.float32), False
    lo, hi = _stored_range(h0)
    if h0.photometric == "MONOCHROME1":
        lo, hi = min(lo, -hi), max(hi, -lo)  # (lo + hi) - v may land anywhere in this range
    bounds = [sorted((lo * g.slope + g.intercept, hi * g.slope + g.intercept)) for g in geo]
    if all(a >= -32768 and b <= 32767 for a, b in bounds):
        return np.dtype(np.int16), False
    if all(g.slope == 1 and g.intercept == 0 for g in geo) and h0.photometric != "MONOCHROME1":
        return _stored_dtype(h0), False  # e.g. full-range uint16 MR: keep it exact
    return np.dtype(np.int16), True


#: A slice farther than this fraction of the slice spacing from the regular grid through the first
#: slice keeps its own position (``Volume.slice_positions``).
OFF_GRID_TOLERANCE = 0.01

_Geometry = tuple[
    tuple[float, float, float],
    tuple[float, float, float],
    npt.NDArray[np.float64],
    list[str],
    npt.NDArray[np.float64] | None,
]


def _geometry(stack: Stack, allow_missing: bool = False) -> _Geometry:
    """Spacing (i, j, k), origin and direction from sorted slice positions (never SliceThickness),
    and the slices' own positions when they are off that grid (a gap, uneven spacing)."""
    notes: list[str] = []
    geo = [r.geometry for r in stack.slices[: stack.n_slices]]
    g0 = geo[0]
    if g0.position is None or g0.orientation is None or g0.pixel_spacing is None:
        missing = [
            name
            for name, v in (
                ("ImagePositionPatient", g0.position),
                ("ImageOrientationPatient", g0.orientation),
                ("PixelSpacing", g0.pixel_spacing),
            )
            if v is None
        ]
        planar = stack.modality in PLANAR_MODALITIES or stack.headers[0].is_colour
        if not (planar or allow_missing):
            raise MissingGeometryError(stack.headers[0].path, f"missing {', '.join(missing)}: voxels cannot be placed")
        notes.append(f"{QACode.NO_GEOMETRY.value}: no {', '.join(missing)}; shown with 1 mm pixels")
        sp = g0.pixel_spacing or (1.0, 1.0)
        return (float(sp[1]), float(sp[0]), 1.0), (0.0, 0.0, 0.0), np.eye(3), notes, None
    if any(g.position is None for g in geo):
        raise MissingGeometryError(stack.headers[0].path, "some slices lack ImagePositionPatient")
    row = np.asarray(g0.orientation[:3], dtype=np.float64)
    col = np.asarray(g0.orientation[3:6], dtype=np.float64)
    normal = slice_normal(g0.orientation)
    positions = np.array([g.position for g in geo], dtype=np.float64)
    origin = positions[0]
    steps = np.diff(positions, axis=0)
    steps = steps[np.linalg.norm(steps, axis=1) > 1e-3] if len(steps) else steps
    if len(steps):
        # The median step places the regular majority of slices exactly even when QA found a gap;
        # it equals the normal unless the gantry was tilted (then the grid is sheared, not resampled).
        step = median(steps, axis=0)
        dk = float(np.linalg.norm(step))
        kdir = step / dk
    else:
        dk = stack.headers[0].slice_thickness or 1.0
        kdir = normal
    direction = np.column_stack([row, col, kdir])
    spacing = (float(g0.pixel_spacing[1]), float(g0.pixel_spacing[0]), dk)
    slice_positions = None
    if len(positions) > 2:
        grid = origin + np.arange(len(positions))[:, None] * (kdir * dk)[None, :]
        worst = float(np.max(np.linalg.norm(positions - grid, axis=1)))
        if worst > OFF_GRID_TOLERANCE * dk:
            slice_positions = positions
            notes.append(
                f"off-grid: slices lie up to {worst:.3g} mm from a regular {dk:.4g} mm grid; "
                "each keeps its own position (resample to a regular grid to export it)"
            )
    return spacing, (float(origin[0]), float(origin[1]), float(origin[2])), direction, notes, slice_positions


def _read_native_into(out: npt.NDArray[Any], h: DicomHeader, frame: int, scratch: npt.NDArray[Any] | None) -> None:
    """Read one frame's bytes from disk into ``out`` (or ``scratch`` when dtypes differ)."""
    assert h.pixel_data_offset is not None
    target = out if scratch is None else scratch
    offset = h.pixel_data_offset + frame * h.frame_bytes
    view = memoryview(target).cast("B")  # type: ignore[arg-type]
    try:
        if _HAVE_PREADV:  # one system call per slice, no file object
            fd = os.open(h.path, os.O_RDONLY)
            try:
                got = os.preadv(fd, [view], offset)
                while 0 < got < len(view):  # short read before the end of the file: read on
                    more = os.preadv(fd, [view[got:]], offset + got)
                    if more == 0:
                        break
                    got += more
            finally:
                os.close(fd)
        else:
            with open(h.path, "rb", buffering=0) as fp:
                fp.seek(offset)
                got = fp.readinto(view) or 0
    except OSError as exc:
        raise UnreadableFileError(h.path, f"cannot read pixel data ({exc.strerror or exc})") from exc
    if got != target.nbytes:
        raise TruncatedFileError(h.path, f"pixel data is truncated: {got} of {target.nbytes} bytes present")


_HAVE_PREADV = hasattr(os, "preadv")


def _decode(h: DicomHeader) -> npt.NDArray[Any]:
    """All frames of one file through pydicom's decoders: ``(frames, rows, cols[, samples])``.

    Sizes are checked against the file before decoding, and only decoders that fail safely run in
    this process (see :mod:`inference.io.pixel_decode`)."""
    from inference.io.pixel_decode import decode_all_frames, read_dataset

    ds = read_dataset(h)
    arr = decode_all_frames(h, ds)
    arr = np.asarray(arr)
    expected_frame = (h.rows, h.columns) if h.samples_per_pixel == 1 else (h.rows, h.columns, h.samples_per_pixel)
    if h.number_of_frames == 1 or arr.shape == expected_frame:
        arr = arr.reshape((1, *arr.shape))
    if arr.shape[1:] != expected_frame:
        raise InconsistentStackError(h.path, f"decoded frames of shape {arr.shape[1:]}, header says {expected_frame}")
    if h.photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        try:
            rgb = np.asarray(apply_color_lut(arr, ds))
        except Exception as exc:
            raise InvalidValueError(h.path, f"the palette colour lookup table cannot be applied ({exc})") from None
        # Palette entries may be 8- or 16-bit; display wants 8-bit RGB.
        arr = (rgb >> 8).astype(np.uint8) if rgb.max(initial=0) > 255 else rgb.astype(np.uint8)
    result: npt.NDArray[Any] = arr
    return result


def _check_stack(stack: Stack) -> None:
    h0 = stack.headers[0]
    for h in stack.headers[1:]:
        if (h.rows, h.columns, h.samples_per_pixel) != (h0.rows, h0.columns, h0.samples_per_pixel):
            raise InconsistentStackError(h.path, f"slice of {h.rows}×{h.columns} in a stack of {h0.rows}×{h0.columns}")


def _display_windows(stack: Stack) -> tuple[tuple[tuple[float, float], ...], bool]:
    """The windows of the stack's middle slice, and whether the slices' first windows differ.

    Scanners that fit a window to each slice (Siemens MR) make the first slice's window, often an
    almost empty edge slice's, wrong for the volume; the middle slice is the representative one.
    """
    h0 = stack.headers[0]
    if not stack.slices:
        return tuple(h0.windows), False
    middle = stack.headers[stack.slices[len(stack.slices) // 2].header_index]
    vary = len({tuple(h.windows[:1]) for h in stack.headers}) > 1
    return tuple(middle.windows), vary


def _metadata(stack: Stack, out_dtype: np.dtype[Any]) -> VolumeMetadata:
    h0 = stack.headers[0]
    windows, windows_vary = _display_windows(stack)
    return VolumeMetadata(
        modality=h0.modality,
        patient_name=h0.patient_name,
        patient_id=h0.patient_id,
        study_description=h0.study_description,
        series_description=h0.series_description,
        study_date=h0.study_date,
        series_date=h0.series_date,
        study_uid=h0.study_uid,
        series_uid=h0.series_uid,
        frame_of_reference_uid=h0.frame_of_reference_uid,
        units="HU" if h0.modality == "CT" else h0.units,
        windows=tuple(WindowPreset(c, w, f"file {n + 1}") for n, (c, w) in enumerate(windows)),
        source=os.path.dirname(h0.path),
        extra={
            "stack_id": stack.id,
            "sop_instance_uids": [stack.headers[r.header_index].sop_instance_uid for r in stack.slices],
            "windows_vary": windows_vary,
        },
    )


def load_stack(
    stack: Stack,
    *,
    on_progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
    allow_missing_geometry: bool = False,
) -> Volume:
    """Load a scanned stack as a Volume: sorted along the normal, rescaled, MONOCHROME1 inverted.

    A CT/MR stack without position, orientation or spacing raises :class:`MissingGeometryError`
    unless ``allow_missing_geometry`` is set, in which case it is shown on 1 mm pixels and says so.
    A file of a several-file stack whose pixels cannot be read is left out, and the volume's QA
    notes say which and why (the rest of the series still loads); every error is a
    :class:`~inference.errors.RadLensError` naming a file.
    """
    if stack.kind == "file":
        from inference.io.image_file import read_image_file

        volume: Volume = read_image_file(stack.file_path)
        return volume
    first = stack.headers[0].path if stack.headers else None
    with typed_errors(first, "loading this stack"):
        left_out: list[str] = []
        while True:
            try:
                return _load(stack, on_progress, cancel or CancelToken(), allow_missing_geometry, left_out)
            except _FileFailed as failed:
                # A 4-D stack's volumes stay whole, and a lone file is the stack: nothing to leave out.
                if stack.is_4d or stack.is_mosaic or len({h.path for h in stack.headers}) <= 1:
                    raise failed.error from None
                bad = stack.headers[failed.header_index]
                left_out.append(f"{os.path.basename(bad.path)} left out ({failed.error.reason})")
                stack = _without_file(stack, failed.header_index)


class _FileFailed(Exception):
    """Reading one file of a stack failed with ``error``."""

    def __init__(self, header_index: int, error: LoadError) -> None:
        super().__init__(error)
        self.header_index = header_index
        self.error = error


def loaded_part(stack: Stack, volume: Volume) -> Stack:
    """``stack`` without the files :func:`load_stack` left out of ``volume`` (unreadable pixels):
    the instances the volume's slices came from, for outputs that reference them (SEG, SR)."""
    uids = volume.metadata.extra.get("sop_instance_uids")
    if stack.kind != "dicom" or not uids or len(uids) == len(stack.slices):
        return stack
    kept = set(uids)
    for n in reversed(range(len(stack.headers))):
        if stack.headers[n].sop_instance_uid not in kept:
            stack = _without_file(stack, n)
    return stack


def _without_file(stack: Stack, header_index: int) -> Stack:
    """``stack`` without the slices of one file (the others keep their order)."""
    import dataclasses

    headers = tuple(h for n, h in enumerate(stack.headers) if n != header_index)
    slices = tuple(
        dataclasses.replace(r, header_index=r.header_index - (r.header_index > header_index))
        for r in stack.slices
        if r.header_index != header_index
    )
    return dataclasses.replace(stack, headers=headers, slices=slices)


def _load(
    stack: Stack,
    on_progress: ProgressCallback,
    cancel: CancelToken,
    allow_missing_geometry: bool,
    left_out: list[str],
) -> Volume:
    spacing, origin, direction, notes, out_dtype, checked, positions = _prepare(stack, allow_missing_geometry)
    try:
        out = _read_slices(stack, out_dtype, checked, on_progress, cancel)
    except _Int16Overflow:
        out = _read_slices(stack, np.dtype(np.float32), False, on_progress, cancel)
    n = len(stack.slices)
    on_progress(1.0, f"loaded {n} slices")
    qa = _warn_qa(stack, notes + [f"{QACode.MISSING_SLICES.value}: {note}" for note in left_out])
    frames = stack.volume_frames if stack.is_4d else ()
    if frames:
        out = out.reshape((len(frames), stack.n_slices, *out.shape[1:]))  # volume-major, as the stack orders them
    return _volume(stack, out, spacing, origin, direction, qa, frames, positions)


def _volume(
    stack: Stack,
    voxels: npt.NDArray[Any],
    spacing: tuple[float, float, float],
    origin: tuple[float, float, float],
    direction: npt.NDArray[np.float64],
    qa: tuple[str, ...],
    frames: tuple[VolumeFrame, ...],
    positions: npt.NDArray[np.float64] | None,
) -> Volume:
    try:
        return Volume(
            voxels,
            spacing,
            origin,
            direction,
            _metadata(stack, voxels.dtype),
            qa,
            frames=frames,
            slice_positions=positions,
        )
    except ValueError as exc:  # a grid no volume has (spacing, direction): name what the files gave
        raise InvalidValueError(stack.headers[0].path, f"the slices give no usable grid: {exc}") from None


def _prepare(
    stack: Stack, allow_missing_geometry: bool
) -> tuple[
    tuple[float, float, float],
    tuple[float, float, float],
    npt.NDArray[np.float64],
    list[str],
    np.dtype[Any],
    bool,
    npt.NDArray[np.float64] | None,
]:
    """What :func:`load_stack` and :func:`stream_stack` need before the first pixel: the stack checked
    (a refused stack raises its typed error), its geometry (spacing, origin, direction, notes, the
    slices' own positions when off-grid) and the output type (and whether int16 is checked)."""
    stack.raise_if_refused()
    if not stack.slices:
        raise LoadError(None, f"stack {stack.id} has no slices")
    _check_stack(stack)
    spacing, origin, direction, notes, positions = _geometry(stack, allow_missing_geometry)
    out_dtype, checked = _output_dtype(stack)
    return spacing, origin, direction, notes, out_dtype, checked, positions


def _warn_qa(stack: Stack, notes: list[str]) -> tuple[str, ...]:
    """The stack's QA findings and loading notes, also issued as one :class:`GeometryWarning` that
    points at the caller of :func:`load_stack` / :func:`stream_stack`."""
    qa = tuple(str(q) for q in stack.qa) + tuple(notes)
    if qa:
        from inference.errors import GeometryWarning

        warnings.warn(f"stack {stack.id}: " + "; ".join(qa), GeometryWarning, stacklevel=3)
    return qa


class SliceSink(Protocol):
    """Where :func:`stream_stack` puts a stack's slices, in order, instead of keeping them."""

    def plane(self) -> npt.NDArray[Any] | None:
        """An array of the slice's shape and the volume's type to read the next slice into before
        :meth:`write` gets it (which saves a copy), or ``None`` to be given it in another array."""

    def write(self, plane: npt.NDArray[Any]) -> None:
        """Take slice ``k`` (``k`` = 0, 1, … in call order); ``plane`` is reused after the call."""

    def close(self) -> object:
        """Every slice has been written."""

    def abort(self) -> None:
        """Loading failed (or restarts with another type): discard what was written."""


def can_stream(stack: Stack) -> bool:
    """Whether :func:`stream_stack` takes this stack (3-D greyscale DICOM; colour, 4-D, mosaics and
    image files are loaded whole)."""
    return (
        stack.kind == "dicom"
        and bool(stack.headers)
        and not stack.headers[0].is_colour
        and not stack.is_4d
        and not stack.is_mosaic
    )


def stream_stack(
    stack: Stack,
    open_sink: Callable[[Volume], SliceSink],
    *,
    on_progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
    allow_missing_geometry: bool = False,
) -> Volume:
    """:func:`load_stack`, handing each finished slice to a sink instead of keeping the volume.

    ``open_sink(volume)`` receives the volume :func:`load_stack` would return, except that its
    voxels are a read-only placeholder of the same shape and type holding no memory; the sink it
    returns gets the slices ``k`` = 0, 1, … with exactly the values :func:`load_stack` gives. When
    the values turn out not to fit int16, that sink is aborted and a float32 one opened, as
    :func:`load_stack` turns to float32. Returns the placeholder volume of the last sink; warns
    as :func:`load_stack` does. Memory: one slice. Only for :func:`can_stream` stacks.
    """
    if not can_stream(stack):
        raise ValueError(f"stack {stack.id} is colour or an image file: load it whole with load_stack")
    cancel = cancel or CancelToken()
    spacing, origin, direction, notes, out_dtype, checked, positions = _prepare(stack, allow_missing_geometry)
    n = len(stack.slices)
    while True:
        placeholder = np.broadcast_to(np.zeros((), dtype=out_dtype), (n, stack.rows, stack.columns))
        meta = _metadata(stack, out_dtype)
        sink = open_sink(Volume(placeholder, spacing, origin, direction, meta, (), slice_positions=positions))
        try:
            _stream_into(sink, stack, out_dtype, checked, on_progress, cancel)
        except _Int16Overflow:
            sink.abort()
            out_dtype, checked = np.dtype(np.float32), False
            continue
        except _FileFailed as failed:  # slices already written: the file cannot be left out here
            sink.abort()
            raise failed.error from None
        except BaseException:
            sink.abort()
            raise
        sink.close()
        break
    on_progress(1.0, f"loaded {n} slices")
    qa = _warn_qa(stack, notes)
    return Volume(placeholder, spacing, origin, direction, _metadata(stack, out_dtype), qa, slice_positions=positions)


def _stream_into(
    sink: SliceSink,
    stack: Stack,
    out_dtype: np.dtype[Any],
    checked: bool,
    on_progress: ProgressCallback,
    cancel: CancelToken,
) -> None:
    shape = (stack.rows, stack.columns)
    own = np.empty(shape, dtype=out_dtype)  # one slice, reused, where the sink lends none

    def target(k: int) -> npt.NDArray[Any]:
        lent = sink.plane()
        return lent if lent is not None and lent.shape == shape and lent.dtype == out_dtype else own

    def emit(k: int, plane: npt.NDArray[Any]) -> None:
        sink.write(plane)

    _fill(stack, out_dtype, target, checked, on_progress, cancel, emit=emit)


#: Volumes from this size on have their pages touched by a helper thread ahead of the reads
#: (see :class:`_Prefault`), when a CPU is free for it.
PREFAULT_MIN_BYTES = 32 << 20


class _Prefault:
    """Touches a new array's pages in a helper thread, ahead of the reads that fill it.

    The first write to each page of a fresh allocation makes the kernel map and zero it: for a
    series read from the page cache that is about 40 % of the time, and it does not spread over
    threads that share the address space. Done on the other CPU, in step ahead of the reads, it
    overlaps with them. ``wait(end)`` returns once the array's first ``end`` bytes are touched.
    """

    CHUNK = 4 << 20  # bytes touched per step (1024 pages of 4 KiB: numpy drops the GIL doing it)

    def __init__(self, out: npt.NDArray[Any]) -> None:
        self._bytes = out.reshape(-1).view(np.uint8)
        self._done = 0
        self._stop = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="radlens-prefault", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        size = len(self._bytes)
        try:
            for start in range(0, size, self.CHUNK):
                if self._stop:
                    return
                end = min(start + self.CHUNK, size)
                self._bytes[start:end:4096] = 0  # one write per page
                with self._cond:
                    self._done = end
                    self._cond.notify()
        finally:
            with self._cond:
                self._done = size  # never leave a reader waiting, whatever happened here
                self._cond.notify()

    def wait(self, end: int) -> None:
        if self._done >= end:
            return
        with self._cond:
            while self._done < end:
                self._cond.wait()

    def close(self) -> None:
        self._stop = True
        self._thread.join()


def _read_slices(
    stack: Stack,
    out_dtype: np.dtype[Any],
    checked: bool,
    on_progress: ProgressCallback,
    cancel: CancelToken,
) -> npt.NDArray[Any]:
    h0 = stack.headers[0]
    n = len(stack.slices)
    shape: tuple[int, ...] = (n, stack.rows, stack.columns, 3) if h0.is_colour else (n, stack.rows, stack.columns)
    out = np.empty(shape, dtype=out_dtype)
    prefault = _Prefault(out) if out.nbytes >= PREFAULT_MIN_BYTES and spare_cpu() else None
    plane_bytes = out[0].nbytes if n else 0
    try:
        _fill(
            stack,
            out.dtype,
            out.__getitem__,
            checked,
            on_progress,
            cancel,
            ready=(lambda k: prefault.wait((k + 1) * plane_bytes)) if prefault is not None else None,
        )
    finally:
        if prefault is not None:
            prefault.close()
    return out


def _fill(
    stack: Stack,
    out_dtype: np.dtype[Any],
    target: Callable[[int], npt.NDArray[Any]],
    checked: bool,
    on_progress: ProgressCallback,
    cancel: CancelToken,
    *,
    ready: Callable[[int], None] | None = None,
    emit: Callable[[int, npt.NDArray[Any]], None] | None = None,
) -> None:
    """Read, decode and rescale every slice of ``stack``, in order, into ``target(k)``.

    ``target(k)`` is the plane for slice ``k`` (``out[k]``, or a buffer reused from slice to slice);
    ``ready(k)``, when given, is called before it is written, ``emit(k, plane)`` once it is done.
    """
    h0 = stack.headers[0]
    n = len(stack.slices)
    stored = None if h0.is_colour else _stored_dtype(h0)
    # Read in place when the stored type is the output type and no overflow check is needed.
    in_place = stored == out_dtype and not checked
    scratch = None if in_place or stored is None else np.empty((stack.rows, stack.columns), dtype=stored)
    # Checked int16 output from 16-bit stored values: read each slice straight into the output
    # and shift it there, checking only the extreme the intercept pushes towards the int16 limit.
    direct = checked and out_dtype == np.int16 and stored is not None and stored.itemsize == 2
    decoded: dict[int, npt.NDArray[Any]] = {}
    headers = stack.headers
    for k, ref in enumerate(stack.slices):
        if k % 16 == 0:
            cancel.raise_if_cancelled()
            on_progress(k / n, f"reading slice {k + 1} of {n}")
        if ready is not None:
            ready(k)
        plane = target(k)
        h = headers[ref.header_index]
        try:
            with typed_errors(h.path, "reading this file's pixels", passing=(_Int16Overflow,)):
                _fill_one(plane, h, ref, decoded, out_dtype, checked, direct, scratch, stack.mosaic_side)
        except LoadError as exc:
            if exc.path is not None and os.fspath(exc.path) == h.path:
                raise _FileFailed(ref.header_index, exc) from exc
            raise
        if emit is not None:
            emit(k, plane)


def _fill_one(
    plane: npt.NDArray[Any],
    h: DicomHeader,
    ref: SliceRef,
    decoded: dict[int, npt.NDArray[Any]],
    out_dtype: np.dtype[Any],
    checked: bool,
    direct: bool,
    scratch: npt.NDArray[Any] | None,
    mosaic_side: int,
) -> None:
    """Read, decode and rescale one slice into ``plane`` (``decoded`` keeps the last decoded file);
    a mosaic's slice is cut from its file's whole image."""
    g = ref.geometry
    raw: npt.NDArray[Any] | None = None
    if ref.tile is not None:
        if ref.header_index not in decoded:
            decoded.clear()
            decoded[ref.header_index] = _mosaic_image(h)
        raw = cut_tile(decoded[ref.header_index], ref.tile, mosaic_side)
    elif h.native and h.photometric != "MONOCHROME1":
        check_pixel_length(h)
        if direct and h.bits_allocated == 16 and g.slope == 1 and g.intercept == int(g.intercept):
            unsigned = h.pixel_representation != 1
            bits = plane.view(np.uint16) if unsigned else plane
            _read_native_into(bits, h, ref.frame_index, None)
            _shift_in_place(bits, int(g.intercept), unsigned)
        else:
            _read_native_into(plane, h, ref.frame_index, scratch)
            if scratch is None:
                _rescale_in_place(plane, g.slope, g.intercept)
            else:
                raw = scratch
    else:
        if ref.header_index not in decoded:
            decoded.clear()  # keep one decoded file (all frames of a multi-frame object) at a time
            decoded[ref.header_index] = _decode(h)
        raw = decoded[ref.header_index][ref.frame_index]
    if raw is not None:
        if h.is_colour:
            plane[...] = raw
        else:
            plane[...] = _rescaled(raw, h, g.slope, g.intercept, out_dtype, checked)


def _mosaic_image(h: DicomHeader) -> npt.NDArray[Any]:
    """The whole stored mosaic image of one file (tiles are cut from it)."""
    if h.native:
        check_pixel_length(h)
        image = np.empty((h.rows, h.columns), dtype=_stored_dtype(h))
        _read_native_into(image, h, 0, None)
        return image
    frames = _decode(h)
    result: npt.NDArray[Any] = frames[0]
    return result


def _shift_in_place(plane: npt.NDArray[Any], intercept: int, unsigned: bool) -> None:
    """Add ``intercept`` to 16-bit stored values in place, leaving int16 bits behind.

    ``plane`` holds uint16 (``unsigned``) or int16 stored values. Raises :class:`_Int16Overflow`
    when a result would leave the int16 range; otherwise modular 16-bit addition gives exactly
    the int16 result (read back through an int16 view of the same bytes).
    """
    if plane.size == 0 or (intercept == 0 and not unsigned):
        return
    # Only the extreme the intercept pushes towards a limit needs looking at (stored uint16 ≥ 0).
    if (unsigned or intercept > 0) and int(plane.max()) + intercept > 32767:
        raise _Int16Overflow
    if ((intercept < 0 and not unsigned) or intercept < -32768) and int(plane.min()) + intercept < -32768:
        raise _Int16Overflow
    if intercept != 0:
        bits = plane.view(np.uint16)
        np.add(bits, np.uint16(intercept & 0xFFFF), out=bits)


def _rescale_in_place(plane: npt.NDArray[Any], slope: float, intercept: float) -> None:
    if slope != 1:
        plane *= plane.dtype.type(slope)
    if intercept != 0:
        plane += plane.dtype.type(intercept)


def _rescaled(
    raw: npt.NDArray[Any], h: DicomHeader, slope: float, intercept: float, out_dtype: np.dtype[Any], checked: bool
) -> npt.NDArray[Any]:
    """Stored values → physical values (HU for CT), MONOCHROME1 inverted to display like MONOCHROME2."""
    # int64: stored values up to 2**32 times a slope up to MAX_RESCALE cannot wrap around.
    values = raw.astype(np.float32) if out_dtype == np.float32 else raw.astype(np.int64)
    if h.photometric == "MONOCHROME1":
        lo, hi = _stored_range(h)
        values = (lo + hi) - values
    if slope != 1:
        values = values * (np.float32(slope) if out_dtype == np.float32 else int(slope))
    if intercept != 0:
        values = values + (np.float32(intercept) if out_dtype == np.float32 else int(intercept))
    if checked and values.size and (int(values.min()) < -32768 or int(values.max()) > 32767):
        raise _Int16Overflow
    return values.astype(out_dtype, copy=False)
