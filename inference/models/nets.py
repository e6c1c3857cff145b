"""The network classes behind :func:`inference.models.architectures.build_model`.

This module imports torch at the top, so it is only ever imported lazily (from inside
``build_model``); ``import inference.models`` stays torch-free.

Every 2-D slice model exposes ``gradcam_layer`` as a *property* (not an attribute holding a
module), so it adds no duplicate keys to ``state_dict()`` and weights saved from the plain
architecture load strictly.
"""

from __future__ import annotations

import math
from typing import Any

import torch  # noqa: TID253 (imported lazily, only from build_model)
from torch import nn  # noqa: TID253

__all__ = [
    "CNNRNN",
    "POOL_SCALES",
    "AttentionCNN",
    "AttentionPool2d",
    "Backbone",
    "KerasBaseline",
    "ResidualBlock",
    "SelfAttention2d",
    "SliceCNN",
    "check_slices",
    "unet3d",
]


def check_slices(x: torch.Tensor, name: str) -> None:
    """Refuse anything but a ``(B, C, H, W)`` batch of slices, naming the network that got it."""
    if x.ndim != 4:
        raise ValueError(f"{name} expects a (B, C, H, W) batch of slices, got shape {tuple(x.shape)}")


# --------------------------------------------------------------------------------------------
# keras-baseline


class KerasBaseline(nn.Module):
    """The classic Keras slice classifier: conv 32/64/128 (3×3 valid, ReLU) each followed by
    2×2 max-pooling, flatten, dense 512, ReLU, dense 1 (a logit; the caller applies sigmoid).

    The flatten width depends on ``input_size``, so inputs must be ``input_size`` square.
    """

    def __init__(self, in_channels: int = 1, input_size: int = 224) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.input_size = input_size
        size = input_size
        for _ in range(3):
            size = (size - 2) // 2  # 3×3 valid conv, then 2×2 pool
        if size < 1:
            raise ValueError(f"keras-baseline: input_size={input_size} is too small (need at least 22)")
        self.block1 = nn.Sequential(nn.Conv2d(in_channels, 32, 3), nn.ReLU(inplace=True))
        self.block2 = nn.Sequential(nn.Conv2d(32, 64, 3), nn.ReLU(inplace=True))
        self.block3 = nn.Sequential(nn.Conv2d(64, 128, 3), nn.ReLU(inplace=True))
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(128 * size * size, 512), nn.ReLU(inplace=True), nn.Linear(512, 1)
        )

    @property
    def gradcam_layer(self) -> nn.Module:
        return self.block3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_slices(x, "keras-baseline")
        if x.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(
                f"keras-baseline was built for {self.input_size}×{self.input_size} slices, "
                f"got {tuple(x.shape[-2:])}; build it with input_size={x.shape[-1]} or resample"
            )
        x = self.pool(self.block1(x))
        x = self.pool(self.block2(x))
        x = self.pool(self.block3(x))
        out: torch.Tensor = self.head(x)
        return out


# --------------------------------------------------------------------------------------------
# cnn backbone and heads


