"""Forward-only rewrites of RadLens networks, for :mod:`inference.engine.optimize`.

This module imports torch at the top, so it is only ever imported lazily.
"""

from __future__ import annotations

import functools

import torch  # noqa: TID253 (imported lazily, only from inference.engine.optimize)
import torch.nn.functional as F  # noqa: TID253
from torch import nn  # noqa: TID253

from inference.models._nets import ResidualBlock, SliceCNN, _check_slices


class ConvReLU(nn.Module):
    """A 2-D convolution and the ReLU after it as one oneDNN call, the ReLU a post-op of the
    convolution (no second pass over its output): the primitive ``torch.compile`` uses for the
    same fusion on the CPU. Forward only (the operator has no gradient); ``conv`` is shared."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        padding = [int(p) for p in c.padding]  # never "same"/"valid": fusable() says so
        out: torch.Tensor = torch.ops.mkldnn._convolution_pointwise(
            x, c.weight, c.bias, padding, list(c.stride), list(c.dilation), c.groups, "relu", [], ""
        )
        return out


@functools.cache
def _conv_relu_works() -> bool:
    """Whether this torch has the fused operator and it gives conv + ReLU (checked once)."""
    if not torch.backends.mkldnn.is_available():  # type: ignore[no-untyped-call]
        return False
    g = torch.Generator().manual_seed(0)
    conv = nn.Conv2d(3, 8, 4, stride=2, padding=1).eval()
    x = torch.randn((2, 3, 19, 21), generator=g).contiguous(memory_format=torch.channels_last)
    try:
        with torch.inference_mode():
            got, want = ConvReLU(conv)(x), torch.relu(conv(x))
    except (RuntimeError, AttributeError, TypeError):
        return False
    return got.shape == want.shape and torch.allclose(got, want, rtol=1e-5, atol=1e-6)


def fusable(conv: nn.Module, relu: nn.Module) -> bool:
    """Whether ``conv`` then ``relu`` can be one :class:`ConvReLU` (a float32 2-D convolution on the CPU)."""
    return (
        type(conv) is nn.Conv2d
        and type(relu) is nn.ReLU
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)
        and conv.weight.dtype == torch.float32
        and conv.weight.device.type == "cpu"
        and not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in (conv, relu))
        and _conv_relu_works()
    )


class PooledShortcutCNN(nn.Module):
    """The ``cnn`` classifier with its last block's 1×1 shortcut moved after the average pooling.

    :class:`SliceCNN` computes ``fc(mean(body(f) + W f))`` with ``W`` a bias-free 1×1 convolution;
    the mean over positions is linear, so that is ``fc(mean(body(f)) + W mean(f))``: a (B, C)
    product instead of a convolution and an add over the whole feature map. Every module is the
    one of the network it was made from (shared, not copied).
    """

    def __init__(self, network: SliceCNN) -> None:
        super().__init__()
        blocks = list(network.backbone.blocks)
        last = blocks[-1]
        assert isinstance(last, ResidualBlock)
        self.stem = nn.Sequential(*blocks[:-1])
        self.body = last.body
        self.shortcut = last.shortcut
        self.dropout = network.dropout
        self.fc = network.fc
        # The same modules called one after the other, without the Sequentials and Identities between.
        self._stem_steps = _steps(self.stem)
        self._body_steps = _steps(self.body)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_slices(x, "cnn")
        for step in self._stem_steps:
            x = step(x)
        f = x
        for step in self._body_steps:
            x = step(x)
        w = self.shortcut.weight
        pooled = x.mean(dim=(2, 3)) + F.linear(f.mean(dim=(2, 3)), w.reshape(w.shape[0], w.shape[1]))
        out: torch.Tensor = self.fc(self.dropout(pooled))
        return out


def _steps(module: nn.Module) -> list[nn.Module]:
    """The modules a plain ``nn.Sequential`` (nested ones opened too) calls in turn, Identities left out."""
    if type(module) is nn.Identity:
        return []
    plain = type(module).forward is nn.Sequential.forward and isinstance(module, nn.Sequential)
    if not plain or module._forward_hooks or module._forward_pre_hooks:
        return [module]
    return [step for child in module.children() for step in _steps(child)]


def _plain_shortcut(module: nn.Module) -> bool:
    return (
        type(module) is nn.Conv2d
        and module.kernel_size == (1, 1)
        and module.stride == (1, 1)
        and module.padding == (0, 0)
        and module.dilation == (1, 1)
        and module.groups == 1
        and module.bias is None
        and module.padding_mode == "zeros"
    )


def pooled_shortcut(network: nn.Module) -> nn.Module | None:
    """:class:`PooledShortcutCNN` of ``network`` if it is a ``cnn`` whose last block has a plain 1×1
    shortcut, no hooks anywhere, and the rewrite gives its outputs on a random batch (a check that
    it still describes :class:`SliceCNN`); otherwise None."""
    if type(network) is not SliceCNN or type(network).forward is not SliceCNN.forward:
        return None
    blocks = network.backbone.blocks
    if not len(blocks) or type(blocks[-1]) is not ResidualBlock or not _plain_shortcut(blocks[-1].shortcut):
        return None
    if any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in network.modules()):
        return None
    first = next(m for m in network.modules() if isinstance(m, nn.Conv2d))
    weight = first.weight
    candidate = PooledShortcutCNN(network)
    g = torch.Generator().manual_seed(0)
    x = torch.rand((2, first.in_channels, 40, 40), generator=g).to(device=weight.device, dtype=weight.dtype)
    with torch.inference_mode():
        want, got = network(x), candidate(x)
    scale = float(want.abs().max()) + 1.0
    return candidate if torch.allclose(got, want, rtol=1e-4, atol=1e-5 * scale) else None
