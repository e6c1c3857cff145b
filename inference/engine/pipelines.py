"""Models with their own multi-stage logic, by the name a card gives as ``pipeline``.

A pipeline is a function ``(card, volume, on_progress, cancel, device) -> Result``; the registry
holds a loader for each so that its module (and the libraries it needs) is imported only when a
card asks for it. A new pipeline is a module in this package and a line in :data:`PIPELINES`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from inference.errors import RadLensError
from inference.suggest import did_you_mean

if TYPE_CHECKING:
    from inference.engine.result import Result
    from inference.models.card import ModelCard
    from inference.progress import CancelToken, ProgressCallback
    from inference.volume import Volume

__all__ = ["PIPELINES", "Pipeline", "pipeline_for"]

Pipeline = Callable[["ModelCard", "Volume", "ProgressCallback", "CancelToken", str], "Result"]


def _deepbet() -> Pipeline:
    from inference.engine.deepbet_pipeline import run_deepbet

    return run_deepbet


def _monai_bundle() -> Pipeline:
    from inference.engine.monai_bundle_pipeline import run_monai_bundle

    return run_monai_bundle


#: card ``pipeline`` → a function that imports the pipeline and returns it.
PIPELINES: Mapping[str, Callable[[], Pipeline]] = MappingProxyType({"deepbet": _deepbet, "monai-bundle": _monai_bundle})


def pipeline_for(card: ModelCard) -> Pipeline:
    """The pipeline ``card`` names; an unknown name is an error with the closest known one."""
    loader = PIPELINES.get(card.pipeline)
    if loader is None:
        hint = did_you_mean(card.pipeline, PIPELINES)
        known = ", ".join(PIPELINES)
        raise RadLensError(f"model {card.name}: unknown pipeline {card.pipeline!r}{hint} (known: {known})")
    return loader()