def _conv_bn(cin: int, cout: int, stride: int) -> nn.Sequential:
    # Downsampling uses 4×4 kernels (stride 2, padding 1): output i is centred on input
    # 2i + 0.5, the centre of the 2×2 cell it summarises, so feature maps stay aligned with
    # the image and a bilinear upsample of a Grad-CAM map lands where the evidence is
    # (3×3 stride-2 kernels shift the map by half a cell per level: 3.5 px after three).
    kernel = 4 if stride == 2 else 3
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class ResidualBlock(nn.Module):
    """conv3×3-BN-ReLU plus a 1×1 projection shortcut. The shortcut carries each position's
    own features forward unshifted, which keeps Grad-CAM at this block pointing at the
    evidence itself rather than at a neighbouring cell (a plain 3×3 block here can learn to
    report a lesion one cell away and still classify perfectly)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = _conv_bn(cin, cout, 1)
        self.shortcut = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(x) + self.shortcut(x)
        return out


class Backbone(nn.Module):
    """Conv-BN-ReLU blocks, 16/32/64/128 channels by default. The first blocks halve the
    resolution (4×4 stride-2 convs); the last, a residual block, keeps it, so the feature map
    used for Grad-CAM and attention is 1/8 of the input (28×28 at 224², 8×8 at 64²)."""

    def __init__(self, in_channels: int = 1, channels: tuple[int, ...] = (16, 32, 64, 128)) -> None:
        super().__init__()
        if not channels:
            raise ValueError("channels must name at least one block")
        blocks: list[nn.Module] = []
        cin = in_channels
        for i, cout in enumerate(channels):
            last = i == len(channels) - 1
            blocks.append(ResidualBlock(cin, cout) if last else _conv_bn(cin, cout, 2))
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.out_channels = cin

    @property
    def gradcam_layer(self) -> nn.Module:
        return self.blocks[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.blocks(x)
        return out

    def forward_with_skip(self, x: torch.Tensor, at: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """``(output of block at, final features)``: block 1's output is at 1/4 of the input, block 0's at 1/2."""
        skip = x
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i == at:
                skip = x
        return skip, x


class SliceCNN(nn.Module):
    """Backbone, global average pooling, dropout, dense → ``num_outputs`` logits."""

    def __init__(
        self,
        in_channels: int = 1,
        num_outputs: int = 1,
        channels: tuple[int, ...] = (16, 32, 64, 128),
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.backbone = Backbone(in_channels, tuple(channels))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(self.backbone.out_channels, num_outputs)

    @property
    def gradcam_layer(self) -> nn.Module:
        return self.backbone.gradcam_layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_slices(x, "cnn")
        f = self.backbone(x).mean(dim=(2, 3))
        out: torch.Tensor = self.fc(self.dropout(f))
        return out


class SelfAttention2d(nn.Module):
    """Self-attention over the positions of a feature map (SAGAN-style).

    Queries, keys and values are 1×1 convolutions; weights are ``softmax(q·k / √d)`` over the
    keys; the output is ``x + γ·(attention-weighted values)`` with a learnable γ.
    ``last_attention`` (B, h, w) is the attention each position *receives*, averaged over
    all queries (it sums to 1 over the map).
    """

    def __init__(self, channels: int, key_channels: int | None = None, gamma: float = 1.0) -> None:
        super().__init__()
        d = key_channels or max(channels // 8, 1)
        self.query = nn.Conv2d(channels, d, 1)
        self.key = nn.Conv2d(channels, d, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.tensor(float(gamma)))
        self.scale = 1.0 / math.sqrt(d)
        self.last_attention: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)  # (B, N, d)
        k = self.key(x).flatten(2)  # (B, d, N)
        v = self.value(x).flatten(2)  # (B, C, N)
        attn = torch.softmax(torch.bmm(q, k) * self.scale, dim=-1)  # (B, N queries, N keys)
        out = torch.bmm(v, attn.transpose(1, 2)).view(b, c, h, w)
        self.last_attention = attn.detach().mean(dim=1).view(b, h, w)
        return x + self.gamma * out


class AttentionPool2d(nn.Module):
    """Attention pooling to one logit, the weights taken from the evidence itself.

    Each position gets a score ``s = q · tanh(K x) + b`` (keys by a 1×1 projection, a learned
    query); the attention weights are ``softmax(s)`` over the positions and the output logit is
    the attention-weighted mean of the scores, a smooth maximum. A position can only raise the
    logit by drawing the attention, so ``last_attention`` (B, h, w; it sums to 1 over the map)
    is where the decision came from: sharp on a lesion, diffuse where there is none.
    """

    def __init__(self, channels: int, key_channels: int = 32) -> None:
        super().__init__()
        self.key = nn.Conv2d(channels, key_channels, 1)
        self.query = nn.Conv2d(key_channels, 1, 1)
        self.last_attention: torch.Tensor | None = None
        self.weights: torch.Tensor | None = None  # the same, with its graph (for training losses)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool_keys(torch.tanh(self.key(x)))

    def pool_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """The logit from the keys ``tanh(K x)`` (B, key channels, h, w); sets the attention."""
        b, _, h, w = keys.shape
        scores = self.query(keys).flatten(1)  # (B, N)
        weights = torch.softmax(scores, dim=-1)
        self.weights = weights.view(b, h, w)
        self.last_attention = self.weights.detach()
        logit: torch.Tensor = (weights * scores).sum(dim=1, keepdim=True)
        return logit


#: Attention pooling's grid (1/scale of the input) → the backbone block whose output it joins.
POOL_SCALES = {4: 1, 2: 0}


class AttentionCNN(nn.Module):
    """The CNN backbone, a self-attention block over its feature map, a pooling step, dropout and
    a dense head. ``last_attention`` (B, h, w) is set by every forward.

    ``pooling="mean"``: global average pooling and a dense head; the map is the self-attention
    each position receives (1/8 of the input). ``pooling="attention"`` (one output): the
    self-attended features, upsampled, are joined with the backbone's features at 1/``pool_scale``
    of the input (4: the second block's; 2: the first block's) by a 1×1 conv-BN-ReLU (then
    dropout) and pooled to the logit by :class:`AttentionPool2d` (``pool_keys`` key channels);
    the map is that pooling's weights, at 1/``pool_scale`` of the input, so it points at small
    lesions too: at 1/2, a 128² slice gets a 64² map of 2-pixel cells.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_outputs: int = 1,
        channels: tuple[int, ...] = (16, 32, 64, 128),
        dropout: float = 0.3,
        pooling: str = "mean",
        fused_channels: int = 96,
        pool_scale: int = 4,
        pool_keys: int = 32,
    ) -> None:
        super().__init__()
        if pooling not in ("mean", "attention"):
            raise ValueError(f"cnn-attention: pooling must be 'mean' or 'attention', got {pooling!r}")
        if pool_scale not in POOL_SCALES:
            raise ValueError(f"cnn-attention: pool_scale must be one of {sorted(POOL_SCALES)}, got {pool_scale!r}")
        if pooling == "attention" and (len(channels) < 3 or num_outputs != 1):
            raise ValueError("cnn-attention: pooling='attention' needs three or more backbone blocks and one output")
        self.backbone = Backbone(in_channels, tuple(channels))
        self.attention = SelfAttention2d(self.backbone.out_channels)
        self.pooling = pooling
        self.skip_block = POOL_SCALES[pool_scale]
        width = self.backbone.out_channels
        if pooling == "attention":
            self.fuse = nn.Sequential(
                nn.Conv2d(channels[self.skip_block] + width, fused_channels, 1, bias=False),
                nn.BatchNorm2d(fused_channels),
                nn.ReLU(inplace=True),
            )
            self.pool = AttentionPool2d(fused_channels, pool_keys)
            self.dropout: nn.Module = nn.Dropout2d(dropout)
        else:
            self.dropout = nn.Dropout(dropout)
            self.fc = nn.Linear(width, num_outputs)

    @property
    def gradcam_layer(self) -> nn.Module:
        return self.backbone.gradcam_layer

    @property
    def last_attention(self) -> torch.Tensor | None:
        if self.pooling == "attention":
            return self.pool.last_attention
        return self.attention.last_attention

    @property
    def attention_weights(self) -> torch.Tensor | None:
        """The attention pooling's weights of the last forward, with their graph (``None`` without it)."""
        return self.pool.weights if self.pooling == "attention" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_slices(x, "cnn-attention")
        if self.pooling == "mean":
            f = self.attention(self.backbone(x)).mean(dim=(2, 3))
            out: torch.Tensor = self.fc(self.dropout(f))
            return out
        skip, deep = self.backbone.forward_with_skip(x, self.skip_block)
        deep = nn.functional.interpolate(self.attention(deep).contiguous(), size=skip.shape[-2:], mode="bilinear")
        logit: torch.Tensor = self.pool(self.dropout(self.fuse(torch.cat([skip, deep], dim=1))))
        return logit


