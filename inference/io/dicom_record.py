"""The header record of one DICOM file (:class:`DicomHeader`) and how it is built from a data set.

A leaf module: both header readers (pydicom's, in :mod:`inference.io.dicom_header`, and the
pydicom-free :mod:`inference.io.fast_header`) build their record with :func:`header_from_dataset`,
from anything with ``get``/``__contains__`` over pydicom keywords (a pydicom ``Dataset``, or the
fast reader's dict of converted values).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inference.errors import AbsurdDimensionsError, InvalidValueError, TruncatedFileError

#: Largest frame and object RadLens agrees to allocate (a 4096² × 4096 int16 volume is 128 GiB;
#: real CT/MR objects stay far below these).
MAX_ROWS_COLS = 16384
MAX_OBJECT_BYTES = 8 * 1024**3
MAX_FRAMES = 100_000
#: SamplesPerPixel is 1 (grey) or 3 (colour); 4 was ARGB/CMYK, retired.
MAX_SAMPLES = 4
MAX_BITS = 64
#: Bytes each frame takes at least in a file: an encapsulated frame needs one 8-byte item header.
MIN_FRAME_BYTES = 8
#: Decoded bytes per byte of a compressed file no codec reaches on a real image; objects up to
#: RATIO_FREE_BYTES are not held to it.
MAX_COMPRESSION_RATIO = 1000
RATIO_FREE_BYTES = 256 << 20
#: Rescale values beyond this magnitude are no physical unit's (they overflow the volume's type).
MAX_RESCALE = 1e9
#: Patient coordinates and pixel spacings beyond these (mm) place nothing on a patient.
MAX_COORDINATE_MM = 1e7
MIN_SPACING_MM = 1e-6

NATIVE_LITTLE_ENDIAN = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}
BIG_ENDIAN = "1.2.840.10008.1.2.2"

#: Modalities and SOP classes that carry no image to view even if they hold pixel data.
NON_IMAGE_MODALITIES = {"SR", "PR", "SEG", "RTSTRUCT", "RTPLAN", "RTRECORD", "KO", "REG", "DOC", "AU"}
NON_IMAGE_SOP_PREFIXES = (
    "1.2.840.10008.5.1.4.1.1.88.",  # structured reports
    "1.2.840.10008.5.1.4.1.1.11.",  # presentation states
    "1.2.840.10008.5.1.4.1.1.66",  # raw data, registration, segmentation
    "1.2.840.10008.5.1.4.1.1.481.2",  # RT plan ... (RT dose .481.2 is an image: handled below)
    "1.2.840.10008.5.1.4.1.1.481.3",
    "1.2.840.10008.5.1.4.1.1.481.5",
    "1.2.840.10008.5.1.4.1.1.104.",  # encapsulated PDF/CDA
)
RT_DOSE_SOP = "1.2.840.10008.5.1.4.1.1.481.2"


@dataclass(frozen=True)
class FrameGeometry:
    """Where one frame lies and how its stored values become physical values."""

    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    pixel_spacing: tuple[float, float] | None
    slope: float = 1.0
    intercept: float = 0.0
    frame_index: int = 0


@dataclass(frozen=True)
class DicomHeader:
    """What RadLens needs from one DICOM file, without its pixels."""

    path: str
    file_size: int
    mtime_ns: int
    transfer_syntax: str
    sop_class_uid: str
    sop_instance_uid: str
    modality: str
    study_uid: str
    series_uid: str
    series_number: int
    instance_number: int
    study_description: str
    series_description: str
    patient_name: str
    patient_id: str
    study_date: str
    series_date: str
    frame_of_reference_uid: str
    image_type: tuple[str, ...]
    rows: int
    columns: int
    samples_per_pixel: int
    photometric: str
    planar_configuration: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    number_of_frames: int
    has_pixel_data: bool
    pixel_data_offset: int | None
    pixel_data_length: int | None
    echo_number: str
    acquisition_number: str
    windows: tuple[tuple[float, float], ...]
    units: str
    slice_thickness: float
    frames: tuple[FrameGeometry, ...] = field(default_factory=tuple)

    @property
    def is_image(self) -> bool:
        if not self.has_pixel_data or self.rows == 0 or self.columns == 0:
            return False
        if self.modality in NON_IMAGE_MODALITIES:
            return False
        if self.sop_class_uid == RT_DOSE_SOP:
            return True
        return not self.sop_class_uid.startswith(NON_IMAGE_SOP_PREFIXES)

    @property
    def is_colour(self) -> bool:
        """RGB/YBR samples, or palette indices that become RGB."""
        return self.samples_per_pixel > 1 or self.photometric == "PALETTE COLOR"

    @property
    def is_multiframe(self) -> bool:
        return self.number_of_frames > 1

    @property
    def native(self) -> bool:
        """Uncompressed little-endian greyscale whose bytes can be read in place."""
        return (
            self.transfer_syntax in NATIVE_LITTLE_ENDIAN
            and self.samples_per_pixel == 1
            and self.photometric != "PALETTE COLOR"
            and self.bits_allocated in (8, 16, 32)
            and self.pixel_data_offset is not None
        )

    @property
    def frame_bytes(self) -> int:
        return self.rows * self.columns * self.samples_per_pixel * max(self.bits_allocated, 1) // 8


def _text(ds: Any, keyword: str) -> str:
    value = ds.get(keyword, "")
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _int(ds: Any, keyword: str, default: int = 0) -> int:
    value = ds.get(keyword, None)
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


def _floats(value: Any, n: int, positive: bool = False) -> tuple[float, ...] | None:
    """``n`` finite numbers within :data:`MAX_COORDINATE_MM` (positive ones at least
    :data:`MIN_SPACING_MM` when ``positive``), or None: a value that places nothing counts as missing."""
    if value is None:
        return None
    try:
        out = tuple(map(float, value))
    except (TypeError, ValueError):
        return None
    if len(out) != n or not all(math.isfinite(v) and abs(v) <= MAX_COORDINATE_MM for v in out):
        return None
    if positive and not all(v >= MIN_SPACING_MM for v in out):
        return None
    return out


class BadAttribute(Exception):
    """An attribute whose value cannot be used (:func:`header_from_dataset` raises it as a typed error)."""

    def __init__(self, keyword: str, reason: str) -> None:
        super().__init__(f"{keyword} {reason}")
        self.keyword = keyword
        self.reason = reason


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, str | bytes) else str(value)
    return text if len(text) <= 60 else text[:59] + "…"


def _single(ds: Any, keyword: str) -> Any:
    """``keyword``'s one value, None when absent or empty; :class:`BadAttribute` for several."""
    value = ds.get(keyword, None)
    if value is None or value == "":
        return None
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        raise BadAttribute(keyword, f"holds {len(value)} values where one number belongs")
    return value


