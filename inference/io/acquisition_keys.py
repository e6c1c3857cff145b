"""What tells apart frames that lie at one position: time, diffusion, echo, dimension index, mosaic.

Read only for the groups that need it (several slices at one position, a Siemens mosaic, an
enhanced multi-frame object), so a plain 3-D series is scanned exactly as fast as before. The
tags and vendor conventions follow dcm2niix's and nibabel's (``nibabel.nicom``) handling:

- time: TemporalPositionIdentifier (0020,0100) / TemporalPositionIndex, AcquisitionNumber,
  AcquisitionTime, TriggerTime;
- diffusion: DiffusionBValue (0018,9087) and DiffusionGradientOrientation (0018,9089), also inside
  the enhanced MR diffusion sequence; Siemens CSA ``B_value`` / ``DiffusionGradientDirection``;
  GE (0043,1039) (first value, less the 10^9 flags GE adds) and (0019,10BB/BC/BD); Philips
  (2001,1003) and (2005,10B0/B1/B2);
- echo: EchoTime, or the enhanced frame's EffectiveEchoTime;
- enhanced objects: FrameType (magnitude/phase…), StackID, DimensionIndexValues;
- Siemens mosaics: CSA ``NumberOfImagesInMosaic`` and ``SliceNormalVector``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

from inference.errors import LoadError
from inference.io.dicom_record import DicomHeader
from inference.io.raw_elements import RawElements, read_elements

#: Tags of dimension-index pointers that say where a frame lies (not what it is).
SPATIAL_DIMENSIONS = {0x00209057, 0x00200032, 0x00209056}  # in-stack position, IPP, stack id


@dataclass(frozen=True)
class FrameKeys:
    """One frame's acquisition keys (``None`` when the file does not say)."""

    temporal_position: int | None = None
    acquisition_number: int | None = None
    acquisition_time: float | None = None  # seconds since midnight
    trigger_time: float | None = None  # ms
    echo_time: float | None = None  # ms
    b_value: float | None = None
    gradient: tuple[float, float, float] | None = None  # unit vector in patient LPS
    dimension_index: tuple[int, ...] | None = None  # non-spatial DimensionIndexValues
    stack_id: str | None = None
    component: str = ""  # MAGNITUDE / PHASE / REAL / IMAGINARY when the frame type says
    instance_number: int = 0
    mosaic_images: int | None = None
    mosaic_normal: tuple[float, float, float] | None = None
    slice_spacing: float | None = None  # SpacingBetweenSlices, else SliceThickness (mosaics)


def component_of(image_type: tuple[str, ...] | list[str]) -> str:
    """Magnitude, phase, real or imaginary, from ImageType / FrameType values ("" when none says)."""
    values = {str(v).strip().upper() for v in image_type}
    for name, words in (
        ("PHASE", {"P", "PHASE", "PHASE MAP", "PHASE_MAP"}),
        ("REAL", {"R", "REAL"}),
        ("IMAGINARY", {"I", "IMAGINARY"}),
        ("MAGNITUDE", {"M", "MAGNITUDE", "M_FFE", "M_SE", "M_IR"}),
    ):
        if values & words:
            return name
    return ""


def _float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bytes):
        text = value.decode("latin-1").strip("\0 ")
        if not text:
            return None
        value = text.split("\\")[0]
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        if not len(value):
            return None
        value = value[0]
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _int(value: Any) -> int | None:
    out = _float(value)
    return int(out) if out is not None else None


def _vector(values: Any) -> tuple[float, float, float] | None:
    if values is None:
        return None
    if isinstance(values, bytes):
        values = values.decode("latin-1").strip("\0 ").split("\\")
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        return None
    if len(out) != 3 or not all(map(math.isfinite, out)):
        return None
    return (out[0], out[1], out[2])


def _unit(vector: tuple[float, float, float] | None) -> tuple[float, float, float] | None:
    """The direction, normalised; a zero vector (b = 0) stays zero."""
    if vector is None:
        return None
    norm = math.sqrt(sum(v * v for v in vector))
    if norm < 1e-6:
        return (0.0, 0.0, 0.0)
    x, y, z = (v / norm for v in vector)
    return (x, y, z)


def dicom_time(value: Any) -> float | None:
    """A TM value (``HHMMSS.ffffff``, or with colons) in seconds since midnight."""
    if value is None:
        return None
    text = str(value).strip().replace(":", "")
    if len(text) < 2 or not text.split(".")[0].isdigit():
        return None
    try:
        hours = int(text[0:2])
        minutes = int(text[2:4]) if len(text) >= 4 else 0
        seconds = float(text[4:]) if len(text) > 4 else 0.0
    except ValueError:
        return None
    return hours * 3600 + minutes * 60 + seconds


