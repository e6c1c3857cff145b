"""The one intensity preprocessing of every model, configured once and pure when called.

As MONAI's ``ScaleIntensityRange`` is one object in training and inference, a
:class:`ScaleIntensity` is ``v ↦ (v − offset) · scale``, clipped to ``[0, top]`` when ``clip``.
The card's ``[input]`` says which one a model reads (:func:`intensity_for`); dataset building
stores the card's window at :data:`DATASET_LEVELS` levels (uint8) and training reads them back
with :data:`STORED_TO_UNIT`, so that what a model is trained on is what the engine gives it.

Importing this module does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt

from inference.models.card import InputSpec, Normalise

if TYPE_CHECKING:
    import torch

__all__ = ["DATASET_LEVELS", "STORED_TO_UNIT", "ScaleIntensity", "intensity_for"]

_T = TypeVar("_T", "npt.NDArray[np.float32]", "torch.Tensor")


@dataclass(frozen=True)
class ScaleIntensity:
    """``(v − offset) · scale``, clipped to ``[0, top]`` when ``clip``; float32, never float64.

    The arithmetic is the same, in the same order, on a numpy array (:meth:`__call__`,
    :meth:`apply_`) and a torch tensor (:meth:`apply_`), so training and inference round alike.
    """

    offset: float
    scale: float
    clip: bool = True
    top: float = 1.0

    @classmethod
    def window(cls, centre: float, width: float, top: float = 1.0) -> ScaleIntensity:
        """The window ``centre ± width / 2`` mapped linearly onto ``[0, top]``, clipped."""
        return cls(centre - width / 2, top / max(width, 1e-6), clip=True, top=top)

    def __call__(self, voxels: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        """A float32 copy of ``voxels`` (one copy), transformed."""
        out = np.asarray(voxels, dtype=np.float32).copy() if voxels.dtype != np.float32 else voxels.copy()
        return self.apply_(out)

    def apply_(self, x: _T) -> _T:
        """Transform float32 ``x`` (a numpy array or a torch tensor) in place; returns it."""
        if isinstance(x, np.ndarray):
            np.subtract(x, self.offset, out=x)
            np.multiply(x, self.scale, out=x)
            if self.clip:
                np.clip(x, 0.0, self.top, out=x)
            return x
        if self.offset:
            x.sub_(float(self.offset))
        x.mul_(self.scale)
        if self.clip:
            x.clamp_(0.0, self.top)
        return x

    @property
    def source_range(self) -> tuple[float, float]:
        """The input values mapped onto ``[0, top]`` (where ``clip`` cuts)."""
        return (float(self.offset), float(self.offset) + self.top / self.scale)


#: Levels a slice dataset stores the card's window in (uint8, 0 to 255).
DATASET_LEVELS = 255
#: A dataset's stored levels back to the card's ``[0, 1]``: what training feeds the network.
STORED_TO_UNIT = ScaleIntensity(0.0, 1.0 / DATASET_LEVELS, clip=False)


def intensity_for(voxels: npt.NDArray[Any], spec: InputSpec) -> ScaleIntensity:
    """The transform ``spec`` names, its statistics taken from the whole of ``voxels`` once:
    ``window`` (the card's centre and width), ``percentile`` (0.5th to 99.5th percentile onto
    [0, 1], clipped), ``zscore`` (mean 0, standard deviation 1) or none."""
    if spec.normalise == Normalise.WINDOW:
        assert spec.window is not None
        return ScaleIntensity.window(*spec.window)
    if spec.normalise == Normalise.PERCENTILE:
        flat = np.asarray(voxels).reshape(-1)
        step = max(1, flat.size // 1_000_000)
        lo, hi = np.percentile(flat[::step].astype(np.float32), [0.5, 99.5])
        # ``lo`` stays a numpy float64: subtracted from float32 voxels it is computed in float64.
        return ScaleIntensity(lo, 1.0 / max(float(hi - lo), 1e-6), clip=True)
    if spec.normalise == Normalise.ZSCORE:
        v = np.asarray(voxels, dtype=np.float32)
        return ScaleIntensity(float(v.mean()), 1.0 / max(float(v.std()), 1e-6), clip=False)
    return ScaleIntensity(0.0, 1.0, clip=False)
