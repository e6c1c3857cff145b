"""The files written beside a NIfTI: FSL ``.bval``/``.bvec`` and a BIDS-style JSON sidecar.

``.bvec`` holds gradient directions in the NIfTI's voxel frame, as FSL and dcm2niix write them:
the patient-frame (LPS) direction ``g`` is expressed along the image axes ``(i, j, k)`` written
in the file (``direction.T @ g``), and its first component is negated when the voxel-to-world
matrix has a positive determinant (FSL treats every image as if stored radiologically).

The JSON sidecar carries acquisition parameters under their BIDS names, in BIDS units (seconds
for times), and never a patient identifier, date or UID.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.io.atomic import atomic_write
from inference.io.stacks import Stack
from inference.volume import FourthAxis, Volume


def bvecs_in_voxel_frame(volume: Volume) -> npt.NDArray[np.float64]:
    """``(3, t)`` gradient directions in FSL's voxel convention (zeros where b = 0)."""
    direction = volume.direction
    flip = np.linalg.det(direction) > 0  # the RAS affine's determinant has the same sign
    out = np.zeros((3, len(volume.frames)))
    for n, frame in enumerate(volume.frames):
        if frame.gradient is None or not any(frame.gradient):
            continue
        v = np.linalg.solve(direction, np.asarray(frame.gradient, dtype=np.float64))
        norm = float(np.linalg.norm(v))
        v = v / norm if norm > 0 else v
        if flip:
            v[0] = -v[0]
        out[:, n] = v
    return out


def _number(value: float) -> str:
    return f"{value:.6g}" if value != 0 else "0"


def write_diffusion_tables(volume: Volume, nifti_path: Path) -> tuple[Path, Path] | None:
    """Write ``.bval`` and ``.bvec`` beside ``nifti_path`` for a diffusion series (else nothing)."""
    if not volume.frames or volume.frames[0].axis is not FourthAxis.DIFFUSION:
        return None
    stem = _stem(nifti_path)
    bvals = " ".join(_number(f.b_value or 0.0) for f in volume.frames) + "\n"
    vecs = bvecs_in_voxel_frame(volume)
    bvec_text = "".join(" ".join(_number(float(v)) for v in row) + "\n" for row in vecs)
    return (
        atomic_write(stem.with_name(stem.name + ".bval"), bvals),
        atomic_write(stem.with_name(stem.name + ".bvec"), bvec_text),
    )


def _stem(nifti_path: Path) -> Path:
    name = nifti_path.name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return nifti_path.with_name(name[: -len(suffix)])
    return nifti_path


#: DICOM keyword -> (BIDS name, factor): times in ms become seconds.
_FIELDS: dict[str, tuple[str, float | None]] = {
    "Modality": ("Modality", None),
    "MagneticFieldStrength": ("MagneticFieldStrength", 1.0),
    "Manufacturer": ("Manufacturer", None),
    "ManufacturerModelName": ("ManufacturersModelName", None),
    "SoftwareVersions": ("SoftwareVersions", None),
    "SeriesDescription": ("SeriesDescription", None),
    "ProtocolName": ("ProtocolName", None),
    "SeriesNumber": ("SeriesNumber", 1.0),
    "ScanningSequence": ("ScanningSequence", None),
    "SequenceVariant": ("SequenceVariant", None),
    "SequenceName": ("SequenceName", None),
    "SliceThickness": ("SliceThickness", 1.0),
    "SpacingBetweenSlices": ("SpacingBetweenSlices", 1.0),
    "RepetitionTime": ("RepetitionTime", 0.001),
    "EchoTime": ("EchoTime", 0.001),
    "InversionTime": ("InversionTime", 0.001),
    "FlipAngle": ("FlipAngle", 1.0),
    "EchoTrainLength": ("EchoTrainLength", 1.0),
    "PixelBandwidth": ("PixelBandwidth", 1.0),
    "KVP": ("KVP", 1.0),
    "ConvolutionKernel": ("ConvolutionKernel", None),
}


def _plain(value: Any, factor: float | None) -> Any:
    if value is None or value == "":
        return None
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        items = [_plain(v, factor) for v in value]
        return items if len(items) != 1 else items[0]
    if factor is None:
        return str(value).strip()
    try:
        number = float(value) * factor
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number):
        return None
    return int(number) if factor == 1.0 and number == int(number) and "." not in str(value) else round(number, 9)


