"""Forward-only rewrites of RadLens networks, for :mod:`inference.engine.optimize`.

This module imports torch at the top, so it is only ever imported lazily.
"""

from __future__ import annotations

import functools

import torch  # noqa: TID253 (imported lazily, only from inference.engine.optimize)
import torch.nn.functional as F  # noqa: TID253
from torch import nn  # noqa: TID253

from inference.models.nets import (
    AttentionCNN,
    AttentionPool2d,
    ResidualBlock,
    SelfAttention2d,
    SliceCNN,
    check_slices,
)


class ConvReLU(nn.Module):
    """A 2-D convolution and the ReLU after it as one oneDNN call, the ReLU a post-op of the
    convolution (no second pass over its output): the primitive ``torch.compile`` uses for the
    same fusion on the CPU. Forward only (the operator has no gradient); ``conv`` is shared."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _conv_unary(x, self.conv, "relu")


def _conv_unary(x: torch.Tensor, conv: nn.Conv2d, unary: str) -> torch.Tensor:
    """``conv`` and ``unary`` (``"relu"``, ``"tanh"``) after it as one oneDNN call."""
    padding = [int(p) for p in conv.padding]  # never "same"/"valid": the callers check
    out: torch.Tensor = torch.ops.mkldnn._convolution_pointwise(
        x, conv.weight, conv.bias, padding, list(conv.stride), list(conv.dilation), conv.groups, unary, [], ""
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


def _add_relu(x: torch.Tensor, other: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``relu(conv1x1(x) + other)`` as one oneDNN call (the add and the ReLU post-ops of the convolution)."""
    out: torch.Tensor = torch.ops.mkldnn._convolution_pointwise.binary(
        x, other, weight, bias, [0, 0], [1, 1], [1, 1], 1, "add", None, "relu", [], ""
    )
    return out


@functools.cache
def _fused_head_works() -> bool:
    """Whether this torch has the fused 1×1 operators the attention head uses on the CPU and they give
    what the separate steps give (checked once)."""
    if not _conv_relu_works():
        return False
    g = torch.Generator().manual_seed(0)
    shapes = ((2, 5, 7, 9), (2, 4, 7, 9))
    x, other = (torch.randn(s, generator=g).contiguous(memory_format=torch.channels_last) for s in shapes)
    with torch.random.fork_rng(devices=[]):  # the global generator's state stays as it was
        torch.manual_seed(0)
        conv = nn.Conv2d(5, 4, 1).eval()
    weight, bias = conv.weight.detach(), conv.bias
    try:
        with torch.inference_mode():
            pairs = [
                (_add_relu(x, other, weight, bias), torch.relu(conv(x) + other)),
                (_conv_unary(x, conv, "tanh"), torch.tanh(conv(x))),
            ]
    except (RuntimeError, AttributeError, TypeError):
        return False
    return all(got.shape == want.shape and torch.allclose(got, want, rtol=1e-5, atol=1e-5) for got, want in pairs)


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
        check_slices(x, "cnn")
        f = _through(self._stem_steps, x)
        x = _through(self._body_steps, f)
        w = self.shortcut.weight
        pooled = x.mean(dim=(2, 3)) + F.linear(f.mean(dim=(2, 3)), w.reshape(w.shape[0], w.shape[1]))
        out: torch.Tensor = self.fc(self.dropout(pooled))
        return out


def _through(steps: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
    for step in steps:
        x = step(x)
    return x


def _steps(module: nn.Module) -> list[nn.Module]:
    """The modules a plain ``nn.Sequential`` (nested ones opened too) calls in turn, Identities left out."""
    if type(module) is nn.Identity:
        return []
    plain = type(module).forward is nn.Sequential.forward and isinstance(module, nn.Sequential)
    if not plain or module._forward_hooks or module._forward_pre_hooks:
        return [module]
    return [step for child in module.children() for step in _steps(child)]


def pooled_shortcut(network: nn.Module) -> nn.Module | None:
    """:class:`PooledShortcutCNN` of ``network`` if it is a ``cnn`` whose last block has a plain 1×1
    shortcut, no hooks anywhere, and the rewrite gives its outputs on a random batch (a check that
    it still describes :class:`SliceCNN`); otherwise None."""
    if type(network) is not SliceCNN or type(network).forward is not SliceCNN.forward:
        return None
    blocks = network.backbone.blocks
    if not len(blocks) or type(blocks[-1]) is not ResidualBlock or not _plain_conv1x1(blocks[-1].shortcut, bias=False):
        return None
    if any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in network.modules()):
        return None
    candidate = PooledShortcutCNN(network)
    return candidate if _same_outputs(network, candidate) else None


