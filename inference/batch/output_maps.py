"""What a stack's outputs carry of a model's :class:`~inference.engine.result.Result`: the label map,
the heatmap and the table of label names and colours. Shared by every output writer (SEG, SR,
NIfTI, Parametric Map) and by the viewer's export.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from inference.engine.result import Result
from inference.models.card import DEFAULT_LABEL_COLOUR, ModelCard

__all__ = ["heatmap_name", "label_table", "output_heatmap", "output_label_map"]


def output_label_map(result: Result, card: ModelCard) -> npt.NDArray[np.uint8] | None:
    """The label map the outputs carry: the model's own, else its explanation map thresholded
    at the card's threshold (the regions the findings were measured on)."""
    if result.label_map is not None:
        return result.label_map
    if not result.heatmaps:
        return None
    heat = next(iter(result.heatmaps.values()))
    value = card.labels[0].value if card.labels else 1
    out = np.empty(heat.shape, dtype=np.uint8)
    np.greater_equal(heat, card.threshold, out=out.view(np.bool_))
    if value != 1:
        out *= np.uint8(value)
    return out


def output_heatmap(result: Result) -> npt.NDArray[np.float32] | None:
    if result.heatmaps:
        return next(iter(result.heatmaps.values()))
    return result.probability_map


def heatmap_name(result: Result) -> str:
    """What :func:`output_heatmap` is: the explanation's name, or ``"probability"``."""
    return next(iter(result.heatmaps)) if result.heatmaps else "probability"


def label_table(card: ModelCard) -> dict[int, tuple[str, tuple[int, int, int]]]:
    """value → (name, RGB colour) of the labels an output carries; one ``finding`` when the card names none."""
    if not card.labels:
        return {1: ("finding", DEFAULT_LABEL_COLOUR)}
    return {lab.value: (lab.name, tuple(lab.colour)) for lab in card.labels}  # type: ignore[misc]
