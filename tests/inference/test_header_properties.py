"""Property tests: random slice stacks written as minimal DICOM files, scanned and loaded.

Whatever the orientation, spacing, file-name order and instance numbers, the loader must sort
slices along the normal, place voxel (i, j, k) where the headers say, take the slice spacing from
the positions (never SliceThickness) and keep every pixel value. Plus properties of
:func:`check_stack_geometry` on regular, gapped, duplicated and tilted positions.
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from inference.errors import GeometryWarning
from inference.io.dicom_loader import load_stack
from inference.io.geometry_qa import QACode, check_stack_geometry
from inference.io.scan import scan

SETTINGS = settings(
    max_examples=20,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ------------------------------------------------------------------------------ random stacks


def _rotation(q: tuple[float, float, float, float]) -> npt.NDArray[np.float64]:
    """Rotation matrix of a (not yet normalised) quaternion."""
    w, x, y, z = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


quaternions = st.tuples(*[st.floats(-1, 1, allow_nan=False)] * 4).filter(lambda q: float(np.linalg.norm(q)) > 0.2)


@dataclass(frozen=True)
class RandomStack:
    row: npt.NDArray[np.float64]  # direction of increasing column index i
    col: npt.NDArray[np.float64]  # direction of increasing row index j
    normal: npt.NDArray[np.float64]
    origin: npt.NDArray[np.float64]
    spacing: float  # between slices, along the normal
    pixel_spacing: tuple[float, float]  # DICOM order: (between rows, between columns)
    rows: int
    columns: int
    pixels: npt.NDArray[np.int16]  # (n, rows, columns) stored values, slice k at position k
    intercept: int
    file_order: tuple[int, ...]  # slice k is written to file name f"{file_order[k]:03d}.dcm"
    instance_numbers: tuple[int, ...]

    @property
    def n(self) -> int:
        return len(self.pixels)

    def position(self, k: int) -> npt.NDArray[np.float64]:
        return self.origin + k * self.spacing * self.normal


@st.composite
def random_stacks(draw: st.DrawFn) -> RandomStack:
    rot = _rotation(draw(quaternions))
    # Cosines are written with 10 decimals: use those values, so the files hold exactly this geometry.
    row = np.round(rot[:, 0], 10)
    col = np.round(rot[:, 1], 10)
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)
    n = draw(st.integers(2, 30))
    rows, columns = draw(st.integers(2, 7)), draw(st.integers(2, 7))
    seed = draw(st.integers(0, 2**32 - 1))
    pixels = np.random.default_rng(seed).integers(-2000, 3000, size=(n, rows, columns), dtype=np.int16)
    pixels[:, 0, 0] = np.arange(n, dtype=np.int16)  # every slice distinct
    return RandomStack(
        row=row,
        col=col,
        normal=normal,
        origin=np.array([draw(st.floats(-300, 300, allow_nan=False)) for _ in range(3)]),
        spacing=draw(st.floats(0.3, 5.0)),
        pixel_spacing=(draw(st.floats(0.2, 2.0)), draw(st.floats(0.2, 2.0))),
        rows=rows,
        columns=columns,
        pixels=pixels,
        intercept=draw(st.sampled_from([0, -1024])),
        file_order=tuple(draw(st.permutations(range(n)))),
        instance_numbers=tuple(draw(st.permutations(range(1, n + 1)))),
    )


def _write_slice(path: Path, s: RandomStack, k: int, uids: dict[str, str]) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = f"{uids['series']}.{k + 1}"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = uids["study"]
    ds.SeriesInstanceUID = uids["series"]
    ds.FrameOfReferenceUID = uids["frame"]
    ds.Modality = "CT"
    ds.SeriesNumber = 1
    ds.InstanceNumber = s.instance_numbers[k]
    ds.ImagePositionPatient = [f"{v:.6f}" for v in s.position(k)]
    ds.ImageOrientationPatient = [f"{v:.10f}" for v in (*s.row, *s.col)]
    ds.PixelSpacing = [f"{v:.6f}" for v in s.pixel_spacing]
    ds.SliceThickness = f"{2 * s.spacing + 1.5:.6f}"  # deliberately wrong: spacing comes from positions
    ds.Rows, ds.Columns = s.rows, s.columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1
    ds.RescaleSlope = 1
    ds.RescaleIntercept = s.intercept
    ds.PixelData = s.pixels[k].astype("<i2").tobytes()
    ds.save_as(path, enforce_file_format=True)


def _dicom_floats(values: npt.ArrayLike, fmt: str) -> npt.NDArray[np.float64]:
    """The values as written to (and read back from) a DS element."""
    return np.array([float(f"{v:{fmt}}") for v in np.asarray(values, dtype=np.float64)])


@SETTINGS
@given(s=random_stacks())
def test_random_stack_loads_sorted_and_placed(s: RandomStack) -> None:
    uids = {"study": generate_uid(), "series": generate_uid(prefix=None), "frame": generate_uid()}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for k in range(s.n):
            _write_slice(folder / f"{s.file_order[k]:03d}.dcm", s, k, uids)
        result = scan(folder)
        assert result.errors == [] and result.not_dicom == [] and result.non_image == []
        stacks = result.stacks()
        assert len(stacks) == 1, [st_.summary() for st_ in stacks]
        stack = stacks[0]
        assert stack.n_slices == s.n
        assert stack.qa == (), [str(q) for q in stack.qa]
        with warnings.catch_warnings():
            warnings.simplefilter("error", GeometryWarning)
            vol = load_stack(stack)

    # Sorted along the normal, whatever the file names and instance numbers say.
    assert vol.metadata.extra["sop_instance_uids"] == [f"{uids['series']}.{k + 1}" for k in range(s.n)]
    assert stack.paths and [os.path.basename(stack.headers[r.header_index].path) for r in stack.slices] == [
        f"{s.file_order[k]:03d}.dcm" for k in range(s.n)
    ]

    # Spacing from positions, not SliceThickness; in-plane spacing in (i, j) order.
    ps_rows, ps_cols = _dicom_floats(s.pixel_spacing, ".6f")
    assert vol.spacing[0] == pytest.approx(ps_cols, abs=1e-9)
    assert vol.spacing[1] == pytest.approx(ps_rows, abs=1e-9)
    assert vol.spacing[2] == pytest.approx(s.spacing, abs=1e-4)
    assert stack.slice_spacing == pytest.approx(s.spacing, abs=1e-4)

    # Voxel (0, 0, k) at slice k's ImagePositionPatient; (i, j, k) along the row/column cosines.
    written = np.array([_dicom_floats(s.position(k), ".6f") for k in range(s.n)])
    ks = np.arange(s.n)
    np.testing.assert_allclose(vol.index_to_lps(np.column_stack([0 * ks, 0 * ks, ks])), written, rtol=0, atol=1e-4)
    np.testing.assert_allclose(vol.affine[:3, 3], written[0], rtol=0, atol=1e-4)
    i, j = s.columns - 1, s.rows - 1
    corner = written + i * ps_cols * s.row + j * ps_rows * s.col
    np.testing.assert_allclose(vol.index_to_lps(np.column_stack([0 * ks + i, 0 * ks + j, ks])), corner, atol=1e-4)
    np.testing.assert_allclose(vol.lps_to_index(written[-1]), [0, 0, s.n - 1], atol=1e-4)

    # Pixel values per slice, rescaled.
    assert vol.shape == (s.n, s.rows, s.columns)
    np.testing.assert_array_equal(vol.voxels, s.pixels.astype(np.int32) + s.intercept)


# ------------------------------------------------------------------------- geometry QA


@st.composite
def regular_positions(draw: st.DrawFn, min_n: int = 2) -> tuple[npt.NDArray[np.float64], tuple[float, ...], float]:
    """Positions of a regular stack sorted along its normal, its orientation and spacing."""
    rot = _rotation(draw(quaternions))
    orientation = (*rot[:, 0], *rot[:, 1])
    normal = rot[:, 2]
    n = draw(st.integers(min_n, 30))
    spacing = draw(st.floats(0.3, 5.0))
    origin = np.array([draw(st.floats(-300, 300, allow_nan=False)) for _ in range(3)])
    positions = origin + spacing * np.arange(n)[:, None] * normal[None, :]
    return positions, tuple(float(v) for v in orientation), spacing


def _codes(positions: npt.NDArray[np.float64], orientation: tuple[float, ...]) -> set[QACode]:
    n = len(positions)
    return {q.code for q in check_stack_geometry(positions, [orientation] * n, [(1.0, -1024.0)] * n)}


@SETTINGS
@given(stack=regular_positions())
def test_regular_positions_have_no_issues(stack: tuple[npt.NDArray[np.float64], tuple[float, ...], float]) -> None:
    positions, orientation, _ = stack
    assert _codes(positions, orientation) == set()


@SETTINGS
@given(stack=regular_positions(min_n=5), data=st.data())
def test_missing_interior_slice(
    stack: tuple[npt.NDArray[np.float64], tuple[float, ...], float], data: st.DataObject
) -> None:
    positions, orientation, _ = stack
    gone = data.draw(st.integers(1, len(positions) - 2), label="removed slice")
    codes = _codes(np.delete(positions, gone, axis=0), orientation)
    assert QACode.MISSING_SLICES in codes
    assert QACode.DUPLICATE_POSITIONS not in codes and QACode.GANTRY_TILT not in codes


@SETTINGS
@given(stack=regular_positions(), data=st.data())
def test_duplicated_slice(stack: tuple[npt.NDArray[np.float64], tuple[float, ...], float], data: st.DataObject) -> None:
    positions, orientation, _ = stack
    twice = data.draw(st.integers(0, len(positions) - 1), label="duplicated slice")
    codes = _codes(np.insert(positions, twice, positions[twice], axis=0), orientation)
    assert QACode.DUPLICATE_POSITIONS in codes
    assert QACode.MISSING_SLICES not in codes and QACode.GANTRY_TILT not in codes


@SETTINGS
@given(stack=regular_positions(), tilt_deg=st.floats(0.5, 30.0), sign=st.sampled_from([-1.0, 1.0]))
def test_shift_along_rows_is_gantry_tilt(
    stack: tuple[npt.NDArray[np.float64], tuple[float, ...], float], tilt_deg: float, sign: float
) -> None:
    positions, orientation, spacing = stack
    row = np.asarray(orientation[:3])
    shift = sign * spacing * np.tan(np.radians(tilt_deg))
    tilted = positions + shift * np.arange(len(positions))[:, None] * row[None, :]
    issues = check_stack_geometry(tilted, [orientation] * len(tilted), [(1.0, 0.0)] * len(tilted))
    codes = {q.code for q in issues}
    assert codes == {QACode.GANTRY_TILT}, [str(q) for q in issues]
    message = next(q.message for q in issues if q.code == QACode.GANTRY_TILT)
    match = re.search(r"tilt of ([0-9.]+)°", message)
    assert match is not None and float(match.group(1)) == pytest.approx(tilt_deg, abs=0.006), message


def test_tiny_shift_below_threshold_is_not_tilt() -> None:
    """A shift of 0.01° stays under the 0.05° threshold: no false gantry-tilt warning."""
    orientation = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    shift = 2.0 * np.tan(np.radians(0.01))
    positions = np.array([[k * shift, 0.0, 2.0 * k] for k in range(10)])
    assert _codes(positions, orientation) == set()