def bids_sidecar(stack: Stack, volume: Volume, notes: list[str] | None = None) -> dict[str, Any]:
    """Acquisition parameters of ``stack`` under BIDS names (from its first file), without identifiers."""
    import pydicom

    out: dict[str, Any] = {}
    if stack.kind != "dicom" or not stack.headers:
        return out
    first = stack.headers[stack.slices[0].header_index] if stack.slices else stack.headers[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(first.path, stop_before_pixels=True, force=True)
    for keyword, (name, factor) in _FIELDS.items():
        value = _plain(ds.get(keyword), factor)
        if value is not None:
            out[name] = value
    if stack.is_4d and volume.frames and volume.frames[0].axis is FourthAxis.ECHO:
        out.pop("EchoTime", None)
        out["EchoTimes"] = [round((f.echo_time or 0.0) / 1000.0, 9) for f in volume.frames]
    image_type = list(first.image_type)
    if image_type:
        out["ImageType"] = image_type
    axis = {"ROW": "i", "COL": "j"}.get(str(ds.get("InPlanePhaseEncodingDirection", "")).strip().upper())
    if axis:
        positive = _siemens_phase_positive(ds)
        if positive is None:
            out["PhaseEncodingAxis"] = axis  # the polarity is not in the standard tags
        else:
            # In the DICOM row/column frame this file keeps (dcm2niix, flipping rows, writes "j-" for "j").
            out["PhaseEncodingDirection"] = axis + ("" if positive else "-")
    timing = _slice_timing(stack)
    if timing is not None:
        out["SliceTiming"] = timing
    if volume.frames:
        out["FourthAxis"] = volume.frames[0].axis.value
    if stack.is_mosaic:
        out["Mosaic"] = True
    out["ConversionSoftware"] = "radlens"
    if notes:
        out["ConversionNotes"] = list(notes)
    return out


def _csa_tags(ds: Any) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nibabel.nicom warns that its DICOM readers are experimental
        from nibabel.nicom import csareader

        try:
            return dict((csareader.get_csa_header(ds, "image") or {}).get("tags") or {})
        except Exception:  # a damaged CSA header: the fields it would give stay unknown
            return {}


def _siemens_phase_positive(ds: Any) -> bool | None:
    """Siemens CSA PhaseEncodingDirectionPositive (``None`` where absent)."""
    if (0x0029, 0x0010) not in ds:
        return None
    items = (_csa_tags(ds).get("PhaseEncodingDirectionPositive") or {}).get("items") or []
    if not items or items[0] not in (0, 1):
        return None
    return bool(items[0])


def _slice_timing(stack: Stack) -> list[float] | None:
    """Seconds from the first slice of a volume to each slice (in the file's k order), where known:
    Siemens CSA MosaicRefAcqTimes for mosaics, else the first volume's AcquisitionTime values."""
    from inference.io.acquisition_keys import dicom_time

    first_volume = stack.slices[: stack.n_slices]
    if stack.is_mosaic:
        import pydicom

        h = stack.headers[first_volume[0].header_index]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(h.path, stop_before_pixels=True, force=True)
        tags = _csa_tags(ds)
        times = (tags.get("MosaicRefAcqTimes") or {}).get("items") or []
        if len(times) < stack.n_slices:
            return None
        return [round(float(times[ref.tile or 0]) / 1000.0, 6) for ref in first_volume]
    import pydicom

    values = []
    for ref in first_volume:
        h = stack.headers[ref.header_index]
        if h.is_multiframe:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(h.path, stop_before_pixels=True, specific_tags=["AcquisitionTime"])
        t = dicom_time(ds.get("AcquisitionTime"))
        if t is None:
            return None
        values.append(t)
    low = min(values)
    if len(set(values)) < 2 or max(values) - low > 60:  # one time for all, or not one volume's timing
        return None
    return [round(v - low, 6) for v in values]


def write_sidecar(stack: Stack, volume: Volume, nifti_path: Path, notes: list[str] | None = None) -> Path:
    """Write the JSON sidecar of ``nifti_path`` atomically; returns its path."""
    data = bids_sidecar(stack, volume, notes)
    stem = _stem(nifti_path)
    return atomic_write(stem.with_name(stem.name + ".json"), json.dumps(data, indent=2, sort_keys=True) + "\n")
