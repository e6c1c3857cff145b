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

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from inference.suggest import did_you_mean

if TYPE_CHECKING:
    import torch

__all__ = ["ARCHITECTURES", "REGISTRY", "Architecture", "build_model", "unknown_architecture_message"]


@dataclass(frozen=True)
class Architecture:
    """A network a card can name: what it is, and the builder in :mod:`inference.models.nets` (a class or a
    function taking the keyword arguments of :func:`build_model`), looked up only when one is built."""

    summary: str
    builder: str

    def build(self, **kwargs: Any) -> torch.nn.Module:
        from inference.models import nets

        network: torch.nn.Module = getattr(nets, self.builder)(**kwargs)
        return network


#: Every architecture by the name cards and training configs use; a new one is a network in
#: :mod:`inference.models.nets` and a line here.
REGISTRY: Mapping[str, Architecture] = MappingProxyType(
    {
        "keras-baseline": Architecture(
            "Keras-style slice classifier: conv 32/64/128 + max-pool, dense 512, dense 1", "KerasBaseline"
        ),
        "cnn": Architecture(
            "fast slice classifier: conv-BN 16/32/64/128, global average pooling, dropout, dense", "SliceCNN"
        ),
        "cnn-attention": Architecture(
            "cnn backbone + spatial self-attention (attention map for explanations)", "AttentionCNN"
        ),
        "cnn-rnn": Architecture(
            "per-slice cnn features of a stack read by a bidirectional GRU; study and slice logits", "CNNRNN"
        ),
        "unet3d": Architecture(
            "MONAI 3-D UNet, channels (16, 32, 64, 128), strides (2, 2, 2), one residual unit", "unet3d"
        ),
    }
)

#: name → one-line summary (what ``radlens models`` and the docs show).
ARCHITECTURES: Mapping[str, str] = MappingProxyType({name: a.summary for name, a in REGISTRY.items()})


def unknown_architecture_message(name: object) -> str:
    """``unknown architecture 'cnn-atention'; did you mean 'cnn-attention'? (known: ...)``."""
    msg = f"unknown architecture {name!r}"
    if isinstance(name, str):
        msg += did_you_mean(name.strip().lower(), REGISTRY, cutoff=0.5)
    return msg + f" (known: {', '.join(REGISTRY)})"


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
    architecture = REGISTRY.get(name)
    if architecture is None:
        raise ValueError(unknown_architecture_message(name))
    return architecture.build(**kwargs)
