"""Why a network said what it said: Grad-CAM and attention maps, as arrays over the input.

Both maps mean "where the evidence for the target class is", scaled per sample to [0, 1] by
the sample's own maximum. They are **not** probabilities, and a map of all zeros means the
layer holds no positive evidence for the target (it is left at zero, never inverted or
stretched).

Importing this module does not import torch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch


@contextmanager
def _capture_output(layer: torch.nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """Record ``layer``'s forward output under ``"activations"``; the hook is removed on exit,
    including when the forward (or anything else in the block) raises."""
    import torch

    store: dict[str, torch.Tensor] = {}

    def hook(_module: torch.nn.Module, _inputs: Any, output: Any) -> None:
        if isinstance(output, (tuple, list)):
            output = output[0]
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"grad_cam: layer {type(layer).__name__} does not output a tensor")
        store["activations"] = output

    handle = layer.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def default_layer(model: torch.nn.Module) -> torch.nn.Module:
    """``model.gradcam_layer`` if it has one, otherwise its last convolution."""
    import torch

    layer = getattr(model, "gradcam_layer", None)
    if isinstance(layer, torch.nn.Module):
        return layer
    convs = [m for m in model.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)]
    if not convs:
        raise ValueError(f"grad_cam: {type(model).__name__} has no gradcam_layer and no convolution; pass layer=")
    return convs[-1]


def _target_score(output: Any, target: int) -> torch.Tensor:
    """Per-sample score (B,) for class/channel ``target``: the logit for (B, K) outputs, the sum
    of the channel's logits for segmentation-like (B, K, ...) outputs. For a tuple output
    (e.g. ``cnn-rnn``'s ``(study_logit, slice_logits)``) the first element is used."""
    import torch

    if isinstance(output, (tuple, list)):
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"grad_cam: the model returned {type(output).__name__}, not a tensor")
    if output.ndim == 1:
        if target != 0:
            raise ValueError(f"grad_cam: target={target} but the model has a single output")
        return output
    k = output.shape[1]
    if not -k <= target < k:
        raise ValueError(f"grad_cam: target={target} is out of range for {k} output channels")
    sel = output[:, target]
    return sel.flatten(1).sum(dim=1) if sel.ndim > 1 else sel


def _normalise_per_sample(maps: torch.Tensor) -> np.ndarray:
    """Divide each sample by its own maximum; an all-zero sample stays zero."""
    import torch

    peak = maps.flatten(1).amax(dim=1).view(-1, *([1] * (maps.ndim - 1)))
    out = torch.where(peak > 0, maps / peak.clamp_min(torch.finfo(maps.dtype).tiny), torch.zeros_like(maps))
    return out.clamp_(0.0, 1.0).cpu().numpy().astype(np.float32)


def _upsample(maps: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """(N, *spatial) → (N, *size), bilinear in 2-D, trilinear in 3-D."""
    import torch.nn.functional as F

    if tuple(maps.shape[1:]) == tuple(size):
        return maps
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(size)]
    return F.interpolate(maps.unsqueeze(1), size=size, mode=mode, align_corners=False).squeeze(1)


def _activations_and_grads(
    model: torch.nn.Module, xin_source: torch.Tensor, layer: torch.nn.Module, target: int
) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    with torch.inference_mode(False), torch.enable_grad(), _capture_output(layer) as store:
        # A normal (non-inference) leaf that requires grad, so the graph reaches the layer
        # even when every parameter is frozen or the caller is in inference mode.
        xin = xin_source.detach().clone().requires_grad_(True)
        output = model(xin)
        if "activations" not in store:
            raise ValueError(f"grad_cam: layer {type(layer).__name__} was not used in the forward pass")
        acts = store["activations"]
        score = _target_score(output, target)
        (grads,) = torch.autograd.grad(score.sum(), acts, allow_unused=True)
    if grads is None:
        grads = torch.zeros_like(acts)
    return acts, grads


