"""Siemens mosaics: one stored image tiling the slices of one volume.

The tile grid is ``ceil(sqrt(NumberOfImagesInMosaic))`` on a side, filled row by row in slice
order. ImagePositionPatient of a mosaic is that of the whole tiled image's corner as if it were
one big slice, so the first slice's position is moved by half the difference between the mosaic
and the tile size along rows and columns; slices follow along the CSA ``SliceNormalVector`` at
SpacingBetweenSlices (else SliceThickness). This is nibabel's ``MosaicWrapper`` recipe (and
dcm2niix's).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.errors import LoadError
from inference.io.acquisition_keys import FrameKeys
from inference.io.dicom_record import DicomHeader, FrameGeometry


class MosaicError(LoadError):
    """A Siemens mosaic that cannot be cut into slices (no CSA slice count, tiles that do not fit)."""


def is_mosaic(header: DicomHeader) -> bool:
    return any("MOSAIC" in v.upper() for v in header.image_type) and not header.is_multiframe


def mosaic_layout(header: DicomHeader, keys: FrameKeys) -> tuple[int, int, int, int]:
    """``(n_slices, tiles per side, tile rows, tile columns)``; raises :class:`MosaicError`."""
    n = keys.mosaic_images
    if not n:
        raise MosaicError(
            header.path, "ImageType says MOSAIC but the Siemens CSA header gives no NumberOfImagesInMosaic"
        )
    side = math.ceil(math.sqrt(n))
    if header.rows % side or header.columns % side:
        raise MosaicError(header.path, f"a {header.rows}×{header.columns} mosaic cannot hold {side}×{side} tiles")
    return n, side, header.rows // side, header.columns // side


def tile_geometries(header: DicomHeader, keys: FrameKeys) -> tuple[FrameGeometry, ...]:
    """The geometry of each slice of the mosaic, in tile order."""
    n, _, rows, cols = mosaic_layout(header, keys)
    g = header.frames[0]
    if g.position is None or g.orientation is None or g.pixel_spacing is None:
        raise MosaicError(header.path, "mosaic without position, orientation or pixel spacing: slices cannot be placed")
    row_dir = np.asarray(g.orientation[:3], dtype=np.float64)  # along a row (increasing column)
    col_dir = np.asarray(g.orientation[3:6], dtype=np.float64)  # down a column (increasing row)
    row_spacing, col_spacing = g.pixel_spacing  # between rows, between columns
    first = (
        np.asarray(g.position, dtype=np.float64)
        + col_dir * row_spacing * (header.rows - rows) / 2
        + row_dir * col_spacing * (header.columns - cols) / 2
    )
    normal = np.asarray(keys.mosaic_normal, dtype=np.float64) if keys.mosaic_normal else np.cross(row_dir, col_dir)
    if not np.linalg.norm(normal) > 0:
        normal = np.cross(row_dir, col_dir)
    dz = keys.slice_spacing or header.slice_thickness
    if not dz or dz <= 0:
        raise MosaicError(header.path, "mosaic without SpacingBetweenSlices or SliceThickness: slices cannot be placed")
    out = []
    for k in range(n):
        p = first + k * dz * normal
        out.append(
            FrameGeometry(
                (float(p[0]), float(p[1]), float(p[2])), g.orientation, g.pixel_spacing, g.slope, g.intercept, 0
            )
        )
    return tuple(out)


def cut_tile(mosaic: npt.NDArray[Any], tile: int, side: int) -> npt.NDArray[Any]:
    """Tile ``tile`` (row-major over the grid) of a ``(rows, cols)`` mosaic image."""
    rows, cols = mosaic.shape[0] // side, mosaic.shape[1] // side
    r, c = divmod(tile, side)
    return mosaic[r * rows : (r + 1) * rows, c * cols : (c + 1) * cols]