def _private(ds: Any, group: int, creator: str, offset: int, kind: str = "text") -> Any:
    """The value of a private element by its creator (``None`` when absent)."""
    if isinstance(ds, RawElements):
        return ds.private(group, creator, offset, kind)
    try:
        block = ds.private_block(group, creator)
        return block[offset].value
    except (KeyError, ValueError):
        return None


def _csa(ds: Any) -> dict[str, Any] | None:
    raw = ds.private(0x0029, "SIEMENS CSA HEADER", 0x10, "bytes") if isinstance(ds, RawElements) else None
    if raw is None and (isinstance(ds, RawElements) or (0x0029, 0x0010) not in ds):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nibabel.nicom warns that its DICOM readers are experimental
        from nibabel.nicom import csareader

    try:
        header = csareader.read(raw) if raw is not None else csareader.get_csa_header(ds, "image")
    except Exception:  # a damaged CSA header is no reason to refuse the image
        return None
    return header.get("tags") if header else None


def _csa_scalar(tags: dict[str, Any], name: str) -> Any:
    items = (tags.get(name) or {}).get("items") or []
    return items[0] if items else None


def _csa_vector(tags: dict[str, Any], name: str) -> tuple[float, float, float] | None:
    items = (tags.get(name) or {}).get("items") or []
    return _vector(items) if len(items) == 3 else None


def _diffusion(ds: Any, csa: dict[str, Any] | None) -> tuple[float | None, tuple[float, float, float] | None]:
    """b-value and gradient direction (patient LPS) from the standard tags, then the vendors'."""
    b = _float(ds.get("DiffusionBValue"))
    g = _vector(ds.get("DiffusionGradientOrientation"))
    if b is None and csa is not None:
        b = _float(_csa_scalar(csa, "B_value"))
        g = g or _csa_vector(csa, "DiffusionGradientDirection")
    if b is None:
        ge = _private(ds, 0x0043, "GEMS_PARM_01", 0x39)
        b = _float(ge)
        if b is not None:
            b = math.fmod(b, 1e9) if b >= 1e9 else b  # GE adds 10^9 as a flag on some releases
            vec = [_float(_private(ds, 0x0019, "GEMS_ACQU_01", off)) for off in (0xBB, 0xBC, 0xBD)]
            if all(v is not None for v in vec):
                g = g or _ge_to_patient(_vector(vec), ds)
    if b is None:
        b = _float(_private(ds, 0x2001, "Philips Imaging DD 001", 0x03, "float32"))
        if b is not None:
            vec = [_float(_private(ds, 0x2005, "Philips MR Imaging DD 001", o, "float32")) for o in (0xB0, 0xB1, 0xB2)]
            if all(v is not None for v in vec):
                g = g or _vector(vec)
    if b is not None and b == 0:
        g = (0.0, 0.0, 0.0)
    return b, _unit(g)


def _ge_to_patient(raw: tuple[float, float, float] | None, ds: Any) -> tuple[float, float, float] | None:
    """GE's gradient direction is given in the image frame (row, column, slice normal) with the
    column axis reversed (as dcm2niix reads it): the same direction in patient LPS."""
    orientation = ds.get("ImageOrientationPatient")
    if raw is None or orientation is None or len(orientation) != 6:
        return None
    row = [float(v) for v in orientation[:3]]
    col = [float(v) for v in orientation[3:]]
    normal = (
        row[1] * col[2] - row[2] * col[1],
        row[2] * col[0] - row[0] * col[2],
        row[0] * col[1] - row[1] * col[0],
    )
    x, y, z = (raw[0] * r - raw[1] * c + raw[2] * n for r, c, n in zip(row, col, normal, strict=True))
    return (x, y, z)


#: GE's image type (0043,102F): what the ImageType values leave unsaid on GE.
_GE_COMPONENTS = {0: "MAGNITUDE", 1: "PHASE", 2: "REAL", 3: "IMAGINARY"}


def _ge_component(ds: Any) -> str:
    value = _int(_private(ds, 0x0043, "GEMS_PARM_01", 0x2F, "int16"))
    return _GE_COMPONENTS.get(value, "") if value is not None else ""


def _single_frame_keys(ds: Any, header: DicomHeader) -> FrameKeys:
    csa = _csa(ds)
    b, g = _diffusion(ds, csa)
    mosaic = None
    normal = None
    if csa is not None and any("MOSAIC" in str(v).upper() for v in header.image_type):
        mosaic = _int(_csa_scalar(csa, "NumberOfImagesInMosaic"))
        normal = _csa_vector(csa, "SliceNormalVector")
    spacing = _float(ds.get("SpacingBetweenSlices")) or _float(ds.get("SliceThickness"))
    return FrameKeys(
        temporal_position=_int(ds.get("TemporalPositionIdentifier")),
        acquisition_number=_int(ds.get("AcquisitionNumber")),
        acquisition_time=dicom_time(ds.get("AcquisitionTime")),
        trigger_time=_float(ds.get("TriggerTime")),
        echo_time=_float(ds.get("EchoTime")),
        b_value=b,
        gradient=g,
        component=component_of(header.image_type) or _ge_component(ds),
        instance_number=header.instance_number,
        mosaic_images=mosaic if mosaic and mosaic > 0 else None,
        mosaic_normal=_unit(normal),
        slice_spacing=spacing if spacing and spacing > 0 else None,
    )


