"""Architectures by name: shapes, value ranges, determinism, name errors, state-dict keys, speed."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch

from inference.models.architectures import ARCHITECTURES, build_model

SLICE_MODELS = ("keras-baseline", "cnn", "cnn-attention")


def _build(name: str, **kwargs: object) -> torch.nn.Module:
    if name == "keras-baseline":
        kwargs.setdefault("input_size", 64)
    return build_model(name, **kwargs)


def test_importing_the_package_does_not_import_torch() -> None:
    code = (
        "import sys, inference, inference.models, inference.models.architectures, inference.models.explain\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'monai' not in sys.modules, 'monai was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_registry_names() -> None:
    assert set(ARCHITECTURES) == {"keras-baseline", "cnn", "cnn-attention", "cnn-rnn", "unet3d"}
    assert all(isinstance(desc, str) and desc for desc in ARCHITECTURES.values())


@pytest.mark.parametrize(
    ("given", "suggestion"),
    [("cnn-atention", "cnn-attention"), ("unet-3d", "unet3d"), ("keras_baseline", "keras-baseline"), ("CNN", "cnn")],
)
def test_unknown_name_suggests_the_closest(given: str, suggestion: str) -> None:
    with pytest.raises(ValueError, match="did you mean") as info:
        build_model(given)
    msg = str(info.value)
    assert repr(given) in msg
    assert f"did you mean {suggestion!r}" in msg


def test_unknown_name_with_nothing_close_lists_the_known_ones() -> None:
    with pytest.raises(ValueError) as info:
        build_model("transformer-xl-giant")
    msg = str(info.value)
    assert "'transformer-xl-giant'" in msg
    assert "did you mean" not in msg
    for name in ARCHITECTURES:
        assert name in msg


def test_unknown_keyword_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        build_model("cnn", nonsense=1)


@pytest.mark.parametrize("name", SLICE_MODELS)
def test_slice_models_shapes_and_values(name: str) -> None:
    torch.manual_seed(0)
    model = _build(name).eval()
    x = torch.randn(3, 1, 64, 64)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (3, 1)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    p = torch.sigmoid(out)
    assert ((p > 0) & (p < 1)).all()
    assert isinstance(model.gradcam_layer, torch.nn.Module)
    assert any(model.gradcam_layer is m for m in model.modules())


@pytest.mark.parametrize("name", ("cnn", "cnn-attention"))
def test_cnn_options(name: str) -> None:
    model = build_model(name, in_channels=3, num_outputs=4).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 4)


def test_keras_baseline_default_is_224_and_refuses_other_sizes() -> None:
    model = build_model("keras-baseline").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 224, 224)).shape == (1, 1)
    with pytest.raises(ValueError, match="224"):
        model(torch.randn(1, 1, 64, 64))
    # conv 32/64/128, dense 512, dense 1
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    dense = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [c.out_channels for c in convs] == [32, 64, 128]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert [d.out_features for d in dense] == [512, 1]
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in model.modules()) >= 1


def test_cnn_uses_batchnorm_global_pooling_and_dropout() -> None:
    model = build_model("cnn")
    kinds = {type(m) for m in model.modules()}
    assert torch.nn.BatchNorm2d in kinds
    assert torch.nn.Dropout in kinds
    # global average pooling: the head accepts any input size
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 1, 96, 80)).shape == (1, 1)


def test_cnn_attention_exposes_its_attention() -> None:
    torch.manual_seed(0)
    model = build_model("cnn-attention").eval()
    with torch.no_grad():
        model(torch.randn(2, 1, 64, 64))
    attn = model.last_attention
    assert isinstance(attn, torch.Tensor)
    assert attn.shape == (2, 8, 8)  # 1/8 of the input
    assert (attn >= 0).all()
    # mean over queries of softmax rows: sums to 1 over the map
    torch.testing.assert_close(attn.sum(dim=(1, 2)), torch.ones(2))
    assert not attn.requires_grad


def _skip_and_deep(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        skip, deep = model.backbone.forward_with_skip(x, model.skip_block)
        deep = torch.nn.functional.interpolate(model.attention(deep), size=skip.shape[-2:], mode="bilinear")
    return skip, deep


@pytest.mark.parametrize("pool_scale", [4, 2])
def test_cnn_attention_with_attention_pooling_points_at_its_grid(pool_scale: int) -> None:
    torch.manual_seed(0)
    model = build_model("cnn-attention", in_channels=3, pooling="attention", pool_scale=pool_scale, pool_keys=12)
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 1)
    attn = model.last_attention
    side = 64 // pool_scale  # 1/4 of the input by default, 1/2 with pool_scale=2
    assert isinstance(attn, torch.Tensor) and attn.shape == (2, side, side)
    assert model.pool.key.out_channels == 12
    torch.testing.assert_close(attn.sum(dim=(1, 2)), torch.ones(2))
    # The logit is the attention-weighted mean of the positions' scores: a smooth maximum.
    scores = torch.log(attn.flatten(1))  # softmax weights: scores up to a per-sample constant
    feats = model.dropout(model.fuse(torch.cat(_skip_and_deep(model, x), dim=1)))
    direct = model.pool.query(torch.tanh(model.pool.key(feats))).flatten(1)
    torch.testing.assert_close(scores - scores.mean(1, keepdim=True), direct - direct.mean(1, keepdim=True))
    torch.testing.assert_close(out[:, 0], (attn.flatten(1) * direct).sum(1))
    assert bool((out[:, 0] <= direct.max(1).values + 1e-6).all())
    # Weights of the mean-pooled variant do not fit: the option is part of the architecture.
    plain = set(build_model("cnn-attention").state_dict())
    assert "fc.weight" in plain and "fc.weight" not in model.state_dict() and "pool.key.weight" not in plain
    with pytest.raises(ValueError, match="pooling"):
        build_model("cnn-attention", pooling="max")
    with pytest.raises(ValueError, match="one output"):
        build_model("cnn-attention", pooling="attention", num_outputs=2)
    with pytest.raises(ValueError, match="pool_scale must be one of"):
        build_model("cnn-attention", pooling="attention", pool_scale=8)


def test_cnn_rnn_shapes_and_additive_slice_contributions() -> None:
    torch.manual_seed(0)
    model = build_model("cnn-rnn").eval()
    x = torch.randn(2, 5, 1, 64, 64)
    with torch.no_grad():
        study, slices = model(x)
    assert study.shape == (2, 1)
    assert slices.shape == (2, 5)
    assert torch.isfinite(study).all() and torch.isfinite(slices).all()
    torch.testing.assert_close(study, model.bias + slices.sum(dim=1, keepdim=True))
    assert isinstance(model.gradcam_layer, torch.nn.Module)
    # reads the stack in order: reversing the slices changes the answer
    with torch.no_grad():
        study_rev, _ = model(x.flip(1))
    assert not torch.allclose(study, study_rev)
    with pytest.raises(ValueError, match="B, S, C, H, W"):
        model(torch.randn(2, 1, 64, 64))


def test_unet3d_shapes_and_passthrough() -> None:
    torch.manual_seed(0)
    model = build_model("unet3d", in_channels=1, out_channels=3).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 1, 32, 32, 32))
    assert out.shape == (1, 3, 32, 32, 32)
    assert torch.isfinite(out).all()
    from monai.networks.nets import UNet

    assert isinstance(model, UNet)
    plain = UNet(
        spatial_dims=3, in_channels=1, out_channels=3, channels=(16, 32, 64, 128), strides=(2, 2, 2), num_res_units=1
    )
    # same parameters, so weights trained with plain MONAI load strictly
    assert list(model.state_dict()) == list(plain.state_dict())
    model.load_state_dict(plain.state_dict())
    # kwargs go through to MONAI
    small = build_model("unet3d", channels=(8, 16), strides=(2,), num_res_units=0)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", [*SLICE_MODELS, "cnn-rnn"])
def test_state_dict_has_no_duplicate_gradcam_keys(name: str) -> None:
    model = _build(name)
    keys = list(model.state_dict())
    assert not any(k.startswith("gradcam_layer") for k in keys)
    fresh = _build(name)
    fresh.load_state_dict(model.state_dict())  # strict


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_deterministic_with_a_seed(name: str) -> None:
    shapes = {"cnn-rnn": (1, 3, 1, 32, 32), "unet3d": (1, 1, 16, 16, 16)}
    x = torch.randn(*shapes.get(name, (2, 1, 64, 64)))

    def run() -> torch.Tensor:
        torch.manual_seed(123)
        model = _build(name).eval()
        with torch.no_grad():
            out = model(x)
        return out[0] if isinstance(out, tuple) else out

    a, b = run(), run()
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.manual_seed(124)
    model = _build(name).eval()
    with torch.no_grad():
        other = model(x)
    other = other[0] if isinstance(other, tuple) else other
    assert not torch.equal(a, other)


def test_cnn_is_much_faster_than_keras_baseline_at_224() -> None:
    """The cnn is built to run ≥ 3× faster than keras-baseline on CPU (about 20× here);
    checked with a generous margin (≥ 2×): single-threaded (so a busy machine's scheduling
    does not stall a thread pool), best of 3 after warm-up, the two models interleaved."""
    torch.manual_seed(0)
    keras = build_model("keras-baseline").eval()
    cnn = build_model("cnn").eval()
    x = torch.randn(4, 1, 224, 224)

    def timed(model: torch.nn.Module) -> float:
        t0 = time.perf_counter()
        model(x)
        return time.perf_counter() - t0

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            for model in (keras, cnn, keras, cnn):
                model(x)
            t_keras, t_cnn = float("inf"), float("inf")
            for _ in range(3):
                t_keras = min(t_keras, timed(keras))
                t_cnn = min(t_cnn, timed(cnn))
    finally:
        torch.set_num_threads(threads)
    assert t_keras / t_cnn >= 2.0, f"keras-baseline {t_keras * 1e3:.1f} ms, cnn {t_cnn * 1e3:.1f} ms"