def number(ds: Any, keyword: str, default: float, limit: float = MAX_RESCALE) -> float:
    """The single finite number ``keyword`` holds (``default`` when absent, empty or zero);
    raises :class:`BadAttribute` saying what it holds instead."""
    value = _single(ds, keyword)
    if value is None:
        return default
    try:
        out = float(value)
    except (TypeError, ValueError, OverflowError):
        raise BadAttribute(keyword, f"is {_shown(value)}, not a number") from None
    if not math.isfinite(out) or abs(out) > limit:
        raise BadAttribute(keyword, f"is {out:g}: not a finite number within ±{limit:g}")
    return out or default


def _first_item(item: Any, keyword: str) -> Any:
    """The first item of the sequence ``keyword`` in ``item``, or None (absent, empty, or not a sequence)."""
    seq = item.get(keyword) if hasattr(item, "get") else None
    try:
        first = seq[0] if seq else None
    except (TypeError, IndexError, KeyError):
        return None
    return first if hasattr(first, "get") else None


def _frame(item: Any, fallback: FrameGeometry, index: int) -> FrameGeometry:
    """Geometry of one frame from a functional-groups item, falling back on shared values."""
    position, orientation, spacing = fallback.position, fallback.orientation, fallback.pixel_spacing
    slope, intercept = fallback.slope, fallback.intercept
    if item is not None and hasattr(item, "get"):
        if (plane := _first_item(item, "PlanePositionSequence")) is not None:
            position = _floats(plane.get("ImagePositionPatient"), 3)  # type: ignore[assignment]
        if (orient := _first_item(item, "PlaneOrientationSequence")) is not None:
            orientation = _floats(orient.get("ImageOrientationPatient"), 6)
        if (measures := _first_item(item, "PixelMeasuresSequence")) is not None:
            spacing = _floats(measures.get("PixelSpacing"), 2, positive=True)  # type: ignore[assignment]
        if (pvt := _first_item(item, "PixelValueTransformationSequence")) is not None:
            slope = number(pvt, "RescaleSlope", slope)
            intercept = number(pvt, "RescaleIntercept", intercept)
    return FrameGeometry(position, orientation, spacing, slope, intercept, index)