def _same_outputs(network: nn.Module, candidate: nn.Module, with_attention: bool = False) -> bool:
    """Whether ``candidate`` gives ``network``'s logits (and, ``with_attention``, its ``last_attention``)
    on a random batch of 40 × 40 slices, within float rounding."""
    first = next(m for m in network.modules() if isinstance(m, nn.Conv2d))
    weight = first.weight
    g = torch.Generator().manual_seed(0)
    x = torch.rand((2, first.in_channels, 40, 40), generator=g).to(device=weight.device, dtype=weight.dtype)
    with torch.inference_mode():
        pairs = [(network(x), candidate(x))]
        if with_attention:
            pairs.append((getattr(network, "last_attention", None), getattr(candidate, "last_attention", None)))
    for want, got in pairs:
        if not isinstance(want, torch.Tensor) or not isinstance(got, torch.Tensor) or got.shape != want.shape:
            return False
        scale = float(want.abs().max()) + 1.0
        if not torch.allclose(got, want, rtol=1e-4, atol=1e-5 * scale):
            return False
    return True


class FusedAttentionCNN(nn.Module):
    """The ``cnn-attention`` classifier with attention pooling, rewritten for forward passes.

    :class:`AttentionCNN` computes ``pool(relu(W [skip; up(a)] + b))`` with ``a = f + γ·attend(f)``,
    ``up`` the bilinear upsampling (×2, or ×4 with ``pool_scale=2``) and ``W`` the 1×1 fusing
    convolution (BatchNorm folded in).
    Here the self-attention's query, key and value convolutions are one convolution, its residual
    add is part of the product (``baddbmm``), and ``W`` is split into its columns for ``skip`` and
    for ``a``: ``W_a`` is applied *before* the upsampling, on a fraction of the positions (both are
    linear and the upsampling's weights sum to one at every pixel, so they commute), and nothing
    is concatenated. The small map ``W_a a`` takes the skip's memory layout before it is upsampled
    (channels-last on the CPU: converting the upsampled map instead cost about a fifth of the forward).
    On the CPU, ``W_skip``, the add and the ReLU are one oneDNN call, and so are the pooling's key
    convolution and its tanh. ``last_attention`` is the attention pooling's, as the loaded network's.
    The backbone, the pooling and their parameters are the network's own (shared, not copied).
    """

    qkv_weight: torch.Tensor
    qkv_bias: torch.Tensor
    skip_weight: torch.Tensor
    deep_weight: torch.Tensor
    fuse_bias: torch.Tensor | None

    def __init__(self, network: AttentionCNN, fuse: nn.Conv2d) -> None:
        super().__init__()
        blocks = list(network.backbone.blocks)
        at = network.skip_block + 1
        self.stem = nn.Sequential(*blocks[:at])  # its output is the skip (AttentionCNN's forward_with_skip)
        self.deep = nn.Sequential(*blocks[at:])
        self._stem_steps, self._deep_steps = _steps(self.stem), _steps(self.deep)
        attention = network.attention
        self.keys = attention.query.out_channels
        projections = (attention.query, attention.key, attention.value)
        with torch.no_grad():
            self.register_buffer("qkv_weight", torch.cat([p.weight for p in projections]).detach().clone())
            biases = [p.bias if p.bias is not None else torch.zeros(p.out_channels) for p in projections]
            self.register_buffer("qkv_bias", torch.cat(biases).detach().clone())
            skip_channels = fuse.in_channels - attention.value.out_channels
            self.register_buffer("skip_weight", fuse.weight[:, :skip_channels].detach().clone())
            self.register_buffer("deep_weight", fuse.weight[:, skip_channels:].detach().clone())
            self.register_buffer("fuse_bias", fuse.bias.detach().clone() if fuse.bias is not None else None)
        self.gamma = float(attention.gamma.detach())
        self.scale = attention.scale
        self.pool = network.pool
        key = self.pool.key
        self._fused_pool = (
            _plain_conv1x1(key) and key.weight.dtype == torch.float32 and key.weight.device.type == "cpu"
            and _fused_head_works()
        )  # fmt: skip

    @property
    def last_attention(self) -> torch.Tensor | None:
        return self.pool.last_attention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_slices(x, "cnn-attention")
        skip = _through(self._stem_steps, x)
        x = _through(self._deep_steps, skip)
        b, c, h, w = x.shape
        qkv = F.conv2d(x, self.qkv_weight, self.qkv_bias).flatten(2)  # (B, 2d + C, N)
        d = self.keys
        q, k, v = qkv[:, :d].transpose(1, 2), qkv[:, d : 2 * d], qkv[:, 2 * d :]
        weights = torch.softmax(torch.bmm(q, k).mul_(self.scale), dim=-1)  # (B, N queries, N keys)
        attended = torch.baddbmm(x.flatten(2), v, weights.transpose(1, 2), alpha=self.gamma).view(b, c, h, w)
        channels_last = skip.is_contiguous(memory_format=torch.channels_last) and not skip.is_contiguous()
        layout = torch.channels_last if channels_last else torch.contiguous_format
        deep = F.conv2d(attended, self.deep_weight).contiguous(memory_format=layout)
        deep = F.interpolate(deep, size=skip.shape[-2:], mode="bilinear")
        logit: torch.Tensor
        if channels_last and self._fused_pool and skip.device.type == "cpu" and skip.dtype == torch.float32:
            fused = _add_relu(skip, deep.contiguous(memory_format=layout), self.skip_weight, self.fuse_bias)
            logit = self.pool.pool_keys(_conv_unary(fused, self.pool.key, "tanh"))
        else:
            fused = F.conv2d(skip, self.skip_weight, self.fuse_bias).add_(deep).relu_()
            logit = self.pool(fused)
        return logit


