"""Network architectures, by name, as model cards refer to them (``architecture = "cnn"``).

Importing this module does not import torch; :func:`build_model` does, on first use.

========================  =====================================================================
name                      what it is
========================  =====================================================================
``keras-baseline``        conv 32/64/128 + 2×2 max-pool, flatten, dense 512, dense 1 (logit)
``cnn``                   conv-BN blocks 16/32/64/128, global average pooling, dropout, dense
``cnn-attention``         the ``cnn`` backbone + self-attention over its feature map (+ attention pooling)
``cnn-rnn``               per-slice ``cnn`` features read in order by a bidirectional GRU
``unet3d``                MONAI 3-D UNet (16, 32, 64, 128), strides 2, one residual unit
========================  =====================================================================

2-D slice models take (B, C, H, W) and return (B, num_outputs) logits; ``cnn-rnn`` takes
(B, S, C, H, W) and returns ``(study_logit (B, 1), slice_logits (B, S))``; ``unet3d`` takes
(B, C, D, H, W) and returns (B, out_channels, D, H, W) logits. Every model has a
``gradcam_layer`` for :func:`inference.models.explain.grad_cam`; ``cnn-attention`` sets
``last_attention`` (B, h, w) on each forward for :func:`inference.models.explain.attention_map`.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

ARCHITECTURES: Mapping[str, str] = MappingProxyType(
    {
        "keras-baseline": "Keras-style slice classifier: conv 32/64/128 + max-pool, dense 512, dense 1",
        "cnn": "fast slice classifier: conv-BN 16/32/64/128, global average pooling, dropout, dense",
        "cnn-attention": "cnn backbone + spatial self-attention (attention map for explanations)",
        "cnn-rnn": "per-slice cnn features of a stack read by a bidirectional GRU; study and slice logits",
        "unet3d": "MONAI 3-D UNet, channels (16, 32, 64, 128), strides (2, 2, 2), one residual unit",
    }
)


def unknown_architecture_message(name: object) -> str:
    """``unknown architecture 'cnn-atention'; did you mean 'cnn-attention'? (known: ...)``."""
    msg = f"unknown architecture {name!r}"
    if isinstance(name, str):
        close = difflib.get_close_matches(name.strip().lower(), list(ARCHITECTURES), n=1, cutoff=0.5)
        if close:
            msg += f"; did you mean {close[0]!r}?"
    return msg + f" (known: {', '.join(ARCHITECTURES)})"


def build_model(name: str, **kwargs: Any) -> torch.nn.Module:
    """A freshly initialised network (random weights from torch's global RNG; seed it with
    ``torch.manual_seed`` for reproducible weights).

    Keyword arguments by architecture:

    * ``keras-baseline``: ``in_channels=1``, ``input_size=224``
    * ``cnn``, ``cnn-attention``: ``in_channels=1``, ``num_outputs=1``,
      ``channels=(16, 32, 64, 128)``, ``dropout=0.3``; ``cnn-attention`` also ``pooling="mean"``
      (or ``"attention"``: attention pooling at 1/``pool_scale`` of the input, 4 or 2) and
      ``fused_channels=96``, ``pool_scale=4``, ``pool_keys=32``
    * ``cnn-rnn``: ``in_channels=1``, ``channels=(16, 32, 64, 128)``, ``hidden_size=64``, ``dropout=0.3``
    * ``unet3d``: ``in_channels=1``, ``out_channels=2``, anything else goes to MONAI's ``UNet``

    :raises ValueError: for an unknown name, with the closest known name as a suggestion.
    :raises TypeError: for a keyword the architecture does not take.
    """
    if name not in ARCHITECTURES:
        raise ValueError(unknown_architecture_message(name))
    from inference.models import _nets

    if name == "keras-baseline":
        return _nets.KerasBaseline(**kwargs)
    if name == "cnn":
        return _nets.SliceCNN(**kwargs)
    if name == "cnn-attention":
        return _nets.AttentionCNN(**kwargs)
    if name == "cnn-rnn":
        return _nets.CNNRNN(**kwargs)
    if name == "unet3d":
        return _nets.unet3d(**kwargs)
    raise AssertionError(f"architecture {name!r} is registered but not built")  # pragma: no cover
