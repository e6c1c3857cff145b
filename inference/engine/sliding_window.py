"""Segmentation of volumes larger than a patch: MONAI's sliding window with Gaussian blending.

The predictor is wrapped so each window reports progress and honours cancellation; the
blended output is float32 on the CPU, one copy, never float64.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from inference.errors import InferenceCancelled
from inference.progress import CancelToken, ProgressCallback

if TYPE_CHECKING:
    import torch

    from inference.engine.loaded_model import LoadedModel
    from inference.engine.result import Result

__all__ = ["OVERLAP", "segment_probabilities", "window_count"]

OVERLAP = 0.25


def window_count(shape: tuple[int, ...], roi: tuple[int, ...], overlap: float = OVERLAP) -> int:
    """How many windows MONAI's scan visits (for progress)."""
    n = 1
    for size, r in zip(shape, roi, strict=True):
        if size <= r:
            continue
        step = max(1, int(r * (1 - overlap)))
        n *= math.ceil((size - r) / step) + 1
    return n


def segment_probabilities(
    lm: LoadedModel, image: torch.Tensor, on_progress: ProgressCallback, cancel: CancelToken, result: Result
) -> torch.Tensor:
    """Class probabilities ``(1, K, d, h, w)`` for a normalised ``(1, C, d, h, w)`` image."""
    import torch
    from monai.inferers.utils import sliding_window_inference

    from inference.engine.loaded_model import forward

    spec = lm.card.input
    shape = tuple(int(s) for s in image.shape[2:])
    roi = spec.patch_size or tuple(max(16, math.ceil(s / 16) * 16) for s in shape)
    total = window_count(shape, roi)
    done = 0
    batch = max(1, spec.batch_size if spec.patch_size else 1)

    def predictor(x: torch.Tensor) -> Any:
        nonlocal done
        if cancel.cancelled:
            raise InferenceCancelled(f"cancelled after {done} of {total} windows")
        out = forward(lm, x.to(lm.device)).float()
        done += x.shape[0]
        on_progress(min(done / total, 1.0), f"window {done}/{total}")
        return out

    with torch.inference_mode():
        logits = sliding_window_inference(
            image,
            roi_size=roi,
            sw_batch_size=batch,
            predictor=predictor,
            overlap=OVERLAP,
            mode="gaussian",
            sw_device=lm.device,
            device="cpu",
            progress=False,
        )
    assert isinstance(logits, torch.Tensor)
    k = logits.shape[1]
    return torch.sigmoid(logits) if k == 1 else torch.softmax(logits, dim=1)
