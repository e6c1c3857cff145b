"""The real files the fuzzer mutates, and the good series every case sits beside.

DICOM seeds are pydicom's and pydicom-data's own test files (every transfer syntax RadLens reads,
enhanced multi-frame, RT dose, a SEG); the NIfTI, NRRD and MetaImage seeds are written at run
time with nibabel, pynrrd and SimpleITK from a small synthetic volume (nothing is downloaded).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: pydicom / pydicom-data test files used as DICOM seeds (all small: a case must run in well under a second).
DICOM_SEEDS = (
    "CT_small.dcm",  # explicit VR little endian CT
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "image_dfl.dcm",  # deflated
    "MR_small_RLE.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "JPEG2000.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",  # JPEG baseline, colour
    "JPEG-lossy.dcm",  # JPEG extended 12-bit
    "JPEGLSNearLossless_16.dcm",
    "rtdose.dcm",  # multi-frame RT dose, implicit VR
    "emri_small.dcm",  # enhanced MR, 10 frames
    "emri_small_RLE.dcm",
    "emri_small_jpeg_2k_lossless.dcm",
    "SC_rgb_rle.dcm",
    "SC_rgb_small_odd.dcm",
    "liver.dcm",  # SEG (a non-image object)
    "JPEG-LL.dcm",  # JPEG lossless, process 14
    "693_J2KR.dcm",  # JPEG 2000 lossless CT
    "MR_small_padded.dcm",
)

GOOD_SERIES_UID = "1.2.826.0.1.3680043.8.498.24242424242424242424"
GOOD_NAMES = ("good_1.dcm", "good_2.dcm")
#: A third slice of the good series, used as a seed: its mutants sit in the same series.
SAME_SERIES_SEED = "same_series.dcm"


@dataclass(frozen=True)
class Seed:
    name: str  # file name the mutant keeps (the suffix decides the reader)
    path: Path
    kind: str  # "dicom", "nifti", "nrrd", "meta"
    companions: tuple[Path, ...] = ()  # detached data files, copied beside the mutant


def _good_series(folder: Path) -> tuple[list[Path], Path, list[np.ndarray]]:
    import pydicom
    from pydicom.data import get_testdata_file

    src = get_testdata_file("CT_small.dcm")
    assert src is not None
    base = pydicom.dcmread(src)
    arr = base.pixel_array
    z0 = float(base.ImagePositionPatient[2])
    paths, values = [], []
    for k, name in enumerate((*GOOD_NAMES, SAME_SERIES_SEED)):
        ds = pydicom.dcmread(src)
        ds.SeriesInstanceUID = GOOD_SERIES_UID
        ds.SOPInstanceUID = f"{GOOD_SERIES_UID}.{k + 1}"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [*list(base.ImagePositionPatient)[:2], f"{z0 + 2.5 * k:.4f}"]
        stored = (arr.astype(np.int32) + 7 * k).astype(arr.dtype)
        ds.PixelData = stored.tobytes()
        path = folder / name
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
        values.append(stored.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept))
    return paths[:2], paths[2], values[:2]


def _volume() -> np.ndarray:
    z, y, x = np.mgrid[0:6, 0:9, 0:11]
    return (100 * np.sin(x / 3.0) + 10 * y + z).astype(np.int16)


def _nifti_seeds(folder: Path) -> list[Seed]:
    import nibabel as nib

    vol = _volume().transpose(2, 1, 0)  # nibabel wants (i, j, k)
    affine = np.diag([-0.8, -0.9, 2.0, 1.0])
    affine[:3, 3] = (10.0, -20.0, 30.0)
    seeds = []
    img = nib.Nifti1Image(vol, affine)
    img.set_qform(affine, code=1)
    nib.save(img, folder / "plain.nii")
    seeds.append(Seed("plain.nii", folder / "plain.nii", "nifti"))
    nib.save(img, folder / "plain.nii.gz")
    seeds.append(Seed("plain.nii.gz", folder / "plain.nii.gz", "nifti"))
    four = nib.Nifti1Image(np.stack([vol, vol + 1, vol + 2], axis=-1), affine)
    nib.save(four, folder / "four_d.nii")
    seeds.append(Seed("four_d.nii", folder / "four_d.nii", "nifti"))
    sheared = affine.copy()
    sheared[2, 1] = 0.6  # a gantry-tilt-like shear: sform only
    shear_img = nib.Nifti1Image(vol.astype(np.float32), sheared)
    shear_img.set_qform(None, code=0)
    shear_img.set_sform(sheared, code=1)
    nib.save(shear_img, folder / "sheared.nii")
    seeds.append(Seed("sheared.nii", folder / "sheared.nii", "nifti"))
    two = nib.Nifti2Image(vol, affine)
    nib.save(two, folder / "nifti2.nii")
    seeds.append(Seed("nifti2.nii", folder / "nifti2.nii", "nifti"))
    return seeds


def _nrrd_seeds(folder: Path) -> list[Seed]:
    import nrrd

    vol = _volume().transpose(2, 1, 0)  # pynrrd's default Fortran order: (i, j, k)
    header = {
        "space": "left-posterior-superior",
        "space directions": np.diag([0.8, 0.9, 2.0]),
        "space origin": np.array([10.0, -20.0, 30.0]),
        "kinds": ["domain", "domain", "domain"],
    }
    seeds = []
    nrrd.write(str(folder / "raw.nrrd"), vol, dict(header, encoding="raw"))
    seeds.append(Seed("raw.nrrd", folder / "raw.nrrd", "nrrd"))
    nrrd.write(str(folder / "gzip.nrrd"), vol, dict(header, encoding="gzip"))
    seeds.append(Seed("gzip.nrrd", folder / "gzip.nrrd", "nrrd"))
    nrrd.write(str(folder / "detached.nhdr"), vol, dict(header, encoding="raw"), detached_header=True)
    data = folder / "detached.raw"
    if not data.exists():
        data = next(folder.glob("detached.raw*"))
    seeds.append(Seed("detached.nhdr", folder / "detached.nhdr", "nrrd", (data,)))
    nrrd.write(str(folder / "ascii.nrrd"), vol[:4, :3, :2], dict(header, encoding="ascii"))
    seeds.append(Seed("ascii.nrrd", folder / "ascii.nrrd", "nrrd"))
    vector = np.stack([vol, vol + 1, vol + 2])  # components first: a "vector" axis
    vector_header = {
        "space": "left-posterior-superior",
        "space directions": np.vstack([np.full(3, np.nan), np.diag([0.8, 0.9, 2.0])]),
        "space origin": np.array([10.0, -20.0, 30.0]),
        "kinds": ["vector", "domain", "domain", "domain"],
        "encoding": "gzip",
    }
    nrrd.write(str(folder / "vector.nrrd"), vector, vector_header)
    seeds.append(Seed("vector.nrrd", folder / "vector.nrrd", "nrrd"))
    return seeds


def _meta_seeds(folder: Path) -> list[Seed]:
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(_volume())
    img.SetSpacing((0.8, 0.9, 2.0))
    img.SetOrigin((10.0, -20.0, 30.0))
    seeds = []
    sitk.WriteImage(img, str(folder / "plain.mha"))
    seeds.append(Seed("plain.mha", folder / "plain.mha", "meta"))
    sitk.WriteImage(img, str(folder / "zipped.mha"), useCompression=True)
    seeds.append(Seed("zipped.mha", folder / "zipped.mha", "meta"))
    sitk.WriteImage(img, str(folder / "split.mhd"))
    seeds.append(Seed("split.mhd", folder / "split.mhd", "meta", (folder / "split.raw",)))
    four = sitk.GetImageFromArray(np.stack([_volume(), _volume() + 1]))  # 4-D: (t, k, j, i)
    sitk.WriteImage(four, str(folder / "four_d.mha"))
    seeds.append(Seed("four_d.mha", folder / "four_d.mha", "meta"))
    rgb = sitk.GetImageFromArray(np.stack([_volume()] * 3, axis=-1).astype(np.uint8), isVector=True)
    sitk.WriteImage(rgb, str(folder / "rgb.mha"))
    seeds.append(Seed("rgb.mha", folder / "rgb.mha", "meta"))
    return seeds


@dataclass(frozen=True)
class Corpus:
    seeds: tuple[Seed, ...]
    good_paths: tuple[Path, ...]  # the good pair, copied into every case folder
    good_values: tuple[np.ndarray, ...]  # their rescaled values (HU)


def build_corpus(folder: Path) -> Corpus:
    """Write every seed and the good series under ``folder``."""
    from pydicom.data import get_testdata_file

    folder.mkdir(parents=True, exist_ok=True)
    good_dir = folder / "good"
    good_dir.mkdir(exist_ok=True)
    good_paths, same_series, good_values = _good_series(good_dir)
    dicom_dir = folder / "dicom"
    dicom_dir.mkdir(exist_ok=True)
    seeds = [Seed("same_series.dcm", same_series, "dicom")]
    for name in DICOM_SEEDS:
        src = get_testdata_file(name)
        if src is None:
            raise FileNotFoundError(f"pydicom test file {name} is missing (pip install pydicom-data)")
        dst = dicom_dir / name
        shutil.copyfile(src, dst)
        seeds.append(Seed(name if name.endswith(".dcm") else name + ".dcm", dst, "dicom"))
    for sub, make in (("nifti", _nifti_seeds), ("nrrd", _nrrd_seeds), ("meta", _meta_seeds)):
        d = folder / sub
        d.mkdir(exist_ok=True)
        seeds.extend(make(d))
    return Corpus(tuple(seeds), tuple(good_paths), tuple(good_values))
