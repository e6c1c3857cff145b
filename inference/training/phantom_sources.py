"""Generated chest phantoms as dataset sources: each varied in size, field of view, noise and,
optionally, its lung vessel trees; the phantom's own nodules are its mask.

Generated data: weights trained on it can be shipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.training.sources import SourceVolume
from inference.volume import Volume

__all__ = ["add_phantoms", "phantom_nodule_mask"]


def _phantom_mask(volume: Volume, nodules: Sequence[Any]) -> npt.NDArray[np.uint8]:
    k, j, i = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in volume.shape), indexing="ij")
    si, sj, sk = volume.spacing
    mask = np.zeros(volume.shape, dtype=np.uint8)
    for n, nod in enumerate(nodules):
        ci, cj, ck = nod.center_ijk
        inside = ((i - ci) * si) ** 2 + ((j - cj) * sj) ** 2 + ((k - ck) * sk) ** 2 <= nod.radius_mm**2
        mask[inside] = n + 1
    return mask


def phantom_nodule_mask(volume: Volume) -> npt.NDArray[np.uint8]:
    """The built-in nodules of a chest phantom on its grid."""
    from inference.sample_study import nodules_on_grid

    return _phantom_mask(volume, nodules_on_grid(volume.shape, volume.spacing))


def _phantom_region(volume: Volume) -> npt.NDArray[np.bool_]:
    """The phantom's lungs, minus its own nodules and a margin around them."""
    from scipy import ndimage

    from inference.sample_study import lung_mask

    nodules = ndimage.binary_dilation(phantom_nodule_mask(volume) > 0, iterations=3)
    return np.asarray(lung_mask(volume) & ~nodules, dtype=bool)


def add_phantoms(n: int, seed: int = 0, *, vessels: bool = False) -> list[SourceVolume]:
    """``n`` chest phantoms, each a source of its own, varied in size, field of view and noise;
    with ``vessels``, each lung gets its own pulmonary vessel trees
    (:mod:`inference.training.lung_vessels`), the hard negatives of real lungs.

    :func:`inference.sample_study.make_chest_phantom` fixes the anatomy in millimetres, so the
    variation comes from the grid: the pixel size (1.9–3.0 mm) changes how large the body is
    in the image and whether it fills the field of view, the in-plane and slice counts change
    the shape, and extra Gaussian noise (0–12 HU) inside the body changes the texture. The
    phantom's own nodules are the mask; lesions are inserted into its lungs. Generated data:
    weights trained on it can be shipped.
    """
    from inference.sample_study import make_chest_phantom

    rng = np.random.default_rng(seed)
    out: list[SourceVolume] = []
    for m in range(n):
        nk = int(rng.integers(28, 45))
        nj, ni = int(rng.integers(112, 145)), int(rng.integers(112, 145))
        s_inplane = float(rng.uniform(1.9, 3.0))
        sk = float(rng.uniform(4.0, 6.5))
        extra_sd = float(rng.uniform(0.0, 12.0))
        noise_seed = int(rng.integers(2**31))
        vessel_seed = int(rng.integers(2**31)) if vessels else None
        params = {"shape": [nk, nj, ni], "spacing": [s_inplane, s_inplane, sk], "extra_noise_sd": extra_sd}
        if vessel_seed is not None:
            params["vessel_seed"] = vessel_seed

        def load(
            shape: tuple[int, int, int] = (nk, nj, ni),
            spacing: tuple[float, float, float] = (s_inplane, s_inplane, sk),
            sd: float = extra_sd,
            nseed: int = noise_seed,
            vseed: int | None = vessel_seed,
        ) -> Volume:
            volume, _ = make_chest_phantom(shape, spacing)
            if vseed is not None:
                from scipy import ndimage

                from inference.sample_study import lung_mask
                from inference.training.lung_vessels import add_lung_vessels

                nodules = ndimage.binary_dilation(phantom_nodule_mask(volume) > 0, iterations=2)
                volume = add_lung_vessels(volume, lung_mask(volume), np.random.default_rng(vseed), keep_out=nodules)
            vox = volume.voxels.astype(np.float32)
            inside = vox > -950
            vox[inside] += np.random.default_rng(nseed).normal(0.0, sd, size=int(inside.sum())).astype(np.float32)
            return volume.with_voxels(np.clip(np.rint(vox), -1024, 3071).astype(np.int16))

        out.append(
            SourceVolume(
                name=f"phantom-{m:03d}",
                load=load,
                label=None,
                path="(generated chest phantom)",
                region=_phantom_region,
                mask_of=phantom_nodule_mask,
                info={"phantom": params, "mask": "built-in nodules"},
            )
        )
    return out
