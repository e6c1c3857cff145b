"""Explicit resampling: the only places RadLens changes a grid, each asked for by name.

* :func:`resample_to_regular_grid` turns a stack whose slices are irregularly spaced
  (positions known per slice) into a regular grid by linear interpolation along ``k``.
  The loader never does this silently; it is a user action with a QA note on the result.
* :func:`resample_like` maps any volume onto another volume's grid (SimpleITK, or where it is
  not installed the same rules with NumPy/SciPy): nearest neighbour for label maps, linear for images.

Integer inputs stay integer: interpolated values are rounded back to the input type (a
convex combination of in-range values is in range). Float inputs give float32 (float64 stays
float64 in :func:`resample_like`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from inference.volume import Volume

# Positions may deviate this far (mm) from the straight line through the first and last slice.
_LINE_TOLERANCE_MM = 0.05


def _work_dtype(dtype: np.dtype[Any]) -> type[np.floating[Any]]:
    """float32 is exact for integers of up to 16 bits; wider integers and float64 need float64."""
    if dtype == np.float64 or (np.issubdtype(dtype, np.integer) and dtype.itemsize > 2):
        return np.float64
    return np.float32


def _cast_back(values: npt.NDArray[Any], dtype: np.dtype[Any]) -> npt.NDArray[Any]:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        rounded: npt.NDArray[Any] = np.clip(np.rint(values), info.min, info.max).astype(dtype)
        return rounded
    if dtype == np.bool_:
        mask: npt.NDArray[Any] = np.asarray(values >= 0.5)
        return mask
    return values.astype(np.float32 if dtype != np.float64 else np.float64)


def resample_to_regular_grid(
    volume: Volume,
    slice_positions_mm: npt.ArrayLike,
    target_spacing: float | None = None,
) -> Volume:
    """Resample a stack with irregular slice spacing onto a regular grid, linearly along ``k``.

    ``slice_positions_mm`` is ``(n, 3)``: the LPS position of voxel ``(0, 0)`` of each of the
    ``n == volume.shape[0]`` slices (DICOM ImagePositionPatient), in stack order. The positions
    must lie on one straight line (within 0.05 mm) and strictly advance along it; the line may be
    oblique to the slice normal (gantry tilt), in which case the output grid is sheared the same way.
    Only the slice geometry of ``volume`` (its first two direction columns and in-plane spacing) is
    used; its ``k`` spacing, ``origin`` and third direction column are replaced.

    The new grid starts at the first slice and steps ``target_spacing`` mm (default: the median
    gap between slices, so a stack that is regular but for one missing slice keeps its spacing)
    for as many slices as fit before the last one. Each output slice is the linear blend of the
    two input slices around it; an output slice that falls exactly on an input slice copies it.
    Integer voxels are rounded back to their type (int16 stays int16); float voxels give float32.
    A QA note on the result records the resampling.
    """
    positions = np.asarray(slice_positions_mm, dtype=np.float64)
    n = volume.shape[0]
    if positions.shape != (n, 3):
        raise ValueError(f"slice_positions_mm must be ({n}, 3) for {n} slices, got {positions.shape}")
    if n < 2:
        raise ValueError("at least two slices are needed to resample along k")
    if not np.all(np.isfinite(positions)):
        raise ValueError("slice positions must be finite")
    span = positions[-1] - positions[0]
    length = float(np.linalg.norm(span))
    if length <= 0:
        raise ValueError("the first and last slices are at the same position")
    axis = span / length
    t = (positions - positions[0]) @ axis
    off_line = np.linalg.norm((positions - positions[0]) - t[:, None] * axis[None, :], axis=1)
    if float(off_line.max()) > _LINE_TOLERANCE_MM:
        raise ValueError(
            f"slice positions are not on one line (off by up to {off_line.max():.3f} mm); cannot resample along k"
        )
    gaps = np.diff(t)
    if np.any(gaps <= 1e-6):
        raise ValueError("slice positions must be sorted and distinct along the stack")
    step = float(np.median(gaps)) if target_spacing is None else float(target_spacing)
    if not np.isfinite(step) or step <= 0:
        raise ValueError(f"target_spacing must be positive, got {target_spacing}")

    n_out = int(np.floor(t[-1] / step + 1e-6)) + 1
    t_out = np.arange(n_out, dtype=np.float64) * step
    lower = np.clip(np.searchsorted(t, t_out, side="right") - 1, 0, n - 2)
    weight = np.clip((t_out - t[lower]) / (t[lower + 1] - t[lower]), 0.0, 1.0)

    src = volume.voxels
    work = _work_dtype(src.dtype)
    out_dtype = src.dtype if np.issubdtype(src.dtype, np.integer) or src.dtype == np.bool_ else np.dtype(work)
    if out_dtype == np.float64 and not np.issubdtype(src.dtype, np.integer):
        out_dtype = np.dtype(np.float32)
    out = np.empty((n_out, *src.shape[1:]), dtype=out_dtype)
    for m in range(n_out):
        lo, w = int(lower[m]), float(weight[m])
        if w == 0.0:
            out[m] = src[lo]
        elif w == 1.0:
            out[m] = src[lo + 1]
        else:
            blend = src[lo].astype(work) * work(1.0 - w) + src[lo + 1].astype(work) * work(w)
            out[m] = _cast_back(blend, out_dtype)

    direction = volume.direction.copy()
    direction[:, 2] = axis
    note = (
        f"resampled from {n} irregularly spaced slices to {n_out} slices every {step:g} mm "
        "(linear interpolation along k)"
    )
    return replace(
        volume,
        voxels=out,
        spacing=(volume.spacing[0], volume.spacing[1], step),
        origin=(float(positions[0, 0]), float(positions[0, 1]), float(positions[0, 2])),
        direction=direction,
        qa_warnings=(*volume.qa_warnings, note),
        slice_positions=None,  # on the regular grid now
    )


def regular_grid(volume: Volume) -> Volume:
    """``volume`` itself when its slices lie on its grid, else resampled along ``k`` from its
    ``slice_positions`` with :func:`resample_to_regular_grid` (each volume of a 4-D one alike)."""
    positions = volume.slice_positions
    if positions is None:
        return volume
    if not volume.is_4d:
        return resample_to_regular_grid(replace(volume, slice_positions=None), positions)
    parts = [
        resample_to_regular_grid(replace(volume.frame(n), slice_positions=None), positions)
        for n in range(volume.n_volumes)
    ]
    return replace(parts[0], voxels=np.stack([p.voxels for p in parts]), frames=volume.frames, metadata=volume.metadata)


def _to_sitk(volume: Volume, pixel_dtype: npt.DTypeLike | None = None) -> Any:
    import SimpleITK as sitk

    voxels = volume.voxels if pixel_dtype is None else volume.voxels.astype(pixel_dtype)
    if voxels.dtype == np.bool_:
        voxels = voxels.astype(np.uint8)
    image = sitk.GetImageFromArray(voxels, isVector=voxels.ndim == 4)
    image.SetSpacing([float(s) for s in volume.spacing])
    image.SetOrigin([float(o) for o in volume.origin])
    image.SetDirection([float(x) for x in volume.direction.ravel()])
    return image


def resample_like(
    moving: Volume,
    reference: Volume,
    order: Literal[0, 1] = 1,
    fill_value: float = 0.0,
) -> Volume:
    """``moving`` resampled onto ``reference``'s grid (shape, spacing, origin, direction).

    ``order=0`` is nearest neighbour (label maps: values are only ever copied, type kept);
    ``order=1`` is linear (images: integers are interpolated in floating point and rounded back
    to their type, floats stay float). Points of the reference grid outside ``moving`` get
    ``fill_value``; within half a voxel of ``moving``'s edge, ITK repeats the edge value rather
    than interpolating. Both volumes are placed in patient LPS space by their own geometry; no
    registration is done. The result carries ``moving``'s metadata and a QA note.
    """
    from inference.io.image_file_fallback import use_simpleitk

    if order not in (0, 1):
        raise ValueError(f"order must be 0 (nearest) or 1 (linear), got {order}")
    src_dtype = moving.voxels.dtype
    if use_simpleitk():
        out = _resample_sitk(moving, reference, order, fill_value)
    else:
        out = _resample_numpy(moving, reference, order, fill_value)
    if out.dtype != src_dtype:
        out = _cast_back(out, src_dtype) if src_dtype != np.float16 else out.astype(np.float32)
    kind = "nearest-neighbour" if order == 0 else "linear"
    return Volume(
        voxels=out,
        spacing=reference.spacing,
        origin=reference.origin,
        direction=reference.direction.copy(),
        metadata=moving.metadata,
        qa_warnings=(*moving.qa_warnings, f"resampled onto another grid ({kind} interpolation)"),
    )


def _resample_sitk(moving: Volume, reference: Volume, order: int, fill_value: float) -> npt.NDArray[Any]:
    import SimpleITK as sitk

    src_dtype = moving.voxels.dtype
    if order == 1 and (np.issubdtype(src_dtype, np.integer) or src_dtype == np.bool_):
        image = _to_sitk(moving, _work_dtype(src_dtype))
    elif src_dtype == np.float16:
        image = _to_sitk(moving, np.float32)
    else:
        image = _to_sitk(moving)

    f = sitk.ResampleImageFilter()
    f.SetSize([int(s) for s in reference.size_ijk])
    f.SetOutputSpacing([float(s) for s in reference.spacing])
    f.SetOutputOrigin([float(o) for o in reference.origin])
    f.SetOutputDirection([float(x) for x in reference.direction.ravel()])
    f.SetTransform(sitk.Transform())
    f.SetInterpolator(sitk.sitkNearestNeighbor if order == 0 else sitk.sitkLinear)
    f.SetDefaultPixelValue(float(fill_value))
    result = f.Execute(image)
    out: npt.NDArray[Any] = sitk.GetArrayFromImage(result)
    return out


def _resample_numpy(moving: Volume, reference: Volume, order: int, fill_value: float) -> npt.NDArray[Any]:
    """ITK's ``ResampleImageFilter`` with the identity transform, one output slice at a time.

    As ITK: a point is inside ``moving`` when its continuous index lies in ``[-0.5, n - 0.5)`` on
    every axis; nearest neighbour rounds half up; linear interpolation clamps its neighbours to
    the edge (so the outer half voxel repeats the edge value). Integers (and bool) are interpolated
    in the work type of :func:`_work_dtype`; the caller rounds back.
    """
    from scipy import ndimage

    src = moving.voxels
    if src.dtype == np.bool_:
        src = src.astype(np.uint8)
    if order == 1 and np.issubdtype(src.dtype, np.integer):
        src = src.astype(_work_dtype(moving.voxels.dtype))
    elif src.dtype == np.float16:
        src = src.astype(np.float32)
    n_k, n_j, n_i = moving.shape
    bounds = np.array([n_i, n_j, n_k], dtype=np.float64)
    # Reference index -> moving continuous index, as one affine map.
    to_moving = np.linalg.inv(moving.affine) @ reference.affine
    ri, rj, rk = reference.size_ijk
    jj, ii = np.meshgrid(np.arange(rj, dtype=np.float64), np.arange(ri, dtype=np.float64), indexing="ij")
    channels = src.shape[3:]
    out = np.empty((rk, rj, ri, *channels), dtype=src.dtype)
    for k in range(rk):
        idx = (
            to_moving[:3, 0, None, None] * ii
            + to_moving[:3, 1, None, None] * jj
            + (to_moving[:3, 2] * k + to_moving[:3, 3])[:, None, None]
        )  # (3, rj, ri): continuous (i, j, k) in moving
        inside = np.all((idx >= -0.5) & (idx < (bounds - 0.5)[:, None, None]), axis=0)
        if order == 0:
            nearest = np.clip(np.floor(idx + 0.5).astype(np.int64), 0, (bounds - 1).astype(np.int64)[:, None, None])
            plane = src[nearest[2], nearest[1], nearest[0]]
        else:
            clamped = np.clip(idx, 0.0, (bounds - 1)[:, None, None])
            coords = clamped[::-1]  # (k, j, i) for the voxel array
            if channels:
                plane = np.stack(
                    [ndimage.map_coordinates(src[..., c], coords, order=1, mode="nearest") for c in range(channels[0])],
                    axis=-1,
                )
            else:
                plane = ndimage.map_coordinates(src, coords, order=1, mode="nearest")
        plane = np.where(inside[..., None] if channels else inside, plane, np.asarray(fill_value).astype(src.dtype))
        out[k] = plane
    return out