def _frames(ds: Any, n_frames: int, base: FrameGeometry) -> tuple[FrameGeometry, ...]:
    """Per-frame geometry of a multi-frame object (enhanced CT/MR, RT dose grids)."""
    if "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds:
        shared_seq = ds.get("SharedFunctionalGroupsSequence")
        shared = _frame(shared_seq[0] if shared_seq else None, base, 0)
        per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
        return tuple(_frame(per_frame[i] if i < len(per_frame) else None, shared, i) for i in range(n_frames))
    offsets = _floats(ds.get("GridFrameOffsetVector"), n_frames)
    if offsets is not None and base.position is not None and base.orientation is not None:
        row, col = base.orientation[:3], base.orientation[3:]
        normal = (
            row[1] * col[2] - row[2] * col[1],
            row[2] * col[0] - row[0] * col[2],
            row[0] * col[1] - row[1] * col[0],
        )
        return tuple(
            FrameGeometry(
                tuple(p + off * nrm for p, nrm in zip(base.position, normal, strict=True)),  # type: ignore[arg-type]
                base.orientation,
                base.pixel_spacing,
                base.slope,
                base.intercept,
                i,
            )
            for i, off in enumerate(offsets)
        )
    return tuple(
        FrameGeometry(base.position, base.orientation, base.pixel_spacing, base.slope, base.intercept, i)
        for i in range(n_frames)
    )


def _thickness(ds: Any) -> float:
    """SliceThickness only labels a stack (positions give the spacing): a bad value counts as absent."""
    try:
        value = number(ds, "SliceThickness", 0.0, limit=MAX_COORDINATE_MM)
    except BadAttribute:
        return 0.0
    return value if value > 0 else 0.0


def _text_of(keyword: str) -> Callable[[Any], str]:
    return lambda ds: _text(ds, keyword)


def _int_of(keyword: str) -> Callable[[Any], int]:
    return lambda ds: _int(ds, keyword)


#: Header fields that each depend on one attribute, and how. :func:`header_from_dataset` computes them
#: from this table, and :func:`changed_fields` recomputes the ones whose attribute changed.
ONE_ATTRIBUTE_FIELDS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "SOPClassUID": ("sop_class_uid", _text_of("SOPClassUID")),
    "SOPInstanceUID": ("sop_instance_uid", _text_of("SOPInstanceUID")),
    "Modality": ("modality", lambda ds: _text(ds, "Modality").upper()),
    "StudyInstanceUID": ("study_uid", _text_of("StudyInstanceUID")),
    "SeriesInstanceUID": ("series_uid", _text_of("SeriesInstanceUID")),
    "SeriesNumber": ("series_number", _int_of("SeriesNumber")),
    "InstanceNumber": ("instance_number", _int_of("InstanceNumber")),
    "StudyDescription": ("study_description", _text_of("StudyDescription")),
    "SeriesDescription": ("series_description", _text_of("SeriesDescription")),
    "PatientName": ("patient_name", _text_of("PatientName")),
    "PatientID": ("patient_id", _text_of("PatientID")),
    "StudyDate": ("study_date", _text_of("StudyDate")),
    "SeriesDate": ("series_date", _text_of("SeriesDate")),
    "FrameOfReferenceUID": ("frame_of_reference_uid", _text_of("FrameOfReferenceUID")),
    "ImageType": ("image_type", lambda ds: tuple(str(v) for v in (ds.get("ImageType") or ()))),
    "PhotometricInterpretation": ("photometric", lambda ds: _text(ds, "PhotometricInterpretation").upper()),
    "PlanarConfiguration": ("planar_configuration", _int_of("PlanarConfiguration")),
    "PixelRepresentation": ("pixel_representation", _int_of("PixelRepresentation")),
    "EchoNumbers": ("echo_number", _text_of("EchoNumbers")),
    "AcquisitionNumber": ("acquisition_number", _text_of("AcquisitionNumber")),
    "SliceThickness": ("slice_thickness", lambda ds: _thickness(ds)),
}
#: Attributes of the (single) frame's geometry, with the FrameGeometry field each feeds, and how.
GEOMETRY_ATTRIBUTES: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "ImagePositionPatient": ("position", lambda ds: _floats(ds.get("ImagePositionPatient"), 3)),
    "ImageOrientationPatient": ("orientation", lambda ds: _floats(ds.get("ImageOrientationPatient"), 6)),
    "PixelSpacing": ("pixel_spacing", lambda ds: _floats(ds.get("PixelSpacing"), 2, positive=True)),
    "RescaleSlope": ("slope", lambda ds: number(ds, "RescaleSlope", 1.0)),
    "RescaleIntercept": ("intercept", lambda ds: number(ds, "RescaleIntercept", 0.0)),
}
WINDOW_ATTRIBUTES = frozenset({"WindowCenter", "WindowWidth"})


