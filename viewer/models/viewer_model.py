"""The state of one viewer window: the open volume, cursor, window/level, layers, measurements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.display.window_level import WindowLevel, volume_window
from inference.io.orientation import AxisMap, closest_lps_axes
from inference.volume import Volume

from .events import Event
from .layers import LayerList
from .measurements import MeasurementList, Plane
from .oblique_state import Oblique
from .plane_cache import PlaneCache
from .slab import Slab, slab_range


@dataclass(frozen=True)
class OpenVolume:
    """A loaded volume with its display re-indexing, computed once."""

    volume: Volume
    axis_map: AxisMap
    display: npt.NDArray[Any]  # [z, y, x(, rgb)] view of volume.voxels
    spacing_xyz: tuple[float, float, float]
    directions_xyz: npt.NDArray[np.float64]  # LPS unit vectors of display +x, +y, +z
    cache: PlaneCache

    @classmethod
    def of(cls, volume: Volume) -> OpenVolume:
        amap = closest_lps_axes(volume.direction)
        display = amap.apply(volume.voxels)
        return cls(
            volume,
            amap,
            display,
            amap.display_spacing(volume.spacing),
            amap.display_directions(volume.direction),
            PlaneCache(display),
        )

    @property
    def shape_xyz(self) -> tuple[int, int, int]:
        nz, ny, nx = self.display.shape[:3]
        return (nx, ny, nz)

    @property
    def is_colour(self) -> bool:
        return self.display.ndim == 4

    def plane_image(self, plane: Plane, index: int, array: npt.NDArray[Any] | None = None) -> npt.NDArray[Any]:
        """The C-contiguous 2-D image of ``plane`` at ``index``, row 0 at the top of the screen.

        ``array`` is another ``[z, y, x]`` display array on the same grid (an overlay).
        """
        return (self.cache if array is None else PlaneCache(array)).image(plane, index)

    def slab_image(self, plane: Plane, index: int, slab: Slab) -> npt.NDArray[Any]:
        """``plane``'s image at ``index``, projected over ``slab`` when one is set."""
        if not slab.active or self.is_colour:
            return self.plane_image(plane, index)
        axis = plane.normal_axis
        lo, hi = slab_range(index, self.shape_xyz[axis], slab.thickness_mm, self.spacing_xyz[axis])
        return self.cache.slab_image(plane, lo, hi, slab.mode)

    def plane_in_display_order(
        self, plane: Plane, index: int, array: npt.NDArray[Any] | None = None
    ) -> npt.NDArray[Any]:
        """The plane as ``[row axis, column axis]`` in ascending display index (for ROI masks)."""
        a: npt.NDArray[Any] = self.display if array is None else array
        if plane == Plane.AXIAL:
            return a[index]  # type: ignore[no-any-return]
        if plane == Plane.CORONAL:
            return a[:, index]
        return a[:, :, index]

    def plane_to_display(self, plane: Plane, col: float, row: float, index: float) -> tuple[float, float, float]:
        """Screen (column, row) in a plane's image → display index ``(x, y, z)``."""
        nz = self.shape_xyz[2]
        if plane == Plane.AXIAL:
            return (col, row, index)
        if plane == Plane.CORONAL:
            return (col, index, nz - 1 - row)
        return (index, col, nz - 1 - row)

    def display_to_plane(self, plane: Plane, xyz: tuple[float, float, float]) -> tuple[float, float]:
        """Display index → (column, row) in that plane's image."""
        x, y, z = xyz
        nz = self.shape_xyz[2]
        if plane == Plane.AXIAL:
            return (x, y)
        if plane == Plane.CORONAL:
            return (x, nz - 1 - z)
        return (y, nz - 1 - z)

    def plane_pixel_mm(self, plane: Plane) -> tuple[float, float]:
        """(column, row) pixel size in mm."""
        ca, ra = plane.in_plane_axes
        return (self.spacing_xyz[ca], self.spacing_xyz[ra])

    def plane_vectors(self, plane: Plane) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """LPS unit vectors of screen-right and screen-down in that plane."""
        ca, ra = plane.in_plane_axes
        right = self.directions_xyz[:, ca]
        down = self.directions_xyz[:, ra]
        if plane != Plane.AXIAL:
            down = -down  # rows run from superior to inferior
        return right, down

    def value_at(self, xyz: tuple[int, int, int]) -> Any:
        x, y, z = xyz
        return self.display[z, y, x]

    def lps_at(self, xyz: tuple[float, float, float]) -> npt.NDArray[np.float64]:
        ijk = self.axis_map.display_to_source(xyz, self.volume.size_ijk)
        return self.volume.index_to_lps(ijk)


