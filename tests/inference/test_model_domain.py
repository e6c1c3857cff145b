"""The ``[domain]`` table of model cards: parsed, validated with errors that name the key, shipped cards filled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from inference.errors import ModelCardError
from inference.models.card import parse_card
from inference.models.domain import QUANTILE_LEVELS
from inference.models.registry import discover

BASE: dict[str, Any] = {
    "name": "m",
    "version": "1",
    "task": "segmentation",
    "modality": ["MR"],
    "architecture": "unet3d",
    "weights": "w.safetensors",
    "sha256": "0" * 64,
    "licence": "test",
    "intended_use": "tests",
}
N = len(QUANTILE_LEVELS)


def _card(domain: Any) -> Any:
    return parse_card({**BASE, "domain": domain}, Path("card.toml"))


def test_a_full_domain_is_parsed() -> None:
    q = [i / N for i in range(N)]
    card = _card(
        {
            "body_region": ["head"],
            "sequence": ["t1"],
            "dimensionality": "volume",
            "slices": [40, 400],
            "in_plane_spacing_mm": [0.5, 1.5],
            "slice_spacing_mm": [0.5, 2.0],
            "orientation": "any",
            "intensity": {"quantiles": q, "spread": [0.1] * N, "threshold": 4.0, "inputs": 5, "source": "x"},
        }
    )
    dom = card.domain
    assert dom.stated and dom.body_region == ("head",) and dom.sequence == ("T1",)
    assert dom.slices == (40, 400) and dom.in_plane_spacing_mm == (0.5, 1.5)
    assert dom.intensity is not None and dom.intensity.threshold == 4.0 and len(dom.intensity.quantiles) == N
    assert card.summary()["domain"]["sequence"] == ["T1"]


def test_a_card_without_domain_says_it_states_none() -> None:
    card = parse_card(dict(BASE), Path("card.toml"))
    assert not card.domain.stated and card.domain.intensity is None


@pytest.mark.parametrize(
    ("domain", "message"),
    [
        ({"body_region": ["chset"]}, "did you mean 'chest'"),
        ({"sequence": ["T3"]}, "domain.sequence = 'T3'"),
        ({"dimensionality": "4d"}, "domain.dimensionality"),
        ({"slices": [10]}, "domain.slices must be [min, max]"),
        ({"slice_spacing_mm": [3.0, 1.0]}, "0 <= min <= max"),
        ({"orientaton": "axial"}, "did you mean 'orientation'"),
        ({"intensity": {"quantiles": [0.1, 0.2], "spread": [0.1, 0.1]}}, f"must have {N} values"),
        ({"intensity": {"quantiles": [0.5] + [0.1] * (N - 1), "spread": [0.1] * N}}, "must not decrease"),
        ({"intensity": {"quantiles": [0.1] * N}}, "needs 'spread'"),
        ({"intensity": {"quantiles": [0.1] * N, "spread": [0.1] * N, "threshold": 0}}, "must be positive"),
        ({"features": {"mean": [0.1, 0.2], "spread": [0.1]}}, "as long as each other"),
        ({"features": {"mean": [0.1]}}, "needs 'spread'"),
    ],
)
def test_bad_domains_are_refused_naming_the_key(domain: dict[str, Any], message: str) -> None:
    with pytest.raises(ModelCardError) as info:
        _card(domain)
    assert message in str(info.value)


def test_every_shipped_card_states_its_domain_with_training_statistics() -> None:
    registry = discover(include_user=False)
    assert not registry.problems, registry.problems
    for name in ("ct-nodule-demo", "deepbet-brain"):
        card = registry.get(name)
        assert card.domain.stated and card.domain.body_region, name
        assert card.domain.intensity is not None and card.domain.intensity.inputs >= 10, name
    assert registry.get("deepbet-brain").domain.sequence == ("T1",)
    demo = registry.get("ct-nodule-demo")
    assert demo.domain.orientation == "axial"
    assert demo.domain.features is not None and len(demo.domain.features.mean) == 48  # its last block's channels
