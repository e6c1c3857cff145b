"""Hand-built networks with known behaviour, for testing the engine's geometry and control flow."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from inference.engine.run import LoadedModel
from inference.models.card import ModelCard, parse_card


class BlobOracle(nn.Module):
    """Marks small bright blobs: a difference of Gaussians (separable 3-D convs) and a threshold.

    Input: lung-windowed CT in [0, 1]. Output: 2-channel logits (background, blob).
    """

    def __init__(
        self, sigma_small: float = 1.0, sigma_large: float = 3.0, threshold: float = 0.255, gain: float = 40.0
    ) -> None:
        super().__init__()
        self.small = self._separable(sigma_small)
        self.large = self._separable(sigma_large)
        self.threshold = threshold
        self.gain = gain

    @staticmethod
    def _separable(sigma: float) -> nn.ModuleList:
        radius = int(np.ceil(3 * sigma))
        x = torch.arange(-radius, radius + 1, dtype=torch.float32)
        g = torch.exp(-(x**2) / (2 * sigma**2))
        g = g / g.sum()
        convs = nn.ModuleList()
        for axis in range(3):
            shape = [1, 1, 1, 1, 1]
            shape[2 + axis] = len(g)
            pad = [0, 0, 0]
            pad[axis] = radius
            conv = nn.Conv3d(1, 1, tuple(shape[2:]), padding=tuple(pad), bias=False, padding_mode="replicate")
            conv.weight.data = g.reshape(shape)
            conv.weight.requires_grad_(False)
            convs.append(conv)
        return convs

    @staticmethod
    def _blur(x: torch.Tensor, convs: nn.ModuleList) -> torch.Tensor:
        for conv in convs:
            x = conv(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dog = self._blur(x, self.small) - self._blur(x, self.large)
        fg = (dog - self.threshold) * self.gain
        return torch.cat([-fg, fg], dim=1)


class Pointwise(nn.Module):
    """A 1×1×1 convolution: its output at a voxel depends on that voxel alone."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, 2, 1)
        with torch.no_grad():
            self.conv.weight[:] = torch.tensor([-8.0, 8.0]).reshape(2, 1, 1, 1, 1)
            self.conv.bias[:] = torch.tensor([4.0, -4.0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def card(task: str = "segmentation", **extra: Any) -> ModelCard:
    data: dict[str, Any] = {
        "name": "oracle",
        "version": "0",
        "task": task,
        "architecture": "oracle",
        "weights": "none",
        "sha256": "0" * 64,
        "licence": "test",
        "intended_use": "tests",
        "modality": ["CT"],
        "labels": [{"value": 1, "name": "blob"}],
        "input": {"window": [-600.0, 1500.0]},
    }
    for key, value in extra.items():
        if key == "input":
            data["input"] = {**data["input"], **value}
        else:
            data[key] = value
    from pathlib import Path

    return parse_card(data, Path("oracle.toml"))


def loaded(network: nn.Module, model_card: ModelCard) -> LoadedModel:
    network.eval()
    return LoadedModel(model_card, network, "cpu")
