"""Display re-indexing: every voxel keeps its patient position, labels follow the cosines."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference.io.orientation import closest_lps_axes, display_volume, orientation_label
from inference.volume import Volume


def _volume(direction: np.ndarray) -> Volume:
    voxels = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    return Volume(voxels, (0.5, 0.7, 2.0), (10.0, -20.0, 30.0), direction)


def _signed_permutations() -> list[np.ndarray]:
    import itertools

    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            m = np.zeros((3, 3))
            for col, row in enumerate(perm):
                m[row, col] = signs[col]
            out.append(m)
    return out


@pytest.mark.parametrize("direction", _signed_permutations())
def test_display_axes_point_to_left_posterior_superior(direction: np.ndarray) -> None:
    vol = _volume(direction)
    amap, shown = display_volume(vol)
    np.testing.assert_allclose(amap.display_directions(vol.direction), np.eye(3))
    nx, ny, nz = amap.display_shape(vol.size_ijk)
    assert shown.shape == (nz, ny, nx)
    # Every displayed voxel holds the source voxel at the same index mapping.
    for xyz in [(0, 0, 0), (nx - 1, 1, nz - 1), (2, ny - 1, 1)]:
        i, j, k = amap.display_to_source(xyz, vol.size_ijk).astype(int)
        assert shown[xyz[2], xyz[1], xyz[0]] == vol.voxels[k, j, i]
        np.testing.assert_allclose(amap.source_to_display((i, j, k), vol.size_ijk), xyz)


@settings(max_examples=30, deadline=None)
@given(st.floats(-0.6, 0.6), st.floats(-0.6, 0.6), st.floats(-0.6, 0.6))
def test_oblique_moves_screen_right_toward_patient_left(a: float, b: float, c: float) -> None:

    rot = _rotation(a, b, c)
    amap = closest_lps_axes(rot)
    dirs = amap.display_directions(rot)
    assert dirs[0, 0] > 0.5 and dirs[1, 1] > 0.5 and dirs[2, 2] > 0.5


def _rotation(a: float, b: float, c: float) -> np.ndarray:
    ca, sa, cb, sb, cc, sc = np.cos(a), np.sin(a), np.cos(b), np.sin(b), np.cos(c), np.sin(c)
    rx = np.array([[1, 0, 0], [0, ca, -sa], [0, sa, ca]])
    ry = np.array([[cb, 0, sb], [0, 1, 0], [-sb, 0, cb]])
    rz = np.array([[cc, -sc, 0], [sc, cc, 0], [0, 0, 1]])
    return rz @ ry @ rx


def test_orientation_labels() -> None:
    assert orientation_label([1, 0, 0]) == "L"
    assert orientation_label([-1, 0, 0]) == "R"
    assert orientation_label([0, -1, 0]) == "A"
    assert orientation_label([0, 0, -1]) == "I"
    assert orientation_label([0.8, -0.6, 0]) == "LA"
