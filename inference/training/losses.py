"""Training losses beyond the task's own: the mask-guided attention loss.

Importing this module does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from inference.errors import TrainingError

if TYPE_CHECKING:
    import torch

__all__ = ["attention_guidance_loss"]


def attention_guidance_loss(
    model: torch.nn.Module, masks: torch.Tensor, labels: torch.Tensor, target: str = "touch"
) -> torch.Tensor:
    """Mask-guided attention, mean over the positive slices that have a lesion in their mask.

    ``model.attention_weights`` (B, h, w; each map sums to 1, from the forward just run, with its
    graph) is compared with the slices' lesion masks (B, H, W) on the attention's grid:

    * ``target="touch"``: ``−log`` of the attention on the cells the lesion touches (max-pooled
      masks). Any spread over those cells costs nothing, so the peak may sit on a cell the lesion
      barely touches, whose centre lies outside it.
    * ``target="coverage"``: the cross-entropy from the lesion's share of each cell (average-pooled
      masks, normalised to sum to 1) to the attention: the attention is drawn to the cells the
      lesion fills, so its peak lands inside the lesion.

    Negatives, and positives whose lesion augmentation moved off the image, add nothing. The
    simulated lesions' masks come free with the dataset: this teaches the attention to point at them.
    """
    import torch
    import torch.nn.functional as F

    from inference.training.distributed import unwrapped

    attn = getattr(unwrapped(model), "attention_weights", None)  # a DDP-wrapped model holds it inside
    if not isinstance(attn, torch.Tensor):
        raise TrainingError(
            f"train.attention_loss needs a model with attention pooling (cnn-attention with pooling = "
            f'"attention"); {type(model).__name__} has none'
        )
    m = masks[:, None].float()
    if target == "coverage":
        h, w = attn.shape[-2:]
        share = F.adaptive_avg_pool2d(m, (h, w))[:, 0].flatten(1)
        total = share.sum(dim=1)
        keep = (labels > 0.5) & (total > 0)
        if not bool(keep.any()):
            return attn.sum() * 0.0
        wanted = share[keep] / total[keep, None]
        log_attn = torch.log(attn.float().flatten(1)[keep].clamp_min(1e-6))
        return -(wanted * log_attn).sum(dim=1).mean()
    grid = F.adaptive_max_pool2d(m, attn.shape[-2:])[:, 0] > 0
    keep = (labels > 0.5) & grid.flatten(1).any(dim=1)
    if not bool(keep.any()):
        return attn.sum() * 0.0
    inside = (attn.float() * grid).flatten(1).sum(dim=1)[keep]
    return -torch.log(inside.clamp_min(1e-6)).mean()