def _first(item: Any, sequence: str) -> Any:
    seq = item.get(sequence) if item is not None else None
    return seq[0] if seq else None


def _frame_keys(item: Any, shared: Any, spatial: list[bool], header: DicomHeader, base: FrameKeys) -> FrameKeys:
    """Keys of one enhanced frame: its per-frame functional groups, falling back on the shared ones."""

    def group(name: str) -> Any:
        return _first(item, name) or _first(shared, name)

    content = group("FrameContentSequence")
    temporal = _int(content.get("TemporalPositionIndex")) if content is not None else None
    stack_id = str(content.get("StackID", "") or "") or None if content is not None else None
    index = None
    if content is not None and content.get("DimensionIndexValues") is not None:
        raw = content.DimensionIndexValues
        values = [int(v) for v in (raw if isinstance(raw, list | tuple) or hasattr(raw, "__len__") else [raw])]
        index = tuple(v for v, sp in zip(values, spatial + [False] * len(values), strict=False) if not sp)
    diffusion = group("MRDiffusionSequence")
    b = g = None
    if diffusion is not None:
        b = _float(diffusion.get("DiffusionBValue"))
        direction = _first(diffusion, "DiffusionGradientDirectionSequence")
        g = _vector(direction.get("DiffusionGradientOrientation")) if direction is not None else None
        if b == 0:
            g = (0.0, 0.0, 0.0)
    echo = group("MREchoSequence")
    te = _float(echo.get("EffectiveEchoTime")) if echo is not None else None
    frame_type = group("MRImageFrameTypeSequence") or group("CTImageFrameTypeSequence")
    component = ""
    if frame_type is not None:
        complex_part = str(frame_type.get("ComplexImageComponent", "") or "").strip().upper()
        component = complex_part if complex_part in ("MAGNITUDE", "PHASE", "REAL", "IMAGINARY") else ""
        component = component or component_of(list(frame_type.get("FrameType") or []))
    cardiac = group("CardiacSynchronizationSequence")
    trigger = _float(cardiac.get("NominalCardiacTriggerDelayTime")) if cardiac is not None else None
    return FrameKeys(
        temporal_position=temporal,
        acquisition_number=base.acquisition_number,
        acquisition_time=base.acquisition_time,
        trigger_time=trigger if trigger is not None else base.trigger_time,
        echo_time=te if te is not None else base.echo_time,
        b_value=b if b is not None else base.b_value,
        gradient=_unit(g) if b is not None else base.gradient,
        dimension_index=index,
        stack_id=stack_id,
        component=component or base.component,
        instance_number=header.instance_number,
    )


def read_frame_keys(header: DicomHeader, *, fast: bool = True) -> tuple[FrameKeys, ...]:
    """The keys of every frame of the file ``header`` was read from (one per frame).

    A plain single-frame file is read by :mod:`inference.io.raw_elements` (``fast``), anything
    else, or anything that reader is unsure of, by pydicom; both give the same keys."""
    if fast and header.number_of_frames <= 1:
        elements = read_elements(header.path, header.transfer_syntax, header.pixel_data_offset)
        if elements is not None:
            return (_single_frame_keys(elements, header),)
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(header.path, stop_before_pixels=True, force=True)
    except OSError as exc:
        raise LoadError(header.path, f"cannot read the file again ({exc.strerror or exc})") from exc
    except Exception as exc:  # the header was read once already: a change since the scan
        raise LoadError(header.path, f"header unreadable on a second read ({type(exc).__name__})") from exc
    base = _single_frame_keys(ds, header)
    if header.number_of_frames <= 1 or "PerFrameFunctionalGroupsSequence" not in ds:
        return (base,) * max(header.number_of_frames, 1)
    pointers = [int(item.get("DimensionIndexPointer", 0) or 0) for item in ds.get("DimensionIndexSequence") or []]
    spatial = [p in SPATIAL_DIMENSIONS for p in pointers]
    shared = _first(ds, "SharedFunctionalGroupsSequence")
    per_frame = ds.PerFrameFunctionalGroupsSequence
    return tuple(
        _frame_keys(per_frame[i] if i < len(per_frame) else None, shared, spatial, header, base)
        for i in range(header.number_of_frames)
    )