def _base_frame(ds: Any) -> FrameGeometry:
    """The geometry and rescale of the object as a whole (of its only frame when it has one)."""
    geometry = {name: compute(ds) for name, compute in GEOMETRY_ATTRIBUTES.values()}
    if "DoseGridScaling" in ds:
        geometry["slope"] = number(ds, "DoseGridScaling", 1.0)
    return FrameGeometry(**geometry)


def _windows(ds: Any) -> tuple[tuple[float, float], ...]:
    centers = ds.get("WindowCenter")
    widths = ds.get("WindowWidth")
    windows: list[tuple[float, float]] = []
    if centers is not None and widths is not None:
        cs = list(centers) if not isinstance(centers, int | float | str) and hasattr(centers, "__iter__") else [centers]
        ws = list(widths) if not isinstance(widths, int | float | str) and hasattr(widths, "__iter__") else [widths]
        for c, w in zip(cs, ws, strict=False):
            try:
                center, width = float(c), float(w)
            except (TypeError, ValueError, OverflowError):
                continue
            if math.isfinite(center) and math.isfinite(width) and width > 0:  # else no window to show
                windows.append((center, width))
    return tuple(windows)


def changed_fields(ds: Any, header: DicomHeader, changed: Iterable[str]) -> dict[str, Any] | None:
    """The fields of ``header`` to replace when only the attributes ``changed`` differ in ``ds``.

    ``header`` is :func:`header_from_dataset` of a data set equal to ``ds`` but in ``changed``. ``None``
    when a changed attribute feeds more than these fields (dimensions, frames…): then the whole
    header must be computed again.
    """
    try:
        return _changed_fields(ds, header, changed)
    except BadAttribute:  # the whole header again, which names the attribute in a typed error
        return None


def _changed_fields(ds: Any, header: DicomHeader, changed: Iterable[str]) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    geometry: dict[str, Any] = {}
    for keyword in changed:
        one = ONE_ATTRIBUTE_FIELDS.get(keyword)
        if one is not None:
            out[one[0]] = one[1](ds)
        elif keyword in WINDOW_ATTRIBUTES:
            out["windows"] = _windows(ds)
        elif keyword in GEOMETRY_ATTRIBUTES and header.number_of_frames == 1 and "DoseGridScaling" not in ds:
            name, compute = GEOMETRY_ATTRIBUTES[keyword]
            geometry[name] = compute(ds)
        else:
            return None
    if geometry:
        (frame,) = header.frames
        out["frames"] = (replace_frame(frame, geometry),)
    return out


def replace_frame(frame: FrameGeometry, changes: dict[str, Any]) -> FrameGeometry:
    """``dataclasses.replace(frame, **changes)``, without running ``__init__`` again."""
    new: FrameGeometry = object.__new__(FrameGeometry)
    new.__dict__.update(frame.__dict__)
    new.__dict__.update(changes)
    return new


def replace_fields(header: DicomHeader, changes: dict[str, Any]) -> DicomHeader:
    """``dataclasses.replace(header, **changes)`` without running ``__init__`` again (a tenth of the time)."""
    new: DicomHeader = object.__new__(DicomHeader)
    new.__dict__.update(header.__dict__)
    new.__dict__.update(changes)
    return new


def _dimension(ds: Any, keyword: str, default: int, low: int, high: int) -> int:
    """An image dimension (Rows, Columns…): an integer in ``[low, high]``, else :class:`BadAttribute`."""
    value = _single(ds, keyword)
    if value is None:
        return default
    try:
        out = int(value)
    except (TypeError, ValueError, OverflowError):
        raise BadAttribute(keyword, f"is {_shown(value)}, not a whole number") from None
    if not low <= out <= high:
        raise BadAttribute(keyword, f"is {out}, outside {low}…{high}")
    return out


