"""Comparing two volumes voxel by voxel in patient space, whatever their axis order and flips."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def in_other_index_order(
    values: npt.NDArray[np.generic],
    affine: npt.NDArray[np.float64],
    target_affine: npt.NDArray[np.float64],
    target_shape: tuple[int, int, int],
    atol_mm: float = 1e-4,
) -> npt.NDArray[np.generic]:
    """``values[k, j, i]`` on ``affine`` re-indexed onto a grid that holds the same voxel centres.

    The grids must differ only by axis order and direction (a signed permutation); every voxel
    centre must agree within ``atol_mm``. Raises AssertionError otherwise.
    """
    m = np.linalg.inv(affine) @ target_affine  # target (i, j, k) -> source (i, j, k)
    perm = np.round(m[:3, :3])
    assert np.allclose(m[:3, :3], perm, atol=1e-4), f"grids are not axis-aligned with each other:\n{m}"
    assert sorted(np.abs(perm).sum(axis=0)) == [1, 1, 1] and sorted(np.abs(perm).sum(axis=1)) == [1, 1, 1], m
    ti, tj, tk = target_shape[2], target_shape[1], target_shape[0]
    corners = np.array([[a, b, c, 1.0] for a in (0, ti - 1) for b in (0, tj - 1) for c in (0, tk - 1)])
    mapped = corners @ m.T
    src_idx = np.round(mapped[:, :3])
    err_mm = np.abs((src_idx - mapped[:, :3]) @ (affine[:3, :3]).T).max()
    assert err_mm <= atol_mm, f"voxel centres differ by {err_mm} mm"
    # Source array axes in (i, j, k) order.
    src = np.transpose(values, (2, 1, 0))
    out_axes = []
    flips = []
    for t_axis in range(3):
        s_axis = int(np.argmax(np.abs(perm[:, t_axis])))
        out_axes.append(s_axis)
        flips.append(perm[s_axis, t_axis] < 0)
    moved = np.transpose(src, out_axes)
    for axis, flip in enumerate(flips):
        if flip:
            moved = np.flip(moved, axis=axis)
    lo = src_idx.min(axis=0).astype(int)
    lo_target = [lo[out_axes[a]] for a in range(3)]
    sizes = (ti, tj, tk)
    # Offsets: the target's first voxel sits at source index lo (after flipping, counted from the flipped end).
    starts = []
    for a in range(3):
        n_src = moved.shape[a]
        start = (n_src - 1 - int(np.max(src_idx[:, out_axes[a]]))) if flips[a] else lo_target[a]
        starts.append(start)
    window = moved[tuple(slice(s, s + n) for s, n in zip(starts, sizes, strict=True))]
    assert window.shape == sizes, f"target grid {sizes} is not inside the source grid {moved.shape}"
    return np.ascontiguousarray(np.transpose(window, (2, 1, 0)))