def grad_cam(
    model: torch.nn.Module,
    x: torch.Tensor,
    layer: torch.nn.Module | None = None,
    target: int = 0,
) -> np.ndarray:
    """Grad-CAM of ``model`` on ``x`` at ``layer`` (default ``model.gradcam_layer``).

    ``x`` is (B, C, H, W) for slice models, (B, C, D, H, W) for volume models, or
    (B, S, C, H, W) for stack models such as ``cnn-rnn`` (when the layer sees B·S slices).
    The score is the logit of output ``target`` (for (B, K, ...) segmentation outputs, the sum
    of channel ``target``'s logits). The map is ReLU(Σ_k α_k A_k) with α_k the spatial mean of
    ∂score/∂A_k, upsampled (bilinear / trilinear) to the input's spatial size and divided by
    each sample's own maximum.

    Returns float32 in [0, 1]: (B, H, W), (B, D, H, W), or (B, S, H, W) for stacks. The values
    say where the evidence *for* the target is, relative to the strongest spot in that
    sample; they are not probabilities. A sample with no positive evidence gives zeros.

    Works whether or not the caller is inside ``torch.inference_mode()`` or ``no_grad()``;
    the model's train/eval mode is left as it was, no parameter's ``.grad`` is touched, and
    the hook on ``layer`` is removed even if the forward raises.
    """
    import torch

    if x.ndim not in (4, 5):
        raise ValueError(f"grad_cam expects (B, C, H, W) or (B, C, D, H, W) input, got shape {tuple(x.shape)}")
    layer = default_layer(model) if layer is None else layer
    b = x.shape[0]
    # In train mode the forward would update BatchNorm running statistics: restore them after.
    saved = {k: v.detach().clone() for k, v in model.named_buffers()} if model.training else {}
    try:
        acts, grads = _activations_and_grads(model, xin_source=x, layer=layer, target=target)
    finally:
        if saved:
            with torch.no_grad():
                for k, v in model.named_buffers():
                    if k in saved:
                        v.copy_(saved[k])
    acts, grads = acts.detach().float(), grads.detach().float()
    spatial = tuple(range(2, acts.ndim))
    weights = grads.mean(dim=spatial, keepdim=True)
    cam = torch.relu((weights * acts).sum(dim=1))  # (N, *spatial)

    if x.ndim == 5 and acts.ndim == 4 and acts.shape[0] == b * x.shape[1]:
        # a stack model: the layer saw B·S slices of (C, H, W)
        s = x.shape[1]
        cam = _upsample(cam, tuple(x.shape[-2:])).view(b, s, *x.shape[-2:])
        return _normalise_per_sample(cam)
    in_spatial = tuple(x.shape[2:])
    if cam.ndim - 1 != len(in_spatial) or cam.shape[0] != b:
        raise ValueError(
            f"grad_cam: layer output {tuple(acts.shape)} does not match the input {tuple(x.shape)}; pick another layer"
        )
    return _normalise_per_sample(_upsample(cam, in_spatial))


def attention_map(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    """The attention each position receives (``model.last_attention``, mean over queries) after
    a forward pass on ``x`` (B, C, H, W), upsampled bilinearly to (B, H, W) and divided by each
    sample's own maximum: float32 in [0, 1], "where the model looked", not a probability.

    Runs the forward under ``torch.no_grad()`` and leaves the model's train/eval mode as is.
    """
    import torch

    if x.ndim != 4:
        raise ValueError(f"attention_map expects (B, C, H, W) input, got shape {tuple(x.shape)}")
    with torch.no_grad():
        model(x)
    found = last_attention_map(model, x.shape)
    if found is None:
        raise ValueError(f"attention_map: {type(model).__name__} has no last_attention after a forward pass")
    return found


def last_attention_map(model: torch.nn.Module, input_shape: Sequence[int]) -> np.ndarray | None:
    """:func:`attention_map` of the forward pass ``model`` has just run on an input of
    ``input_shape`` (B, C, H, W), without running it again; None when the model keeps no
    ``last_attention`` (TorchScript, other architectures)."""
    import torch

    attn = getattr(model, "last_attention", None)
    if not isinstance(attn, torch.Tensor):
        return None
    if attn.ndim != 3 or attn.shape[0] != input_shape[0]:
        raise ValueError(f"attention_map: last_attention has shape {tuple(attn.shape)}, expected (B, h, w)")
    return _normalise_per_sample(_upsample(attn.detach().float(), tuple(input_shape[-2:])))
