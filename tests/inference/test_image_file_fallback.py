"""Image files read without SimpleITK (the packaged app) give what SimpleITK gives.

Every file is read twice, through SimpleITK (the oracle) and with ``RADLENS_NO_SIMPLEITK=1``
(:mod:`inference.io.image_file_fallback`): the voxels must be identical, the geometry within
1e-5 mm, and a bad file must raise the same error class.
"""

from __future__ import annotations

import gzip
import shutil
import subprocess
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pydicom.data
import pytest
import SimpleITK as sitk

from inference.errors import LoadError
from inference.io.image_file import read_image_file
from inference.io.image_file_fallback import NO_SIMPLEITK_ENV, use_simpleitk
from inference.io.resample import resample_like
from inference.io.scan import _image_file_stack
from inference.volume import Volume

COLIN27 = Path("/usr/share/mricron/templates/ch2.nii.gz")
CT5N = Path(pydicom.data.__file__).parent / "test_files" / "dicomdirtests" / "98892001" / "CT5N"
SUFFIXES = [".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd"]
GEOMETRY_MM = 1e-5


def oblique(seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q if np.linalg.det(q) > 0 else q * np.array([-1.0, 1.0, 1.0])


def write(
    path: Path, voxels: np.ndarray, direction: np.ndarray | None = None, compress: bool = False, vector: bool = False
) -> Path:
    img = sitk.GetImageFromArray(voxels, isVector=vector)
    dim = img.GetDimension()
    img.SetSpacing((0.7, 0.9, 2.5, 1.5)[:dim])
    img.SetOrigin((-12.5, 40.0, 7.25, 0.0)[:dim])
    if direction is not None:
        img.SetDirection(direction.ravel().tolist())
    sitk.WriteImage(img, str(path), useCompression=compress)
    return path


def read_both(
    path: Path, monkeypatch: pytest.MonkeyPatch, read: Callable[[Path], Any] = read_image_file
) -> tuple[Any, Any]:
    monkeypatch.delenv(NO_SIMPLEITK_ENV, raising=False)
    assert use_simpleitk()
    oracle = read(path)
    monkeypatch.setenv(NO_SIMPLEITK_ENV, "1")
    assert not use_simpleitk()
    return oracle, read(path)


def assert_same(oracle: Volume, ours: Volume) -> None:
    assert ours.voxels.dtype == oracle.voxels.dtype
    assert ours.voxels.shape == oracle.voxels.shape
    np.testing.assert_array_equal(ours.voxels, oracle.voxels)
    np.testing.assert_allclose(ours.spacing, oracle.spacing, atol=GEOMETRY_MM, rtol=0)
    np.testing.assert_allclose(ours.origin, oracle.origin, atol=GEOMETRY_MM, rtol=0)
    np.testing.assert_allclose(ours.direction, oracle.direction, atol=GEOMETRY_MM, rtol=0)
    assert ours.qa_warnings == oracle.qa_warnings
    assert ours.metadata.extra == oracle.metadata.extra


def errors_both(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[LoadError, LoadError]:
    caught: list[LoadError] = []
    for forced in ("", "1"):
        monkeypatch.setenv(NO_SIMPLEITK_ENV, forced)
        with pytest.raises(LoadError) as info:
            read_image_file(path)
        assert info.value.path == path
        caught.append(info.value)
    return caught[0], caught[1]


# --- files written by SimpleITK ----------------------------------------------------------------


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float32, np.float64])
@pytest.mark.parametrize("compress", [False, True])
def test_oblique_3d(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str, dtype: type, compress: bool) -> None:
    voxels = (np.random.default_rng(1).normal(size=(7, 9, 11)) * 500).astype(dtype)
    path = write(tmp_path / f"v{suffix}", voxels, oblique(2), compress)
    oracle, ours = read_both(path, monkeypatch)
    assert_same(oracle, ours)
    np.testing.assert_array_equal(ours.voxels, voxels.astype(ours.voxels.dtype))


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_2d(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str) -> None:
    c, s = np.cos(0.3), np.sin(0.3)
    path = write(tmp_path / f"flat{suffix}", np.arange(12, dtype=np.int16).reshape(3, 4), np.array([[c, -s], [s, c]]))
    assert_same(*read_both(path, monkeypatch))


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_4d_series_first_volume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str) -> None:
    series = np.random.default_rng(5).integers(-100, 100, size=(3, 4, 5, 6), dtype=np.int16)
    path = write(tmp_path / f"series{suffix}", series, compress=suffix.endswith(".gz"))
    oracle, ours = read_both(path, monkeypatch)
    assert_same(oracle, ours)
    assert "3 volumes" in ours.qa_warnings[0]


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize(("dtype", "channels"), [(np.uint8, 3), (np.float32, 2)])
def test_vector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str, dtype: type, channels: int) -> None:
    voxels = np.random.default_rng(4).integers(0, 255, size=(3, 4, 5, channels)).astype(dtype)
    path = write(tmp_path / f"colour{suffix}", voxels, oblique(6), vector=True)
    oracle, ours = read_both(path, monkeypatch)
    assert_same(oracle, ours)
    assert ours.voxels.shape == (3, 4, 5, channels)


