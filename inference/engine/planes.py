"""A slice classifier's input, batch by batch, with each plane of the volume prepared once.

Importing this module does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from inference.models.intensity import ScaleIntensity

if TYPE_CHECKING:
    import torch

__all__ = ["CHUNK", "SlicePlanes"]

#: Planes normalised and resized per call: a few source planes of float32 stay in the CPU's cache.
CHUNK = 4


class SlicePlanes:
    """``batch(start, stop)`` is the ``(stop - start, 2c + 1, *size)`` input of slices ``start..stop-1``:
    each slice with its ``c = context`` neighbours on either side (edge planes repeated), normalised
    by ``intensity`` (:class:`~inference.models.intensity.ScaleIntensity`) and resized to ``size``
    (bilinear, :func:`inference.engine.grid.resize`), equal to that within float32 rounding.

    Planes are normalised and resized a few at a time, once each: a batch is a view on a window
    of planes ``start - c .. stop + c - 1``, and the planes it shares with the previous window are
    kept, not computed again. Memory: the window (``stop - start + 2c`` planes of ``size``) plus
    :data:`CHUNK` source planes in float32; never a float copy of the volume. The view returned
    is valid until the next call.
    """

    def __init__(
        self,
        voxels: npt.NDArray[Any],
        intensity: ScaleIntensity,
        size: tuple[int, int],
        context: int,
    ) -> None:
        self.voxels = voxels
        self.intensity = intensity
        self.size = size
        self.context = context
        self._buf: torch.Tensor | None = None
        self._lo = self._hi = 0  # positions held in _buf[: _hi - _lo]
        self._source: torch.Tensor | None = None  # float32 source planes, reused from chunk to chunk

    def batch(self, start: int, stop: int) -> torch.Tensor:
        import torch

        c = self.context
        lo, hi = start - c, stop + c
        held_lo, held_hi = max(lo, self._lo), min(hi, self._hi)
        kept = None
        if self._buf is not None and held_lo < held_hi:
            kept = self._buf[held_lo - self._lo : held_hi - self._lo].clone()
        else:
            held_lo = held_hi = lo
        if self._buf is None or self._buf.shape[0] < hi - lo:
            self._buf = torch.empty((hi - lo, *self.size), dtype=torch.float32)
        window = self._buf[: hi - lo]
        if kept is not None:
            window[held_lo - lo : held_hi - lo] = kept
        self._fill(window, lo, lo, held_lo)
        self._fill(window, lo, held_hi, hi)
        n = self.voxels.shape[0]
        for p in (*range(lo, min(0, hi)), *range(max(n, lo), hi)):  # beyond the stack: the edge plane
            window[p - lo] = window[min(max(p, 0), n - 1) - lo]
        self._lo, self._hi = lo, hi
        return window.unfold(0, 2 * c + 1, 1).permute(0, 3, 1, 2)

    def _fill(self, window: torch.Tensor, lo: int, a: int, b: int) -> None:
        """Positions ``a..b-1`` of ``window`` (position ``lo`` at index 0) that lie inside the stack."""
        first, last = max(a, 0), min(b, self.voxels.shape[0])
        for s in range(first, last, CHUNK):
            e = min(last, s + CHUNK)
            self.planes_into(s, e, window[s - lo : e - lo])

    def planes_into(self, start: int, stop: int, out: torch.Tensor) -> None:
        """Planes ``start..stop-1`` normalised and resized, written into ``out`` ``(stop - start, *size)``.

        Resizing is linear with weights summing to one, so the affine part of the normalisation
        is applied after it, on the smaller planes; the clip to [0, top] becomes a clip of the
        source planes to ``intensity.source_range``. ``out`` must not overlap the volume."""
        import torch

        from inference.engine.grid import resize_into

        source = torch.from_numpy(np.ascontiguousarray(self.voxels[start:stop]))
        k = stop - start
        if self._source is None or self._source.shape[0] < k or self._source.shape[1:] != source.shape[1:]:
            self._source = torch.empty(source.shape, dtype=torch.float32)
        planes = self._source[:k].copy_(source)  # float32, never in place on the volume's own memory
        if self.intensity.clip:
            planes.clamp_(*self.intensity.source_range)
        resize_into(planes[:, None], out[:, None])
        # No clip after: the resize's rounding may leave 1e-7 outside [0, 1], as clipping before it did.
        out.sub_(float(self.intensity.offset)).mul_(self.intensity.scale)