class ViewerModel:
    """Everything a view shows, with events; the controller writes it, views listen."""

    def __init__(self) -> None:
        self.current: OpenVolume | None = None
        self.cursor: tuple[int, int, int] = (0, 0, 0)
        self.window = WindowLevel(40, 400)
        self.invert = False
        self.layers = LayerList()
        self.measurements = MeasurementList()
        #: The whole 4-D acquisition when one is open (``current`` shows its volume ``frame``).
        self.series: Volume | None = None
        self.frame = 0
        self.volume_changed: Event[[]] = Event()
        self.cursor_changed: Event[[]] = Event()
        self.window_changed: Event[[]] = Event()
        self.slab = Slab()
        self.slab_changed: Event[[]] = Event()
        self.oblique: Oblique | None = None  # a pane's crosshair rotated: the other two resliced
        self.oblique_changed: Event[[]] = Event()

    def open(self, volume: Volume) -> None:
        """Show a new volume: cursor in the middle, its default window, no overlays. A 4-D
        acquisition shows its first volume; :meth:`set_frame` moves along the fourth axis."""
        self.series = volume if volume.is_4d else None
        self.frame = 0
        volume = volume.frame(0)
        self.current = OpenVolume.of(volume)
        nx, ny, nz = self.current.shape_xyz
        self.cursor = (nx // 2, ny // 2, nz // 2)
        self.window = volume_window(volume)
        self.oblique = None
        # One event for the whole change: listeners refresh layers, window and cursor from it.
        with self.layers.changed.blocked(), self.measurements.changed.blocked():
            self.layers.clear()
            self.measurements.clear()
        self.volume_changed.emit()

    def set_frame(self, n: int) -> None:
        """Show volume ``n`` of the open 4-D acquisition, keeping cursor, window, layers and
        measurements (they live on the same grid)."""
        series = self.series
        if series is None or n == self.frame or not 0 <= n < series.n_volumes:
            return
        self.frame = n
        self.current = OpenVolume.of(series.frame(n))
        self.volume_changed.emit()

    def close(self) -> None:
        self.series = None
        self.frame = 0
        self.current = None
        self.layers.clear()
        self.measurements.clear()
        self.volume_changed.emit()

    def set_cursor(self, xyz: tuple[float, float, float]) -> None:
        if self.current is None:
            return
        clamped = tuple(int(np.clip(round(v), 0, n - 1)) for v, n in zip(xyz, self.current.shape_xyz, strict=True))
        new = (clamped[0], clamped[1], clamped[2])
        if new != self.cursor:
            self.cursor = new
            self.cursor_changed.emit()

    def step_slice(self, plane: Plane, delta: int) -> None:
        x = list(self.cursor)
        x[plane.normal_axis] += delta
        self.set_cursor((x[0], x[1], x[2]))

    def set_oblique(self, oblique: Oblique | None) -> None:
        """Rotate one pane's crosshair (reslicing the other two), or None for the usual planes."""
        if oblique is not None and abs(oblique.angle_deg) < 1e-9:
            oblique = None
        if oblique != self.oblique:
            self.oblique = oblique
            self.oblique_changed.emit()

    def set_slab(self, slab: Slab) -> None:
        """Draw every plane as a slab projection (or, with ``SlabMode.OFF``, one slice)."""
        if slab != self.slab:
            self.slab = slab
            self.slab_changed.emit()

    def set_window(self, window: WindowLevel, invert: bool | None = None) -> None:
        self.window = WindowLevel(float(window.center), max(float(window.width), 1e-3))
        if invert is not None:
            self.invert = invert
        self.window_changed.emit()