# --- NIfTI: sform and qform as ITK chooses them --------------------------------------------------


def nifti(
    path: Path,
    voxels: np.ndarray,
    *,
    qform: np.ndarray | None,
    sform: np.ndarray | None,
    scode: int = 1,
    qcode: int = 1,
) -> Path:
    img = nib.Nifti1Image(voxels, None)
    hdr = img.header
    hdr.set_zooms((0.8, 1.1, 2.0))
    if qform is not None:
        img.set_qform(qform, code=qcode)
        hdr.set_zooms((0.8, 1.1, 2.0))
    else:
        img.set_qform(None, code=0)
    if sform is not None:
        img.set_sform(sform, code=scode)
    else:
        img.set_sform(None, code=0)
    nib.save(img, path)
    return path


def ras_affine(direction: np.ndarray, origin: tuple[float, float, float]) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] = direction * np.array([0.8, 1.1, 2.0])[None, :]
    out[:3, 3] = origin
    return out


@pytest.mark.parametrize(
    "case",
    ["qform only", "sform only", "both equal", "both differ scanner", "both differ aligned",
     "sform unknown code 2 qform", "sheared sform only", "sheared sform with qform", "neither"],
)  # fmt: skip
def test_nifti_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    voxels = np.random.default_rng(8).integers(-500, 500, size=(6, 5, 4)).astype(np.int16)
    a = ras_affine(oblique(10), (10.0, -20.5, 33.0))
    b = ras_affine(oblique(11), (-4.0, 7.0, 1.5))
    sheared = a.copy()
    sheared[:3, 2] += 0.4 * a[:3, 1]
    kw: dict[str, Any] = {
        "qform only": {"qform": a, "sform": None},
        "sform only": {"qform": None, "sform": a},
        "both equal": {"qform": a, "sform": a},
        "both differ scanner": {"qform": a, "sform": b, "scode": 1},
        "both differ aligned": {"qform": a, "sform": b, "scode": 2},
        "sform unknown code 2 qform": {"qform": a, "sform": b, "scode": 4, "qcode": 2},
        "sheared sform only": {"qform": None, "sform": sheared},
        "sheared sform with qform": {"qform": a, "sform": sheared},
        "neither": {"qform": None, "sform": None},
    }[case]
    path = nifti(tmp_path / "forms.nii.gz", voxels, **kw)
    assert_same(*read_both(path, monkeypatch))


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float64])
def test_nifti_scaled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dtype: type) -> None:
    img = nib.Nifti1Image(np.arange(60).reshape(3, 4, 5).astype(dtype), np.diag([2.0, 3.0, 4.0, 1.0]))
    img.header.set_slope_inter(0.5, -3.25)
    nib.save(img, tmp_path / "scaled.nii")
    oracle, ours = read_both(tmp_path / "scaled.nii", monkeypatch)
    assert_same(oracle, ours)


@pytest.mark.parametrize("units", ["meter", "micron"])
def test_nifti_spatial_units(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, units: str) -> None:
    img = nib.Nifti1Image(np.zeros((3, 4, 5), np.int16), np.diag([0.002, 0.003, 0.004, 1.0]))
    img.header.set_xyzt_units(xyz=units)
    nib.save(img, tmp_path / "units.nii")
    assert_same(*read_both(tmp_path / "units.nii", monkeypatch))


