"""Explicit resampling: irregular stacks onto a regular grid, and one volume onto another's grid."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference.io.resample import resample_like, resample_to_regular_grid
from inference.volume import Volume


def oblique(seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q


def ramp_stack(t: np.ndarray, direction: np.ndarray, axis: np.ndarray, dtype: type = np.float32):
    """Slices at distances ``t`` along ``axis``; each voxel's value is linear in its k position."""
    n = len(t)
    origin = np.array([5.0, -7.0, 20.0])
    positions = origin[None, :] + t[:, None] * axis[None, :]
    j, i = np.mgrid[0:4, 0:5]
    voxels = (10.0 * t[:, None, None] + i[None] + 100.0 * j[None]).astype(dtype)
    vol = Volume(voxels=voxels, spacing=(0.5, 0.5, 1.0), origin=tuple(origin), direction=direction)
    assert vol.shape[0] == n
    return vol, positions


def test_missing_slice_filled_by_interpolation() -> None:
    t = np.array([0.0, 2.0, 4.0, 8.0, 10.0])  # slice at 6 mm is missing
    d = oblique(1)
    vol, pos = ramp_stack(t, d, d[:, 2])
    out = resample_to_regular_grid(vol, pos)
    assert out.shape == (6, 4, 5)
    np.testing.assert_allclose(out.spacing, (0.5, 0.5, 2.0), rtol=1e-12)
    assert out.voxels.dtype == np.float32
    j, i = np.mgrid[0:4, 0:5]
    for k in range(6):
        np.testing.assert_allclose(out.voxels[k], 10.0 * 2 * k + i + 100.0 * j, atol=1e-3)
    # slices on input positions are copied exactly
    np.testing.assert_array_equal(out.voxels[4], vol.voxels[3])
    # geometry: slice k lies at positions[0] + k * 2 mm along the stack axis
    np.testing.assert_allclose(out.index_to_lps([0, 0, 3]), pos[0] + 6.0 * d[:, 2], atol=1e-9)
    np.testing.assert_allclose(out.direction[:, :2], d[:, :2])
    assert any("resampled" in w for w in out.qa_warnings)


def test_int16_stays_int16_and_rounds() -> None:
    t = np.array([0.0, 1.0, 3.0])
    vol, pos = ramp_stack(t, np.eye(3), np.array([0.0, 0.0, 1.0]), dtype=np.int16)
    out = resample_to_regular_grid(vol, pos, target_spacing=0.5)
    assert out.voxels.dtype == np.int16
    assert out.shape[0] == 7
    j, i = np.mgrid[0:4, 0:5]
    for k in range(7):
        np.testing.assert_array_equal(out.voxels[k], np.rint(10.0 * 0.5 * k + i + 100.0 * j).astype(np.int16))


def test_gantry_tilt_axis_kept() -> None:
    tilt = np.deg2rad(15)
    axis = np.array([0.0, np.sin(tilt), np.cos(tilt)])
    t = np.array([0.0, 1.0, 2.5, 3.0, 5.0])
    vol, pos = ramp_stack(t, np.column_stack([[1.0, 0, 0], [0, 1.0, 0], axis]), axis)
    out = resample_to_regular_grid(vol, pos, target_spacing=1.0)
    np.testing.assert_allclose(out.direction[:, 2], axis, atol=1e-12)
    np.testing.assert_allclose(out.index_to_lps([0, 0, 5]), pos[-1], atol=1e-9)


def test_colour_stack() -> None:
    t = np.array([0.0, 1.0, 3.0])
    pos = np.column_stack([np.zeros(3), np.zeros(3), t])
    voxels = np.zeros((3, 2, 2, 3), dtype=np.uint8)
    voxels[:, ..., 0] = (t * 50)[:, None, None]
    vol = Volume(voxels=voxels, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=np.eye(3))
    out = resample_to_regular_grid(vol, pos, target_spacing=1.0)
    assert out.voxels.shape == (4, 2, 2, 3)
    np.testing.assert_array_equal(out.voxels[:, 0, 0, 0], [0, 50, 100, 150])


@pytest.mark.parametrize(
    "positions, message",
    [
        (np.array([[0, 0, 0], [0, 0, 2], [0, 0, 1.0]]), "sorted"),
        (np.array([[0, 0, 0], [0, 0, 0], [0, 0, 0.0]]), "same position"),
        (np.array([[0, 0, 0], [3, 0, 1], [0, 0, 2.0]]), "one line"),
        (np.array([[0, 0, 0], [0, 0, 1.0]]), r"\(3, 3\)"),
    ],
)
def test_bad_positions(positions: np.ndarray, message: str) -> None:
    vol = Volume(voxels=np.zeros((3, 2, 2), np.int16), spacing=(1.0, 1.0, 1.0), origin=(0, 0, 0), direction=np.eye(3))
    with pytest.raises(ValueError, match=message):
        resample_to_regular_grid(vol, positions)


