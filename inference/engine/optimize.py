"""A forward-only view of a network for batch inference: fewer passes over each feature map.

:func:`inference_network` returns a network that computes what the loaded one computes, within
float rounding: BatchNorm folded into the convolution before it; on the CPU, each convolution
and the ReLU after it one oneDNN call (:class:`inference.engine._fast_nets.ConvReLU`), folded
2-D weights in channels-last order; for the ``cnn`` architecture, the last block's 1×1 shortcut
applied after the average pooling; for ``cnn-attention`` with attention pooling, its head
rewritten (:class:`inference.engine._fast_nets.FusedAttentionCNN`: one projection convolution,
the fusing convolution's deep half before the upsampling, no concatenation). It is for forward
passes without gradients only: explanations (Grad-CAM hooks on ``gradcam_layer`` or the last
convolution, ``last_attention``) keep using the network as loaded, whose modules are never changed.

Nothing is deep-copied: only the modules on the path to a changed one are shallow copies with
their own ``_modules`` (so a wrapper's own attributes, and every parameter that is not folded,
are shared with the loaded network); the folded convolutions are new modules with new weights.

Importing this module does not import torch.
"""

from __future__ import annotations

import copy
import itertools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def _foldable(conv: torch.nn.Module, norm: torch.nn.Module) -> bool:
    from torch import nn

    pairs = ((nn.Conv1d, nn.BatchNorm1d), (nn.Conv2d, nn.BatchNorm2d), (nn.Conv3d, nn.BatchNorm3d))
    return (
        any(type(conv) is c and type(norm) is b for c, b in pairs)
        and isinstance(conv, nn.modules.conv._ConvNd)
        and isinstance(norm, nn.modules.batchnorm._BatchNorm)
        and not conv.training
        and not norm.training
        and norm.running_mean is not None
        and norm.running_var is not None
        and norm.num_features == conv.out_channels
        and not any(_has_hooks(m) for m in (conv, norm))
    )


def _has_hooks(module: torch.nn.Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks or module._backward_hooks)


def _fold(module: torch.nn.Module, channels_last: bool, relu: bool) -> torch.nn.Module:
    """``module`` itself if nothing below it folds, else a shallow copy with folded children."""
    import torch
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    children = dict(module._modules)
    changed = False
    if type(module).forward is nn.Sequential.forward and isinstance(module, nn.Sequential) and not _has_hooks(module):
        names = list(children)
        for first, second in itertools.pairwise(names):
            conv, norm = children[first], children[second]
            if conv is None or norm is None or not _foldable(conv, norm):
                continue
            assert isinstance(conv, nn.modules.conv._ConvNd) and isinstance(norm, nn.modules.batchnorm._BatchNorm)
            fused = fuse_conv_bn_eval(conv, norm)
            for param in fused.parameters():
                param.requires_grad_(False)
            if channels_last and fused.weight.ndim == 4:
                fused.weight.data = fused.weight.data.contiguous(memory_format=torch.channels_last)
            children[first], children[second] = fused, nn.Identity()
            changed = True
        if relu:
            changed |= _fuse_relu(children)
    for name, child in children.items():
        if child is None:
            continue
        new = _fold(child, channels_last, relu)
        if new is not child:
            children[name] = new
            changed = True
    if not changed:
        return module
    clone = copy.copy(module)  # shares __dict__ values: parameters, buffers, hooks, the wrapper's own state
    clone._modules = children  # its own child table: the loaded network keeps its modules
    return clone


def _fuse_relu(children: dict[str, torch.nn.Module | None]) -> bool:
    """Each convolution followed (past folded-away BatchNorms) by a ReLU in a Sequential's ``children``
    becomes one :class:`inference.engine._fast_nets.ConvReLU`; the ReLU an Identity."""
    from torch import nn

    from inference.engine import _fast_nets

    names = list(children)
    changed = False
    for i, name in enumerate(names):
        conv = children[name]
        j = i + 1
        while j < len(names) and type(children[names[j]]) is nn.Identity:
            j += 1
        if j == len(names) or conv is None:
            continue
        relu = children[names[j]]
        if relu is not None and isinstance(conv, nn.Conv2d) and _fast_nets.fusable(conv, relu):
            children[name], children[names[j]] = _fast_nets.ConvReLU(conv), nn.Identity()
            changed = True
    return changed


def fold_batchnorm(network: torch.nn.Module, *, channels_last: bool = False, relu: bool = False) -> torch.nn.Module:
    """``network`` with each eval-mode BatchNorm that directly follows a convolution in a plain
    ``nn.Sequential`` folded into that convolution (``channels_last``: the folded 2-D weights in
    channels-last order) and, with ``relu``, each float32 2-D convolution on the CPU followed by
    a ReLU there made one fused call. ``network`` itself when nothing changes, when it is
    TorchScript or in training mode. ``network`` is not modified."""
    import torch

    if isinstance(network, torch.jit.ScriptModule) or network.training:
        return network
    with torch.inference_mode(False), torch.no_grad():  # ordinary tensors, even when called in inference mode
        return _fold(network, channels_last, relu)


def inference_network(network: torch.nn.Module, *, cpu: bool = False) -> torch.nn.Module:
    """:func:`fold_batchnorm` (on the ``cpu``: channels-last folded weights, conv + ReLU fused), then,
    for the ``cnn`` architecture, its last 1×1 shortcut applied after the average pooling
    (:func:`inference.engine._fast_nets.pooled_shortcut`); for ``cnn-attention`` with attention
    pooling, its head rewritten (:func:`inference.engine._fast_nets.fused_attention`). ``network``
    is not modified; the result shares every parameter that is not folded."""
    fast = fold_batchnorm(network, channels_last=cpu, relu=cpu)
    if fast.training:
        return fast
    from inference.engine._fast_nets import fused_attention, pooled_shortcut

    return pooled_shortcut(fast) or fused_attention(fast) or fast