def test_nifti_rgb24(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rgb = np.zeros((4, 3, 2), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    rgb["R"] = np.arange(24).reshape(4, 3, 2)
    rgb["B"] = 200
    nib.save(nib.Nifti1Image(rgb, np.eye(4)), tmp_path / "rgb.nii")
    assert_same(*read_both(tmp_path / "rgb.nii", monkeypatch))


def test_colin27(monkeypatch: pytest.MonkeyPatch) -> None:
    if not COLIN27.is_file():
        pytest.fail(f"{COLIN27} is missing: the Colin27 template comes from Debian; run `apt-get install mricron-data`")
    assert_same(*read_both(COLIN27, monkeypatch))


def test_dcm2niix_nifti(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exe = shutil.which("dcm2niix")
    assert exe, "dcm2niix missing: apt-get install dcm2niix"
    subprocess.run([exe, "-z", "y", "-f", "ct", "-o", str(tmp_path), str(CT5N)], check=True, capture_output=True)
    files = sorted(tmp_path.glob("ct*.nii.gz"))
    assert files, "dcm2niix wrote nothing"
    for f in files:
        assert_same(*read_both(f, monkeypatch))


# --- NRRD and MetaImage headers written by hand --------------------------------------------------


def nrrd_bytes(data: np.ndarray, fields: str) -> bytes:
    return f"NRRD0004\n{fields}\n\n".encode() + data.tobytes()


@pytest.mark.parametrize(
    "space", ["left-posterior-superior", "right-anterior-superior", "left-anterior-superior", "RAS"]
)
def test_nrrd_spaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, space: str) -> None:
    data = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    fields = (
        f"type: short\ndimension: 3\nspace: {space}\nsizes: 5 4 3\n"
        "space directions: (0.6,0.1,0) (-0.1,0.7,0.05) (0,0,2.5)\nkinds: domain domain domain\n"
        "endian: little\nencoding: raw\nspace origin: (10.5,-3,42)"
    )
    (tmp_path / "s.nrrd").write_bytes(nrrd_bytes(data, fields))
    assert_same(*read_both(tmp_path / "s.nrrd", monkeypatch))


@pytest.mark.parametrize("encoding", ["raw", "gzip"])
def test_nrrd_detached_big_endian(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encoding: str) -> None:
    data = np.arange(60, dtype=">f4").reshape(3, 4, 5)
    payload = data.tobytes() if encoding == "raw" else gzip.compress(data.tobytes())
    (tmp_path / "d.data").write_bytes(payload)
    (tmp_path / "d.nhdr").write_text(
        "NRRD0004\ntype: float\ndimension: 3\nspace: left-posterior-superior\nsizes: 5 4 3\n"
        "space directions: (1,0,0) (0,1,0) (0,0,3)\nkinds: domain domain domain\n"
        f"endian: big\nencoding: {encoding}\nspace origin: (1,2,3)\ndata file: d.data\n"
    )
    assert_same(*read_both(tmp_path / "d.nhdr", monkeypatch))


def test_nrrd_component_axis_last(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = np.arange(2 * 3 * 4 * 3, dtype=np.uint8).reshape(3, 2, 3, 4)  # C order: c, k, j, i
    fields = (
        "type: uchar\ndimension: 4\nspace: left-posterior-superior\nsizes: 4 3 2 3\n"
        "space directions: (1,0,0) (0,1,0) (0,0,1) none\nkinds: domain domain domain RGB-color\n"
        "encoding: raw\nspace origin: (0,0,0)"
    )
    (tmp_path / "c.nrrd").write_bytes(nrrd_bytes(data, fields))
    assert_same(*read_both(tmp_path / "c.nrrd", monkeypatch))


@pytest.mark.parametrize("msb", [False, True])
@pytest.mark.parametrize("compressed", [False, True])
def test_mhd_fields(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, msb: bool, compressed: bool) -> None:
    data = np.arange(60, dtype=">i2" if msb else "<i2").reshape(3, 4, 5)
    payload = zlib.compress(data.tobytes()) if compressed else data.tobytes()
    (tmp_path / "m.raw").write_bytes(payload)
    d = oblique(12)
    (tmp_path / "m.mhd").write_text(
        "ObjectType = Image\nNDims = 3\nBinaryData = True\n"
        f"BinaryDataByteOrderMSB = {msb}\nCompressedData = {compressed}\n"
        f"TransformMatrix = {' '.join(str(x) for x in d.T.ravel())}\n"
        "Position = 1.5 -2 3\nAnatomicalOrientation = RAI\nElementSize = 0.5 0.75 2\n"
        "DimSize = 5 4 3\nElementType = MET_SHORT\nElementDataFile = m.raw\n"
    )
    assert_same(*read_both(tmp_path / "m.mhd", monkeypatch))


# --- header-only information for scan, and resampling ---------------------------------------


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_scan_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str) -> None:
    path = write(tmp_path / f"h{suffix}", np.zeros((3, 4, 5), np.int16), oblique(3))
    oracle, ours = read_both(path, monkeypatch, lambda p: _image_file_stack(str(p), 0))
    assert ours == oracle


@pytest.mark.parametrize("order", [0, 1])
@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.bool_])
def test_resample_like(monkeypatch: pytest.MonkeyPatch, order: int, dtype: type) -> None:
    rng = np.random.default_rng(20)
    voxels = (rng.normal(size=(9, 10, 11)) * 300).astype(dtype)
    moving = Volume(voxels, (0.9, 1.1, 2.3), (3.0, -4.0, 5.0), oblique(21))
    reference = Volume(np.zeros((12, 13, 14), np.int16), (0.8, 0.85, 1.9), (1.0, -6.0, 2.0), oblique(22))
    oracle, ours = read_both(
        Path(), monkeypatch, lambda _: resample_like(moving, reference, order=order, fill_value=-7)
    )
    assert ours.voxels.dtype == oracle.voxels.dtype
    assert ours.affine.tolist() == oracle.affine.tolist()
    if order == 0 or dtype == np.bool_:
        mismatch = np.mean(ours.voxels != oracle.voxels)
        assert mismatch < 1e-3  # only points within rounding error of a voxel boundary may differ
    else:
        tolerance = 1 if dtype == np.int16 else 1e-3
        np.testing.assert_allclose(ours.voxels.astype(np.float64), oracle.voxels, atol=tolerance, rtol=1e-5)


