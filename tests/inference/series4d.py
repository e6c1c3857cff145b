"""4-D MR series written with pydicom from real anatomy (Colin27), in each vendor's tag conventions.

Small on purpose (a few slices of 32 × 28): the geometry, grouping and tables are what is tested.
Each volume is the same anatomy with its own contrast (a diffusion decay, a drift in time, an
echo decay), so a volume placed in the wrong order or at the wrong slice shows in the values.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from .colin27 import read_colin27

MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"


def anatomy(n_slices: int = 6, rows: int = 32, cols: int = 28) -> npt.NDArray[np.float64]:
    """``(k, j, i)`` Colin27 T1 blocks around the brain's centre, every 6th voxel (0…1000)."""
    t1, _, _, _ = read_colin27()
    k0 = t1.shape[0] // 2 - 3 * n_slices
    j0 = t1.shape[1] // 2 - 3 * rows
    i0 = t1.shape[2] // 2 - 3 * cols
    block = t1[k0 : k0 + 6 * n_slices : 6, j0 : j0 + 6 * rows : 6, i0 : i0 + 6 * cols : 6].astype(np.float64)
    return 1000.0 * block / max(float(block.max()), 1.0)


def contrasts(base: npt.NDArray[np.float64], weights: Sequence[float]) -> npt.NDArray[np.int16]:
    """``(t, k, j, i)`` int16: the anatomy scaled per volume, plus a per-volume ramp (so none repeats)."""
    ramp = np.arange(base.shape[0])[:, None, None] * 3.0
    return np.stack([np.rint(base * w + ramp + 7 * v) for v, w in enumerate(weights)]).astype(np.int16)


def csa2(tags: dict[str, tuple[str, list[str]]]) -> bytes:
    """A Siemens CSA2 ("SV10") header with ``name -> (vr, values)`` as text items."""
    out = [b"SV10", b"\x04\x03\x02\x01", struct.pack("<2I", len(tags), 77)]
    for name, (vr, values) in tags.items():
        out.append(struct.pack("<64si4s3i", name.encode(), len(values), vr.encode(), 0, len(values), 77))
        for value in values:
            raw = value.encode() + b"\0"
            out.append(struct.pack("<4i", len(raw), len(raw), 77, len(raw)))
            out.append(raw + b"\0" * ((4 - len(raw) % 4) % 4))
    return b"".join(out)


@dataclass
class Geometry:
    """Slice plane and spacing; the default is a slightly oblique axial stack."""

    row: tuple[float, float, float] = (1.0, 0.0, 0.0)
    col: tuple[float, float, float] = (0.0, 0.9950041652780258, -0.09983341664682815)
    spacing: tuple[float, float, float] = (2.0, 2.5, 4.0)  # (i, j, k) mm
    origin: tuple[float, float, float] = (-30.0, -40.0, -12.0)

    def normal(self) -> npt.NDArray[np.float64]:
        return np.cross(self.row, self.col)

    def position(self, k: int) -> list[float]:
        p = np.asarray(self.origin) + k * self.spacing[2] * self.normal()
        return [round(float(v), 6) for v in p]


@dataclass
class Series4D:
    """What a test writes and what it expects back."""

    folder: Path
    voxels: npt.NDArray[np.int16]  # (t, k, j, i) in acquisition order
    geometry: Geometry
    files: list[Path] = field(default_factory=list)
    bvals: list[float] = field(default_factory=list)
    bvecs: list[tuple[float, float, float]] = field(default_factory=list)  # patient LPS


def _base(geometry: Geometry, vox: npt.NDArray[np.int16], series_uid: str, study_uid: str, number: int) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = MR_IMAGE
    ds.Modality = "MR"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = generate_uid()
    ds.SeriesNumber = number
    ds.SeriesDescription = "ep2d test"
    ds.PatientName = "Test^Four"
    ds.PatientID = "4D-0001"
    ds.ImageOrientationPatient = [*geometry.row, *geometry.col]
    ds.PixelSpacing = [geometry.spacing[1], geometry.spacing[0]]
    ds.SliceThickness = geometry.spacing[2]
    ds.RepetitionTime = 2000.0
    ds.EchoTime = 30.0
    ds.FlipAngle = 90
    ds.MagneticFieldStrength = 3
    ds.InPlanePhaseEncodingDirection = "COL"
    ds.Rows, ds.Columns = vox.shape[-2], vox.shape[-1]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
    return ds


def _save(ds: Dataset, path: Path, pixels: npt.NDArray[np.int16], implicit: bool = False) -> None:
    ds.SOPInstanceUID = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<i2").tobytes()
    ds.save_as(path, enforce_file_format=True)