class CNNRNN(nn.Module):
    """Per-slice CNN features of a whole stack, read in order by a bidirectional GRU.

    Input (B, S, C, H, W). Returns ``(study_logit (B, 1), slice_logits (B, S))`` where
    ``study_logit = bias + slice_logits.sum(1)``: each slice's entry is its additive
    contribution to the study logit (a per-slice score divided by S, so the study logit does
    not grow with the number of slices).
    """

    def __init__(
        self,
        in_channels: int = 1,
        channels: tuple[int, ...] = (16, 32, 64, 128),
        hidden_size: int = 64,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.backbone = Backbone(in_channels, tuple(channels))
        self.gru = nn.GRU(self.backbone.out_channels, hidden_size, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.slice_head = nn.Linear(2 * hidden_size, 1)
        self.bias = nn.Parameter(torch.zeros(1))

    @property
    def gradcam_layer(self) -> nn.Module:
        return self.backbone.gradcam_layer

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.ndim != 5:
            raise ValueError(f"cnn-rnn expects a (B, S, C, H, W) batch of stacks, got shape {tuple(x.shape)}")
        b, s = x.shape[:2]
        f = self.backbone(x.flatten(0, 1)).mean(dim=(2, 3)).view(b, s, -1)
        h, _ = self.gru(f)
        slice_logits = self.slice_head(self.dropout(h)).squeeze(-1) / s  # (B, S)
        study_logit = self.bias + slice_logits.sum(dim=1, keepdim=True)
        return study_logit, slice_logits


# --------------------------------------------------------------------------------------------
# unet3d


def unet3d(in_channels: int = 1, out_channels: int = 2, **kwargs: Any) -> nn.Module:
    """MONAI's 3-D UNet, channels (16, 32, 64, 128), strides (2, 2, 2), one residual unit;
    other keyword arguments go to :class:`monai.networks.nets.UNet`.

    ``gradcam_layer`` is the outermost skip connection (encoder features concatenated with the
    decoder's, at half resolution, just before the output up-convolution). It is set on the
    instance without registering it as a child, so ``state_dict()`` keys stay MONAI's.
    """
    from monai.networks.nets import UNet  # type: ignore[attr-defined]

    kwargs.setdefault("channels", (16, 32, 64, 128))
    kwargs.setdefault("strides", (2, 2, 2))
    kwargs.setdefault("num_res_units", 1)
    kwargs.setdefault("spatial_dims", 3)
    model = UNet(in_channels=in_channels, out_channels=out_channels, **kwargs)
    inner = getattr(model, "model", None)
    if isinstance(inner, nn.Sequential) and len(inner) == 3:
        object.__setattr__(model, "gradcam_layer", inner[1])
    return model
