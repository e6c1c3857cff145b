"""Batch augmentations on torch tensors, the same geometry for an image and its mask.

Every random number comes from the ``torch.Generator`` passed in (a CPU generator), so a batch
is augmented identically whenever the generator is seeded identically, on any device.

Importing this module does not import torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from inference.training.config import AugmentConfig


@dataclass(frozen=True)
class AugmentParams:
    flip: bool = True  # random left-right flip, probability 1/2
    rotate_deg: float = 10.0  # rotation angle uniform in ±rotate_deg
    scale: float = 0.1  # zoom factor uniform in [1 - scale, 1 + scale]
    intensity: float = 0.1  # contrast factor in 1 ± intensity, brightness shift in ± intensity / 2
    noise: float = 0.0  # additive Gaussian noise, SD uniform in [0, noise] per sample

    @classmethod
    def from_config(cls, cfg: AugmentConfig) -> AugmentParams:
        return cls(flip=cfg.flip, rotate_deg=cfg.rotate_deg, scale=cfg.scale, intensity=cfg.intensity, noise=cfg.noise)

    @property
    def geometric(self) -> bool:
        return self.flip or self.rotate_deg > 0 or self.scale > 0


def _uniform(n: int, half_width: float, generator: torch.Generator) -> torch.Tensor:
    import torch

    return (torch.rand(n, generator=generator, dtype=torch.float64) * 2.0 - 1.0) * half_width


def random_affine(n: int, params: AugmentParams, generator: torch.Generator) -> torch.Tensor:
    """(n, 2, 3) ``affine_grid`` matrices: a flip, a rotation and an isotropic zoom per sample
    (identity for the parts that are switched off), float64 on the CPU."""
    import torch

    angle = _uniform(n, math.radians(params.rotate_deg), generator)
    zoom = 1.0 + _uniform(n, params.scale, generator)
    flip = torch.rand(n, generator=generator, dtype=torch.float64) < 0.5
    sx = torch.where(flip, -1.0, 1.0) if params.flip else torch.ones(n, dtype=torch.float64)
    # affine_grid maps output coordinates to input coordinates: dividing by the zoom enlarges.
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.zeros(n, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = cos * sx
    theta[:, 0, 1] = -sin
    theta[:, 1, 0] = sin * sx
    theta[:, 1, 1] = cos
    return theta


def augment_batch(
    images: torch.Tensor,
    masks: torch.Tensor | None,
    params: AugmentParams,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Augment (B, C, H, W) float images in [0, 1] and their (B, H, W) masks (or (B, K, H, W): one
    per slice of a 3-D patch whose slices are the images' channels).

    The geometry (flip, rotation, zoom; bilinear for images, nearest for masks, zeros outside)
    is identical for an image and its mask; the intensity jitter (contrast × (1 ± intensity),
    brightness ± intensity / 2) and the noise (SD uniform in [0, noise], a scanner's quantum noise
    that differs from the training scans') touch images only, clipped to [0, 1]. Random numbers are
    drawn from ``generator`` in a fixed order whatever is switched on, so changing one setting
    does not reshuffle the others. Returns new tensors; the inputs are not modified.
    """
    import torch
    import torch.nn.functional as F

    if images.ndim != 4:
        raise ValueError(f"augment_batch expects (B, C, H, W) images, got shape {tuple(images.shape)}")
    if masks is not None and (
        masks.ndim not in (3, 4) or masks.shape[0] != images.shape[0] or masks.shape[-2:] != images.shape[2:]
    ):
        raise ValueError(f"masks {tuple(masks.shape)} do not match images {tuple(images.shape)}")
    b = images.shape[0]
    theta = random_affine(b, params, generator)
    contrast = 1.0 + _uniform(b, params.intensity, generator)
    brightness = _uniform(b, params.intensity / 2.0, generator)

    out = images
    out_masks = masks
    if params.geometric and b:
        th = theta.to(device=images.device, dtype=images.dtype)
        grid = F.affine_grid(th, list(images.shape), align_corners=False)
        out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if masks is not None:
            m = (masks[:, None] if masks.ndim == 3 else masks).to(images.dtype)
            warped = F.grid_sample(m, grid, mode="nearest", padding_mode="zeros", align_corners=False)
            out_masks = (warped[:, 0] if masks.ndim == 3 else warped).to(masks.dtype)
    if params.intensity > 0 and b:
        shape = (b, 1, 1, 1)
        c = contrast.to(device=images.device, dtype=images.dtype).view(shape)
        br = brightness.to(device=images.device, dtype=images.dtype).view(shape)
        out = torch.clamp(out * c + br, 0.0, 1.0)
    if params.noise > 0 and b:
        # Drawn last, so that switching noise on leaves every other random number as it was.
        sd = torch.rand(b, generator=generator, dtype=torch.float64) * params.noise
        field = torch.randn(tuple(images.shape), generator=generator, dtype=torch.float32)
        field = field.to(device=images.device, dtype=images.dtype)
        out = torch.clamp(out + field * sd.to(device=images.device, dtype=images.dtype).view(b, 1, 1, 1), 0.0, 1.0)
    return out, out_masks