@settings(max_examples=40, deadline=None)
@given(
    gaps=st.lists(st.floats(0.3, 4.0), min_size=1, max_size=8),
    spacing=st.floats(0.25, 3.0),
)
def test_regular_grid_is_linear_in_position(gaps: list[float], spacing: float) -> None:
    t = np.concatenate([[0.0], np.cumsum(gaps)])
    d = oblique(7)
    vol, pos = ramp_stack(t, d, d[:, 2], dtype=np.float32)
    out = resample_to_regular_grid(vol, pos, target_spacing=spacing)
    assert (out.shape[0] - 1) * spacing <= t[-1] + 1e-6
    j, i = np.mgrid[0:4, 0:5]
    for k in range(out.shape[0]):
        np.testing.assert_allclose(out.voxels[k], 10.0 * k * spacing + i + 100.0 * j, atol=2e-3)


# --- resample_like ---------------------------------------------------------------------------


def smooth_volume(direction: np.ndarray, dtype: type = np.float32) -> Volume:
    """Values linear in LPS position, so linear interpolation reproduces them exactly."""
    shape = (12, 14, 16)
    vol = Volume(
        voxels=np.zeros(shape, dtype=dtype), spacing=(1.5, 1.25, 2.0), origin=(-10.0, 4.0, 30.0), direction=direction
    )
    k, j, i = np.indices(shape)
    lps = vol.index_to_lps(np.column_stack([i.ravel(), j.ravel(), k.ravel()]))
    values = (lps @ np.array([3.0, -2.0, 1.5]) + 100.0).reshape(shape)
    return vol.with_voxels(values.astype(dtype))


def test_identity_is_exact() -> None:
    for dtype in (np.float32, np.int16, np.uint8):
        vol = smooth_volume(oblique(2), dtype=dtype)
        for order in (0, 1):
            out = resample_like(vol, vol, order=order)
            assert out.voxels.dtype == dtype
            np.testing.assert_array_equal(out.voxels, vol.voxels)
            np.testing.assert_allclose(out.affine, vol.affine)


def test_onto_grid_and_back_recovers_interior() -> None:
    vol = smooth_volume(oblique(3))
    # A finer, rotated grid covering the centre of the original.
    centre = vol.index_to_lps(np.array(vol.size_ijk) / 2 - 0.5)
    d2 = oblique(9)
    spacing2 = (0.9, 1.1, 1.0)
    ref = Volume(
        voxels=np.zeros((10, 10, 10), np.float32),
        spacing=spacing2,
        origin=tuple(centre - d2 @ (np.array(spacing2) * 4.5)),
        direction=d2,
    )
    there = resample_like(vol, ref, order=1)
    # linear field: values at the new voxel centres are exact
    k, j, i = np.indices(ref.shape)
    lps = ref.index_to_lps(np.column_stack([i.ravel(), j.ravel(), k.ravel()]))
    np.testing.assert_allclose(there.voxels.ravel(), lps @ np.array([3.0, -2.0, 1.5]) + 100.0, atol=1e-3)

    back = resample_like(there, vol, order=1, fill_value=np.nan)
    # Inside: original voxel centres that fall between the intermediate grid's voxel centres
    # (within half a voxel of its edge ITK holds the edge value instead of interpolating).
    k, j, i = np.indices(vol.shape)
    cont = ref.lps_to_index(vol.index_to_lps(np.column_stack([i.ravel(), j.ravel(), k.ravel()])))
    inside = np.all((cont >= 0) & (cont <= np.array(ref.size_ijk) - 1), axis=1).reshape(vol.shape)
    assert inside.sum() > 50
    assert np.all(np.isfinite(back.voxels[inside]))
    np.testing.assert_allclose(back.voxels[inside], vol.voxels[inside], atol=1e-3)


def test_labels_nearest_only_copies_values() -> None:
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 5, size=(8, 9, 10), dtype=np.uint8)
    vol = Volume(voxels=labels, spacing=(1.0, 1.0, 1.0), origin=(0, 0, 0), direction=oblique(5))
    ref = Volume(
        voxels=np.zeros((20, 18, 16), np.int16), spacing=(0.5, 0.5, 0.5), origin=(0, 0, 0), direction=np.eye(3)
    )
    out = resample_like(vol, ref, order=0)
    assert out.voxels.dtype == np.uint8
    assert out.shape == ref.shape
    assert set(np.unique(out.voxels)) <= set(range(5))


def test_int16_linear_rounds() -> None:
    vol = Volume(
        voxels=np.array([[[0, 1]], [[0, 1]]], dtype=np.int16).repeat(2, axis=1),
        spacing=(1.0, 1.0, 1.0),
        origin=(0, 0, 0),
        direction=np.eye(3),
    )
    ref = Volume(voxels=np.zeros((2, 2, 3), np.int16), spacing=(0.5, 1.0, 1.0), origin=(0, 0, 0), direction=np.eye(3))
    out = resample_like(vol, ref, order=1)
    assert out.voxels.dtype == np.int16
    np.testing.assert_array_equal(out.voxels[0, 0], [0, 0, 1])  # 0.5 rounds to even


def test_bad_order() -> None:
    vol = smooth_volume(np.eye(3))
    with pytest.raises(ValueError, match="order"):
        resample_like(vol, vol, order=3)  # type: ignore[arg-type]