def write_classic(
    folder: Path,
    voxels: npt.NDArray[np.int16],
    *,
    vendor: str = "SIEMENS",
    bvals: Sequence[float] = (),
    bvecs: Sequence[tuple[float, float, float]] = (),
    echo_times: Sequence[float] = (),
    time_tags: str = "acquisition",
    geometry: Geometry | None = None,
    series_number: int = 5,
    shuffle_seed: int | None = 3,
    skip: Sequence[tuple[int, int]] = (),
    implicit: bool = False,
) -> Series4D:
    """One file per slice of every volume, ``(volume, slice)`` pairs in ``skip`` left out.

    ``time_tags``: "acquisition" (AcquisitionNumber per volume + AcquisitionTime, Siemens style),
    "temporal" (TemporalPositionIdentifier, GE style, one AcquisitionNumber), "time-only"
    (AcquisitionTime alone), "none" (nothing tells the volumes apart but InstanceNumber).
    Diffusion goes in the vendor's tags: Siemens CSA, GE (0043,1039)/(0019,10BB-BD),
    Philips (2001,1003)/(2005,10B0-B2), "standard" (0018,9087)/(0018,9089).
    """
    geometry = geometry or Geometry()
    folder.mkdir(parents=True, exist_ok=True)
    study_uid, series_uid = generate_uid(), generate_uid()
    n_vol, n_k = voxels.shape[:2]
    manufacturer = {"SIEMENS": "SIEMENS", "GE": "GE MEDICAL SYSTEMS", "PHILIPS": "Philips Medical Systems"}
    names = [f"IM{n:05d}" for n in range(n_vol * n_k)]
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(names)
    out = Series4D(folder, voxels, geometry, bvals=list(bvals), bvecs=list(bvecs))
    for v in range(n_vol):
        for k in range(n_k):
            if (v, k) in skip:
                continue
            ds = _base(geometry, voxels, series_uid, study_uid, series_number)
            ds.Manufacturer = manufacturer.get(vendor, vendor)
            ds.InstanceNumber = v * n_k + k + 1
            ds.ImagePositionPatient = geometry.position(k)
            seconds = 8 * 3600 + v * 2.0 + k * 2.0 / n_k
            stamp = f"{int(seconds // 3600):02d}{int(seconds % 3600 // 60):02d}{seconds % 60:09.6f}"
            if time_tags == "acquisition":
                ds.AcquisitionNumber = v + 1
                ds.AcquisitionTime = stamp
            elif time_tags == "temporal":
                ds.AcquisitionNumber = 1
                ds.TemporalPositionIdentifier = v + 1
                ds.NumberOfTemporalPositions = n_vol
                ds.AcquisitionTime = stamp
            elif time_tags == "time-only":
                ds.AcquisitionTime = stamp
            if echo_times:
                ds.EchoTime = echo_times[v]
            if bvals:
                _diffusion(ds, vendor, bvals[v], bvecs[v])
            path = folder / names[v * n_k + k]
            _save(ds, path, voxels[v, k], implicit)
            out.files.append(path)
    return out


def _diffusion(ds: Dataset, vendor: str, b: float, g: tuple[float, float, float]) -> None:
    if vendor == "SIEMENS":
        ds.ImageType = ["ORIGINAL", "PRIMARY", "DIFFUSION", "NONE", "ND"]
        tags = {"B_value": ("IS", [f"{int(b)}"])}
        if b > 0:
            tags["DiffusionGradientDirection"] = ("FD", [f"{v:.8f}" for v in g])
        block = ds.private_block(0x0029, "SIEMENS CSA HEADER", create=True)
        block.add_new(0x10, "OB", csa2(tags))
        ds.SequenceName = f"*ep_b{int(b)}#1" if b > 0 else "*ep_b0"
    elif vendor == "GE":
        block = ds.private_block(0x0043, "GEMS_PARM_01", create=True)
        block.add_new(0x39, "IS", [f"{int(b) + 1000000000}", "0", "0", "0"])
        acq = ds.private_block(0x0019, "GEMS_ACQU_01", create=True)
        # GE writes the direction in the image frame (row, column, normal), the column axis reversed.
        row, col = np.asarray(ds.ImageOrientationPatient[:3]), np.asarray(ds.ImageOrientationPatient[3:])
        image_frame = (float(np.dot(g, row)), -float(np.dot(g, col)), float(np.dot(g, np.cross(row, col))))
        for off, v in zip((0xBB, 0xBC, 0xBD), image_frame, strict=True):
            acq.add_new(off, "DS", f"{v:.6f}")
    elif vendor == "PHILIPS":
        block = ds.private_block(0x2001, "Philips Imaging DD 001", create=True)
        block.add_new(0x03, "FL", float(b))
        mr = ds.private_block(0x2005, "Philips MR Imaging DD 001", create=True)
        for off, v in zip((0xB0, 0xB1, 0xB2), g, strict=True):
            mr.add_new(off, "FL", float(v))
    else:
        ds.DiffusionBValue = float(b)
        ds.DiffusionGradientOrientation = [float(v) for v in g]