def header_from_dataset(
    ds: Any, p: str, st: os.stat_result, ts: str, has_pixels: bool, offset: int | None, length: int | None
) -> DicomHeader:
    """The :class:`DicomHeader` of the data set ``ds`` (a pydicom ``Dataset`` or a dict of values
    by keyword) read from the file ``p`` (``st`` its ``os.stat``; ``offset``/``length`` where its
    native pixel data lie). Raises :class:`AbsurdDimensionsError` for dimensions the file cannot
    hold and :class:`InvalidValueError` for an attribute whose value no image has, each naming it."""
    try:
        return _header(ds, p, st, ts, has_pixels, offset, length)
    except BadAttribute as bad:
        if bad.keyword in _DIMENSIONS:
            raise AbsurdDimensionsError(p, f"{bad.keyword} {bad.reason}; refusing to allocate") from None
        raise InvalidValueError(p, f"{bad.keyword} {bad.reason}") from None


_DIMENSIONS = ("Rows", "Columns", "NumberOfFrames", "SamplesPerPixel", "BitsAllocated")


def _header(
    ds: Any, p: str, st: os.stat_result, ts: str, has_pixels: bool, offset: int | None, length: int | None
) -> DicomHeader:
    rows = _dimension(ds, "Rows", 0, 0, MAX_ROWS_COLS)
    cols = _dimension(ds, "Columns", 0, 0, MAX_ROWS_COLS)
    n_frames = max(_dimension(ds, "NumberOfFrames", 1, -(2**31), MAX_FRAMES), 1)
    spp = max(_dimension(ds, "SamplesPerPixel", 1, 0, MAX_SAMPLES), 1)
    bits = _dimension(ds, "BitsAllocated", 16, 0, MAX_BITS)
    if has_pixels and n_frames > 1:
        # Each frame takes bytes in the file: a count the file cannot hold is refused before any
        # per-frame record (or pixel buffer) is made for it.
        per_frame = rows * cols * spp * max(bits, 1) // 8 if offset is not None else MIN_FRAME_BYTES
        if n_frames * max(per_frame, 1) > st.st_size:
            raise AbsurdDimensionsError(
                p,
                f"NumberOfFrames is {n_frames}, but a file of {st.st_size} bytes cannot hold that many "
                f"frames of {rows}×{cols}; refusing to allocate",
            )
    decoded = rows * cols * n_frames * spp * max(bits, 1) // 8
    if has_pixels and offset is None and decoded > max(RATIO_FREE_BYTES, MAX_COMPRESSION_RATIO * st.st_size):
        # Compressed (or big-endian, deflated) pixels: no codec decodes this much from a file this small.
        raise AbsurdDimensionsError(
            p,
            f"Rows × Columns × NumberOfFrames ({rows}×{cols}×{n_frames}) claims {decoded} bytes of pixels "
            f"from a file of {st.st_size} bytes; refusing to allocate",
        )
    if decoded > MAX_OBJECT_BYTES:
        raise AbsurdDimensionsError(
            p,
            f"NumberOfFrames × Rows × Columns × SamplesPerPixel ({n_frames}×{rows}×{cols}×{spp}) of {bits} bits "
            f"is more than {MAX_OBJECT_BYTES >> 30} GiB; refusing to allocate",
        )

    base = _base_frame(ds)
    try:
        frames = _frames(ds, n_frames, base) if n_frames > 1 else (base,)
    except BadAttribute:
        raise
    except Exception as exc:  # a functional-groups item of the wrong shape
        raise BadAttribute("PerFrameFunctionalGroupsSequence", f"cannot be read ({type(exc).__name__})") from None
    return DicomHeader(
        path=p,
        file_size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        transfer_syntax=ts,
        rows=rows,
        columns=cols,
        samples_per_pixel=spp,
        bits_allocated=bits,
        bits_stored=_int(ds, "BitsStored", bits),
        number_of_frames=n_frames,
        has_pixel_data=has_pixels,
        pixel_data_offset=offset,
        pixel_data_length=length,
        windows=_windows(ds),
        units=_text(ds, "Units") or _text(ds, "DoseUnits"),
        frames=frames,
        **{name: compute(ds) for name, compute in ONE_ATTRIBUTE_FIELDS.values()},
    )


def check_pixel_length(header: DicomHeader) -> None:
    """Raise if native pixel data is shorter than the header's dimensions require."""
    if header.pixel_data_offset is None:
        return
    need = header.frame_bytes * header.number_of_frames
    have = min(header.pixel_data_length or 0, header.file_size - header.pixel_data_offset)
    if have < need:
        raise TruncatedFileError(Path(header.path), f"pixel data is truncated: {have} of {need} bytes present")