def test_resample_vector(monkeypatch: pytest.MonkeyPatch) -> None:
    voxels = np.random.default_rng(23).random((5, 6, 7, 3)).astype(np.float32)
    moving = Volume(voxels, (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), oblique(24))
    reference = Volume(np.zeros((6, 6, 6), np.int16), (1.2, 0.9, 1.5), (0.5, 0.5, 0.5), oblique(25))
    oracle, ours = read_both(Path(), monkeypatch, lambda _: resample_like(moving, reference))
    np.testing.assert_allclose(ours.voxels, oracle.voxels, atol=1e-5)


# --- bad files: the same error class -----------------------------------------------------------


def good(tmp_path: Path, suffix: str, compress: bool = False) -> Path:
    voxels = (np.random.default_rng(6).normal(size=(8, 16, 16)) * 300).astype(np.int16)
    return write(tmp_path / f"good{suffix}", voxels, compress=compress)


@pytest.mark.parametrize(
    ("suffix", "compress"),
    [(".nii.gz", True), (".nrrd", True), (".mha", True), (".nrrd", False), (".mha", False), (".nii", False)],
)
@pytest.mark.parametrize("keep", [0.3, 0.9])
def test_truncated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str, compress: bool, keep: float) -> None:
    data = good(tmp_path, suffix, compress).read_bytes()
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(data[: int(len(data) * keep)])
    oracle, ours = errors_both(path, monkeypatch)
    assert type(ours) is type(oracle), (oracle, ours)


@pytest.mark.parametrize("suffix", [".mha", ".nrrd", ".mhd", ".nhdr"])
def test_header_claims_more_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str) -> None:
    path = good(tmp_path, suffix)
    header_file = path
    text = header_file.read_bytes()
    if suffix in (".mha", ".mhd"):
        text = text.replace(b"DimSize = 16 16 8", b"DimSize = 16 16 80")
    else:
        text = text.replace(b"sizes: 16 16 8", b"sizes: 16 16 80")
    header_file.write_bytes(text)
    oracle, ours = errors_both(path, monkeypatch)
    assert type(ours) is type(oracle), (oracle, ours)


@pytest.mark.parametrize("suffix", [".mha", ".mhd"])
def test_unknown_element_type(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str) -> None:
    path = good(tmp_path, suffix)
    path.write_bytes(path.read_bytes().replace(b"MET_SHORT", b"MET_QUATERNION"))
    oracle, ours = errors_both(path, monkeypatch)
    assert type(ours) is type(oracle), (oracle, ours)


@pytest.mark.parametrize(("suffix", "data_suffix"), [(".mhd", ".raw"), (".nhdr", ".raw")])
def test_missing_data_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str, data_suffix: str) -> None:
    path = good(tmp_path, suffix)
    (tmp_path / f"good{data_suffix}").unlink()
    oracle, ours = errors_both(path, monkeypatch)
    assert type(ours) is type(oracle), (oracle, ours)
    assert len(ours.reason) < 300