def _plain_conv1x1(module: nn.Module, bias: bool | None = None) -> bool:
    """A 1×1, stride-1, unpadded, ungrouped 2-D convolution (with a bias if ``bias``, without if False)."""
    return (
        type(module) is nn.Conv2d
        and module.kernel_size == (1, 1)
        and module.stride == (1, 1)
        and module.padding == (0, 0)
        and module.dilation == (1, 1)
        and module.groups == 1
        and module.padding_mode == "zeros"
        and (bias is None or (module.bias is not None) == bias)
    )


def _fuse_conv(network: AttentionCNN) -> nn.Conv2d | None:
    """The attention head's fusing convolution when BatchNorm is folded into it and a ReLU alone follows."""
    steps = _steps(network.fuse)
    conv: nn.Module
    if len(steps) == 1 and type(steps[0]) is ConvReLU:
        conv = steps[0].conv
    elif len(steps) == 2 and type(steps[1]) is nn.ReLU:
        conv = steps[0]
    else:
        return None  # BatchNorm not folded (a hook on it), or something else
    return conv if isinstance(conv, nn.Conv2d) and _plain_conv1x1(conv) else None


def fused_attention(network: nn.Module) -> nn.Module | None:
    """:class:`FusedAttentionCNN` of ``network`` if it is a ``cnn-attention`` with attention pooling,
    its BatchNorms folded (:func:`inference.engine.optimize.fold_batchnorm`), no hooks anywhere,
    and the rewrite gives its outputs and attention on a random batch; otherwise None."""
    if type(network) is not AttentionCNN or type(network).forward is not AttentionCNN.forward:
        return None
    if network.pooling != "attention" or len(network.backbone.blocks) < 3:
        return None
    attention, pool = network.attention, network.pool
    if type(attention) is not SelfAttention2d or type(attention).forward is not SelfAttention2d.forward:
        return None
    if type(pool) is not AttentionPool2d or type(pool).forward is not AttentionPool2d.forward:
        return None
    if not all(_plain_conv1x1(p) for p in (attention.query, attention.key, attention.value)):
        return None
    if any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in network.modules()):
        return None
    fuse = _fuse_conv(network)
    if fuse is None:
        return None
    candidate = FusedAttentionCNN(network, fuse)
    return candidate if _same_outputs(network, candidate, with_attention=True) else None
