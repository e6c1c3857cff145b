"""Names that resolve through registries: architectures, pipelines, the default model; an unknown
name gets the closest known one."""

from __future__ import annotations

import numpy as np
import pytest

from inference.engine.pipelines import PIPELINES, pipeline_for
from inference.engine.run import run
from inference.errors import RadLensError
from inference.models.architectures import ARCHITECTURES, REGISTRY, build_model
from inference.models.registry import DefaultModel, discover, parse_model_request
from inference.volume import Volume

from .oracle_models import card


def test_every_architecture_is_built_by_its_registry_entry() -> None:
    import torch

    assert set(ARCHITECTURES) == set(REGISTRY)
    for name, entry in REGISTRY.items():
        torch.manual_seed(0)
        a = entry.build()
        torch.manual_seed(0)
        b = build_model(name)
        assert type(a) is type(b)
        if name != "unet3d":  # a function that builds MONAI's UNet
            assert type(a).__name__ == entry.builder
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    with pytest.raises(ValueError, match=r"unknown architecture 'cnn-atention'; did you mean 'cnn-attention'\?"):
        build_model("cnn-atention")


def test_an_unknown_pipeline_names_the_closest_known_one() -> None:
    assert "deepbet" in PIPELINES
    with pytest.raises(
        RadLensError, match=r"unknown pipeline 'deepbt'; did you mean 'deepbet'\? \(known: deepbet, monai-bundle\)"
    ):
        pipeline_for(card(pipeline="deepbt"))
    volume = Volume(np.zeros((4, 8, 8), dtype=np.int16), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    with pytest.raises(RadLensError, match="did you mean 'deepbet'"):
        run(card(pipeline="deepbt"), volume)
    from inference.engine.deepbet_pipeline import run_deepbet

    assert pipeline_for(card(pipeline="deepbet")) is run_deepbet


def test_the_default_model_is_a_typed_request() -> None:
    assert parse_model_request("default") is DefaultModel.FOR_MODALITY
    assert parse_model_request(" Default ") is DefaultModel.FOR_MODALITY
    assert parse_model_request("ct-nodule-demo") == "ct-nodule-demo"
    registry = discover(include_user=False)
    ct = registry.card_for(DefaultModel.FOR_MODALITY, "CT")
    assert ct is not None and "CT" in ct.default_for
    assert registry.card_for("default", "CT") == ct
    assert registry.card_for(DefaultModel.FOR_MODALITY, "XA") is None  # no default for that modality
    assert registry.card_for("ct-nodule-demo", "MR") == registry.get("ct-nodule-demo")
    with pytest.raises(RadLensError, match="did you mean 'ct-nodule-demo'"):
        registry.card_for("ct-nodule-dem", "CT")