def write_enhanced(
    path: Path,
    magnitude: npt.NDArray[np.int16],
    phase: npt.NDArray[np.int16],
    echo_times: Sequence[float],
    *,
    geometry: Geometry | None = None,
    frame_seed: int = 5,
) -> None:
    """One Philips-style enhanced MR file: ``(echo, k, j, i)`` magnitude and phase frames, shuffled.

    Frames carry FrameType (M or P), EffectiveEchoTime, StackID "1", InStackPositionNumber and
    DimensionIndexValues (stack, in-stack position, echo, type) as Philips writes them.
    """
    geometry = geometry or Geometry()
    n_e, n_k = magnitude.shape[:2]
    ds = _base(geometry, magnitude, generate_uid(), generate_uid(), 7)
    ds.SOPClassUID = ENHANCED_MR
    ds.Manufacturer = "Philips Medical Systems"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "MIXED", "NONE"]
    ds.InstanceNumber = 1
    for name in ("ImageOrientationPatient", "PixelSpacing", "EchoTime"):
        delattr(ds, name)
    frames = [(kind, e, k) for kind in ("M", "P") for e in range(n_e) for k in range(n_k)]
    random.Random(frame_seed).shuffle(frames)
    shared = Dataset()
    orient = Dataset()
    orient.ImageOrientationPatient = [*geometry.row, *geometry.col]
    shared.PlaneOrientationSequence = DicomSequence([orient])
    measures = Dataset()
    measures.PixelSpacing = [geometry.spacing[1], geometry.spacing[0]]
    measures.SliceThickness = geometry.spacing[2]
    shared.PixelMeasuresSequence = DicomSequence([measures])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    per_frame = []
    pixels = []
    for kind, e, k in frames:
        item = Dataset()
        content = Dataset()
        content.StackID = "1"
        content.InStackPositionNumber = k + 1
        content.DimensionIndexValues = [1, k + 1, e + 1, 1 if kind == "M" else 2]
        item.FrameContentSequence = DicomSequence([content])
        position = Dataset()
        position.ImagePositionPatient = geometry.position(k)
        item.PlanePositionSequence = DicomSequence([position])
        echo = Dataset()
        echo.EffectiveEchoTime = float(echo_times[e])
        item.MREchoSequence = DicomSequence([echo])
        frame_type = Dataset()
        frame_type.FrameType = ["ORIGINAL", "PRIMARY", "M_FFE" if kind == "M" else "PHASE MAP", "NONE"]
        frame_type.ComplexImageComponent = "MAGNITUDE" if kind == "M" else "PHASE"
        item.MRImageFrameTypeSequence = DicomSequence([frame_type])
        per_frame.append(item)
        pixels.append((magnitude if kind == "M" else phase)[e, k])
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    dims = []
    for pointer in (0x00209056, 0x00209057, 0x00189082, 0x00089208):  # stack, in-stack, echo, complex type
        item = Dataset()
        item.DimensionIndexPointer = pointer
        item.FunctionalGroupPointer = 0x00209111
        dims.append(item)
    ds.DimensionIndexSequence = DicomSequence(dims)
    ds.NumberOfFrames = len(frames)
    _save(ds, path, np.stack(pixels))


