"""The one mapping between the source voxel grid and a model's grid, in both directions.

Both directions use the same convention (voxel centres, ``align_corners=False``), so a map made
on the model grid and brought back lands on the same anatomy it was computed from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["resize", "resize_into", "spacing_to_shape"]


def resize(t: torch.Tensor, size: tuple[int, ...], *, labels: bool = False) -> torch.Tensor:
    """Resize the trailing 2 or 3 spatial dims of ``(N, C, ...)`` to ``size``.

    Linear for intensities and probabilities, nearest for labels. Used for model-grid → source
    grid and source → model grid alike.
    """
    import torch.nn.functional as F

    if tuple(t.shape[2:]) == tuple(size):
        return t
    if labels:
        return F.interpolate(t.float(), size=size, mode="nearest-exact").to(t.dtype)
    mode = "bilinear" if len(size) == 2 else "trilinear"
    return F.interpolate(t, size=size, mode=mode, align_corners=False)


def resize_into(t: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """:func:`resize` of ``(N, C, h, w)`` intensities to ``out``'s size, written into ``out`` (no temporary)."""
    import torch

    if tuple(t.shape[2:]) == tuple(out.shape[2:]):
        return out.copy_(t)
    size = [int(out.shape[2]), int(out.shape[3])]
    # The operator F.interpolate(mode="bilinear", align_corners=False, size=...) calls, with its out= form.
    resized: torch.Tensor = torch.ops.aten.upsample_bilinear2d.out(t, size, False, None, None, out=out)
    return resized


def spacing_to_shape(
    shape_kji: tuple[int, int, int], spacing_ijk: tuple[float, float, float], target_ijk: tuple[float, float, float]
) -> tuple[int, int, int]:
    """The ``(k, j, i)`` shape covering the same extent at ``target_ijk`` spacing."""
    k, j, i = shape_kji
    si, sj, sk = spacing_ijk
    ti, tj, tk = target_ijk
    return (max(1, round(k * sk / tk)), max(1, round(j * sj / tj)), max(1, round(i * si / ti)))
