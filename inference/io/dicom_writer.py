"""Write a volume as a real per-slice DICOM series (one file per slice).

Used for test fixtures and the built-in sample study. Files are Explicit VR Little Endian,
CT Image Storage (or MR Image Storage for ``modality="MR"``), written atomically: each file
goes to a temporary name in the target folder and is then renamed into place.

Geometry follows :mod:`inference.volume`: ``voxels[k, j, i]``; ``spacing`` and the
``direction`` columns in ``(i, j, k)`` order, LPS millimetres.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    generate_uid,
)

Vec3 = tuple[float, float, float]

_SOP_CLASSES = {"CT": CTImageStorage, "MR": MRImageStorage}


def _ds_number(value: float) -> str:
    """A Decimal String (at most 16 characters) for ``value``."""
    precision = 12
    text = f"{float(value):.{precision}g}"
    while len(text) > 16:
        precision -= 1
        text = f"{float(value):.{precision}g}"
    return "0" if text in ("-0", "-0.0") else text


def _multi(value: float | Sequence[float]) -> list[str]:
    values = [value] if isinstance(value, int | float) else list(value)
    return [_ds_number(v) for v in values]


def _check_direction(direction: npt.ArrayLike) -> npt.NDArray[np.float64]:
    d = np.asarray(direction, dtype=np.float64)
    if d.shape != (3, 3) or not np.all(np.isfinite(d)):
        raise ValueError(f"direction must be a finite 3x3 matrix, got {d.tolist()}")
    row, col = d[:, 0], d[:, 1]
    if abs(np.linalg.norm(row) - 1) > 1e-4 or abs(np.linalg.norm(col) - 1) > 1e-4 or abs(row @ col) > 1e-4:
        raise ValueError(f"direction columns i and j must be orthonormal, got {d.tolist()}")
    if abs(np.linalg.norm(d[:, 2]) - 1) > 1e-4:
        raise ValueError(f"direction column k must be a unit vector, got {d[:, 2].tolist()}")
    return d


def _stored_pixels(voxels: npt.NDArray[Any], intercept: int) -> tuple[npt.NDArray[Any], int]:
    """Stored values (``value - intercept``) as little-endian 16-bit, and PixelRepresentation."""
    wide = voxels.astype(np.int64) - intercept
    lo, hi = (int(wide.min()), int(wide.max())) if wide.size else (0, 0)
    if lo >= 0 and hi <= 0xFFFF:
        return wide.astype("<u2"), 0
    if lo >= -0x8000 and hi <= 0x7FFF:
        return wide.astype("<i2"), 1
    raise ValueError(f"values {lo + intercept}..{hi + intercept} do not fit 16 bits with rescale intercept {intercept}")


def write_dicom_series(
    voxels: npt.NDArray[Any],
    out_dir: Path,
    *,
    spacing: Sequence[float],
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    direction: npt.ArrayLike | None = None,
    modality: str = "CT",
    slice_positions: Sequence[Sequence[float]] | None = None,
    file_names: Sequence[str] | None = None,
    rescale_intercept: int | None = None,
    patient_name: str = "RADLENS^TEST",
    patient_id: str = "RADLENS-TEST",
    study_uid: str | None = None,
    series_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    uid_seed: str | None = None,
    series_number: int = 1,
    series_description: str = "",
    study_description: str = "",
    study_date: str = "20240101",
    study_time: str = "120000",
    window_center: float | Sequence[float] | None = None,
    window_width: float | Sequence[float] | None = None,
    instance_numbers: Sequence[int] | None = None,
    scramble_instance_numbers: bool = False,
) -> list[Path]:
    """Write ``voxels[k, j, i]`` (integer physical values: HU for CT) as one DICOM file per slice.

    ``spacing`` is ``(si, sj, sk)`` mm; ``direction`` columns are the LPS unit vectors of
    ``i`` (along a row), ``j`` (down a column) and ``k`` (across slices), identity by default.
    Slice ``k`` lies at ``origin + direction[:, 2] * sk * k`` unless ``slice_positions``
    gives every slice's ImagePositionPatient (gantry tilt, irregular or missing slices).

    Stored values are ``value - rescale_intercept`` with slope 1 (intercept -1024 for CT,
    0 for MR by default), unsigned 16-bit where they fit, otherwise signed.

    UIDs not given are derived from ``uid_seed`` (by default from the patient, series and
    geometry), so the same call writes the same UIDs. ``instance_numbers`` overrides the
    default ``1..n``; ``scramble_instance_numbers`` permutes them deterministically.

    Returns the paths written, in slice order ``k``.
    """
    modality = modality.upper()
    if modality not in _SOP_CLASSES:
        raise ValueError(f"modality must be one of {sorted(_SOP_CLASSES)}, got {modality!r}")
    vox = np.asarray(voxels)
    if vox.ndim != 3:
        raise ValueError(f"voxels must be 3-D (k, j, i), got shape {vox.shape}")
    if not np.issubdtype(vox.dtype, np.integer):
        raise TypeError(f"voxels must hold integers, got dtype {vox.dtype}")
    n_slices, rows, cols = vox.shape
    if n_slices == 0 or rows == 0 or cols == 0:
        raise ValueError(f"voxels must not be empty, got shape {vox.shape}")
    sp = tuple(float(s) for s in spacing)
    if len(sp) != 3 or any(not np.isfinite(s) or s <= 0 for s in sp):
        raise ValueError(f"spacing must be three positive numbers, got {spacing}")
    org = np.asarray(origin, dtype=np.float64)
    if org.shape != (3,):
        raise ValueError(f"origin must have three coordinates, got {origin}")
    d = _check_direction(np.eye(3) if direction is None else direction)

    if slice_positions is None:
        positions = [org + d[:, 2] * sp[2] * k for k in range(n_slices)]
    else:
        if len(slice_positions) != n_slices:
            raise ValueError(f"{len(slice_positions)} slice positions for {n_slices} slices")
        positions = [np.asarray(p, dtype=np.float64) for p in slice_positions]
        if any(p.shape != (3,) for p in positions):
            raise ValueError("each slice position must have three coordinates")

    if file_names is None:
        names = [f"slice_{k + 1:04d}.dcm" for k in range(n_slices)]
    else:
        names = list(file_names)
        if len(names) != n_slices:
            raise ValueError(f"{len(names)} file names for {n_slices} slices")
        if len(set(names)) != len(names):
            raise ValueError("file names must be unique")
        for name in names:
            if not name or name in (".", "..") or "/" in name or os.sep in name or name.startswith(".radlens-tmp"):
                raise ValueError(f"bad file name {name!r}")

    if instance_numbers is None:
        numbers = list(range(1, n_slices + 1))
    else:
        numbers = [int(n) for n in instance_numbers]
        if len(numbers) != n_slices:
            raise ValueError(f"{len(numbers)} instance numbers for {n_slices} slices")

    intercept = (-1024 if modality == "CT" else 0) if rescale_intercept is None else int(rescale_intercept)
    stored, pixel_rep = _stored_pixels(vox, intercept)

    seed = uid_seed
    if seed is None:
        seed = "|".join(
            [patient_id, modality, str(series_number), series_description, str(vox.shape), str(sp), str(org.tolist())]
        )
    if scramble_instance_numbers:
        perm = np.random.default_rng(list(seed.encode())).permutation(n_slices)
        numbers = [numbers[int(p)] for p in perm]
    study_uid = study_uid or generate_uid(entropy_srcs=[seed, "study"])
    series_uid = series_uid or generate_uid(entropy_srcs=[seed, "series", study_uid])
    frame_uid = frame_of_reference_uid or generate_uid(entropy_srcs=[seed, "frame", study_uid])
    sop_class = _SOP_CLASSES[modality]
    if window_center is None and window_width is None and modality == "CT":
        window_center, window_width = 40.0, 400.0
    if (window_center is None) != (window_width is None):
        raise ValueError("give both window_center and window_width, or neither")

    row_dir, col_dir = d[:, 0], d[:, 1]
    normal = np.cross(row_dir, col_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for k in range(n_slices):
        sop_uid = generate_uid(entropy_srcs=[seed, "instance", series_uid, str(k)])
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        meta.ImplementationVersionName = "RADLENS_0_1"

        ds = pydicom.Dataset()
        ds.file_meta = meta
        ds.preamble = b"\x00" * 128
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = sop_uid
        ds.StudyDate = study_date
        ds.SeriesDate = study_date
        ds.ContentDate = study_date
        ds.StudyTime = study_time
        ds.SeriesTime = study_time
        ds.ContentTime = study_time
        ds.AccessionNumber = ""
        ds.Modality = modality
        ds.Manufacturer = "RadLens"
        ds.ReferringPhysicianName = ""
        ds.StudyDescription = study_description
        ds.SeriesDescription = series_description
        ds.PatientName = patient_name
        ds.PatientID = patient_id
        ds.PatientBirthDate = ""
        ds.PatientSex = ""
        if modality == "CT":
            ds.KVP = "120"
        else:
            ds.ScanningSequence = "SE"
            ds.SequenceVariant = "NONE"
            ds.ScanOptions = ""
            ds.MRAcquisitionType = "3D"
            ds.RepetitionTime = "500"
            ds.EchoTime = "15"
            ds.EchoTrainLength = "1"
            ds.MagneticFieldStrength = "1.5"
            ds.ImagedNucleus = "1H"
        ds.SliceThickness = _ds_number(sp[2])
        ds.PatientPosition = "HFS"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.StudyID = "1"
        ds.SeriesNumber = int(series_number)
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = numbers[k]
        ds.ImagePositionPatient = _multi(positions[k].tolist())
        ds.ImageOrientationPatient = _multi([*row_dir.tolist(), *col_dir.tolist()])
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        ds.SliceLocation = _ds_number(float(positions[k] @ normal))
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = rows
        ds.Columns = cols
        # DICOM order: spacing between rows (along j) first, then between columns (along i).
        ds.PixelSpacing = [_ds_number(sp[1]), _ds_number(sp[0])]
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = pixel_rep
        if window_center is not None and window_width is not None:
            ds.WindowCenter = _multi(window_center)
            ds.WindowWidth = _multi(window_width)
        if modality == "CT" or intercept != 0:
            ds.RescaleIntercept = _ds_number(intercept)
            ds.RescaleSlope = "1"
            ds.RescaleType = "HU" if modality == "CT" else "US"
        ds.PixelData = np.ascontiguousarray(stored[k]).tobytes()

        target = out_dir / names[k]
        tmp = out_dir / f".radlens-tmp-{os.getpid()}-{names[k]}"
        try:
            ds.save_as(tmp, enforce_file_format=True)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                tmp.unlink()
        written.append(target)
    return written
