"""A model's network loaded onto a device, and its forward pass for inference.

A leaf of the engine: the slice, volume and sliding-window paths all run a :class:`LoadedModel`
through :func:`forward`. Importing this module does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from inference.engine.device import autocast, select_device
from inference.models.card import ModelCard

if TYPE_CHECKING:
    import torch

__all__ = ["LoadedModel", "forward", "load_model"]


@dataclass
class LoadedModel:
    card: ModelCard
    network: torch.nn.Module
    device: str
    _fast: tuple[str, torch.nn.Module] | None = field(default=None, init=False, repr=False, compare=False)

    def forward_network(self) -> torch.nn.Module:
        """``network`` for forward passes without gradients: BatchNorm folded into the convolution
        before it (on the CPU: folded 2-D weights channels-last, conv + ReLU one call), the
        ``cnn``'s last shortcut after its pooling (:mod:`inference.engine.optimize`); made once
        per device. Explanations use ``network`` itself."""
        if self._fast is None or self._fast[0] != self.device:
            from inference.engine.optimize import inference_network

            self._fast = (self.device, inference_network(self.network, cpu=self.device == "cpu"))
        return self._fast[1]

    @property
    def channels_last(self) -> bool:
        """Whether 2-D inputs go in channels-last order: on the CPU, for the architectures RadLens
        builds (a TorchScript model may ``view`` a feature map in the order it was traced with)."""
        import torch

        return self.device == "cpu" and not isinstance(self.network, torch.jit.ScriptModule)


def load_model(card: ModelCard, device: str = "auto") -> LoadedModel:
    """Verify and load the card's weights onto the chosen device."""
    from inference.models.safe_load import load_network

    dev = select_device(device)
    return LoadedModel(card, load_network(card, dev), dev)


def forward(lm: LoadedModel, x: torch.Tensor) -> Any:
    """The model's output on ``x``, for inference only (no gradients reach the loaded network)."""

    network = lm.forward_network()
    with autocast(lm.device):
        return network(x)