def write_enhanced_per_volume(
    folder: Path,
    voxels: npt.NDArray[np.int16],
    bvals: Sequence[float],
    bvecs: Sequence[tuple[float, float, float]],
    *,
    geometry: Geometry | None = None,
) -> list[Path]:
    """Siemens XA style: one enhanced MR file per volume, its frames (shuffled) carrying the MR
    diffusion sequence; files share the series, each with its own AcquisitionNumber and time."""
    geometry = geometry or Geometry()
    folder.mkdir(parents=True, exist_ok=True)
    study_uid, series_uid = generate_uid(), generate_uid()
    n_vol, n_k = voxels.shape[:2]
    paths = []
    for v in range(n_vol):
        ds = _base(geometry, voxels, series_uid, study_uid, 9)
        ds.SOPClassUID = ENHANCED_MR
        ds.Manufacturer = "SIEMENS"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "DIFFUSION", "NONE"]
        ds.InstanceNumber = v + 1
        ds.AcquisitionNumber = v + 1
        ds.AcquisitionDateTime = f"2026010108{v // 60:02d}{v % 60:02d}.000000"
        for name in ("ImageOrientationPatient", "PixelSpacing"):
            delattr(ds, name)
        shared = Dataset()
        orient = Dataset()
        orient.ImageOrientationPatient = [*geometry.row, *geometry.col]
        shared.PlaneOrientationSequence = DicomSequence([orient])
        measures = Dataset()
        measures.PixelSpacing = [geometry.spacing[1], geometry.spacing[0]]
        measures.SliceThickness = geometry.spacing[2]
        shared.PixelMeasuresSequence = DicomSequence([measures])
        diffusion = Dataset()
        diffusion.DiffusionBValue = float(bvals[v])
        diffusion.DiffusionDirectionality = "DIRECTIONAL" if bvals[v] > 0 else "NONE"
        if bvals[v] > 0:
            direction = Dataset()
            direction.DiffusionGradientOrientation = [float(x) for x in bvecs[v]]
            diffusion.DiffusionGradientDirectionSequence = DicomSequence([direction])
        ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
        order = list(range(n_k))
        random.Random(v).shuffle(order)
        per_frame = []
        for k in order:
            item = Dataset()
            content = Dataset()
            content.StackID = "1"
            content.InStackPositionNumber = k + 1
            content.DimensionIndexValues = [1, k + 1]
            item.FrameContentSequence = DicomSequence([content])
            position = Dataset()
            position.ImagePositionPatient = geometry.position(k)
            item.PlanePositionSequence = DicomSequence([position])
            item.MRDiffusionSequence = DicomSequence([diffusion])
            per_frame.append(item)
        ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
        dims = []
        for pointer in (0x00209056, 0x00209057):
            item = Dataset()
            item.DimensionIndexPointer = pointer
            item.FunctionalGroupPointer = 0x00209111
            dims.append(item)
        ds.DimensionIndexSequence = DicomSequence(dims)
        ds.NumberOfFrames = n_k
        path = folder / f"vol{(v * 7919) % 1000:03d}.dcm"
        _save(ds, path, voxels[v, order])
        paths.append(path)
    return paths


def write_enhanced_timeseries(path: Path, voxels: npt.NDArray[np.int16], *, geometry: Geometry | None = None) -> None:
    """One enhanced MR file holding a whole time series (Philips fMRI style): frames shuffled, each
    with its TemporalPositionIndex and DimensionIndexValues (stack, in-stack position, temporal)."""
    geometry = geometry or Geometry()
    n_t, n_k = voxels.shape[:2]
    ds = _base(geometry, voxels, generate_uid(), generate_uid(), 11)
    ds.SOPClassUID = ENHANCED_MR
    ds.Manufacturer = "Philips Medical Systems"
    ds.InstanceNumber = 1
    for name in ("ImageOrientationPatient", "PixelSpacing"):
        delattr(ds, name)
    shared = Dataset()
    orient = Dataset()
    orient.ImageOrientationPatient = [*geometry.row, *geometry.col]
    shared.PlaneOrientationSequence = DicomSequence([orient])
    measures = Dataset()
    measures.PixelSpacing = [geometry.spacing[1], geometry.spacing[0]]
    measures.SliceThickness = geometry.spacing[2]
    shared.PixelMeasuresSequence = DicomSequence([measures])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])
    frames = [(t, k) for t in range(n_t) for k in range(n_k)]
    random.Random(11).shuffle(frames)
    per_frame = []
    for t, k in frames:
        item = Dataset()
        content = Dataset()
        content.StackID = "1"
        content.InStackPositionNumber = k + 1
        content.TemporalPositionIndex = t + 1
        content.DimensionIndexValues = [1, k + 1, t + 1]
        item.FrameContentSequence = DicomSequence([content])
        position = Dataset()
        position.ImagePositionPatient = geometry.position(k)
        item.PlanePositionSequence = DicomSequence([position])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    dims = []
    for pointer in (0x00209056, 0x00209057, 0x00209128):
        item = Dataset()
        item.DimensionIndexPointer = pointer
        item.FunctionalGroupPointer = 0x00209111
        dims.append(item)
    ds.DimensionIndexSequence = DicomSequence(dims)
    ds.NumberOfFrames = len(frames)
    _save(ds, path, np.stack([voxels[t, k] for t, k in frames]))
