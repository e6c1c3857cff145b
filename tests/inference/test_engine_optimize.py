"""The engine's fast path (BatchNorm folded, channels-last, each plane prepared once): the plain model's outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from inference.engine import _fast_nets
from inference.engine.device import keep_freed_memory
from inference.engine.grid import resize, resize_into
from inference.engine.optimize import fold_batchnorm, inference_network
from inference.engine.planes import SlicePlanes
from inference.engine.run import EXPLAIN_MIN_PROBABILITY, _slice_stack, run
from inference.models.architectures import build_model
from inference.models.card import InputSpec, Normalise
from inference.models.explain import attention_map, grad_cam
from inference.models.intensity import intensity_for
from inference.volume import Volume

from .oracle_models import card, loaded

#: "cnn-attention-pooled": cnn-attention with attention pooling, the shipped demo model's head;
#: "cnn-attention-fine": the same pooling on a grid at 1/2 of the input (``pool_scale=2``).
POOLED = ("cnn-attention-pooled", "cnn-attention-fine")
SLICE_ARCHS = ["cnn", "cnn-attention", *POOLED, "keras-baseline"]


def _randomise_batchnorm(net: nn.Module, seed: int = 0) -> nn.Module:
    """Running statistics and affine terms far from the identity, so a wrong fold shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) * 2 + 0.1)
                m.weight.copy_(torch.randn(n, generator=g))
                m.bias.copy_(torch.randn(n, generator=g))
    return net.eval()


def _net(arch: str, channels: int = 3, size: int = 48) -> nn.Module:
    torch.manual_seed(0)
    kwargs: dict[str, object] = {"in_channels": channels}
    if arch == "keras-baseline":
        kwargs["input_size"] = size
    if arch in POOLED:
        if arch == "cnn-attention-fine":
            kwargs.update(pool_scale=2, pool_keys=8)
        arch, kwargs["pooling"], kwargs["fused_channels"] = "cnn-attention", "attention", 24
    net = build_model(arch, **kwargs)
    if kwargs.get("pooling") == "attention":
        with torch.no_grad():
            net.attention.gamma.fill_(0.6)  # not 1: a rewrite that drops γ would show
    return _randomise_batchnorm(net)


def _last_layer(net: nn.Module, arch: str) -> nn.Module:
    """The layer whose output is the logit (its bias shifts the logit one for one)."""
    if arch in POOLED:
        return net.pool.query
    return net.head[-1] if arch == "keras-baseline" else net.fc


def _reference_input(voxels: np.ndarray, spec: InputSpec, size: tuple[int, int]) -> torch.Tensor:
    """The slice stack as the engine defined it before: normalise the volume, stack neighbours, resize."""
    vox = intensity_for(voxels, spec)(voxels)
    return resize(torch.from_numpy(_slice_stack(vox, 0, vox.shape[0], spec.context_slices)), size)


def _assert_same_outputs(net: nn.Module, fast: nn.Module, arch: str, size: tuple[int, int] = (48, 48)) -> None:
    """The optimised network gives the loaded one's outputs (and attention) on a random batch
    (channels-last for slices)."""
    x = torch.rand(5, 3, *size) if arch != "cnn-rnn" else torch.rand(2, 3, 3, *size)
    with torch.inference_mode():
        want = net(x)
        want_attention = getattr(net, "last_attention", None)
        got = fast(x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x)
        got_attention = getattr(fast, "last_attention", None)
    for w, g in zip(
        want if isinstance(want, tuple) else (want,), got if isinstance(got, tuple) else (got,), strict=True
    ):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5)
    if arch.startswith("cnn-attention"):
        torch.testing.assert_close(got_attention, want_attention, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("arch", [*SLICE_ARCHS, "cnn-rnn"])
def test_folded_network_gives_the_plain_outputs_and_leaves_it_alone(arch: str) -> None:
    net = _net(arch)
    keys = list(net.state_dict())
    modules = list(net.modules())
    fast = fold_batchnorm(net, channels_last=True)
    has_bn = any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert (fast is not net) == has_bn
    if has_bn:
        assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert list(net.state_dict()) == keys and list(net.modules()) == modules  # the loaded network is untouched
    _assert_same_outputs(net, fast, arch)


def test_fold_shares_what_it_does_not_fold() -> None:
    class Wrapper(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner
            self.calls: list[int] = []

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls.append(x.shape[0])
            out: torch.Tensor = self.inner(x)
            return out

    net = Wrapper(_net("cnn")).eval()
    fast = fold_batchnorm(net)
    assert fast is not net and fast.calls is net.calls  # a wrapper's own state stays one
    assert (
        fast.inner.fc is net.inner.fc
        and fast.inner.backbone.blocks[-1].shortcut is net.inner.backbone.blocks[-1].shortcut
    )
    with torch.inference_mode():
        fast(torch.rand(2, 3, 32, 32))
    assert net.calls == [2]


def test_nothing_folds_in_training_mode_or_past_a_hook() -> None:
    net = _net("cnn")
    assert fold_batchnorm(net.train()) is net
    net.eval()
    handle = net.backbone.blocks[0][1].register_forward_hook(lambda *_: None)
    fast = fold_batchnorm(net)
    assert isinstance(fast.backbone.blocks[0][1], nn.BatchNorm2d)  # hooked: kept
    assert not isinstance(fast.backbone.blocks[1][1], nn.BatchNorm2d)
    handle.remove()


@pytest.mark.parametrize("arch", [*SLICE_ARCHS, "cnn-rnn"])
def test_inference_network_gives_the_plain_outputs(arch: str) -> None:
    net = _net(arch)
    with torch.inference_mode():  # as the engine first asks for it
        fast = inference_network(net, cpu=True)
    assert not any(p.is_inference() for p in fast.parameters())
    assert isinstance(fast, _fast_nets.PooledShortcutCNN) == (arch == "cnn")
    assert isinstance(fast, _fast_nets.FusedAttentionCNN) == (arch in POOLED)
    fused = [m for m in fast.modules() if isinstance(m, _fast_nets.ConvReLU)]
    # Every conv + ReLU, BatchNorm folded or not (the pooled head's fusing conv is rewritten: not one).
    want = {"keras-baseline": 3, "cnn-attention": 4, "cnn": 4, "cnn-rnn": 4} | dict.fromkeys(POOLED, 4)
    assert len(fused) == want[arch]
    assert arch == "keras-baseline" or not any(isinstance(m, nn.ReLU) for m in fast.modules())
    _assert_same_outputs(net, fast, arch)
    if arch != "keras-baseline":  # (built for one input size)
        _assert_same_outputs(net, fast, arch, size=(56, 40))  # neither square nor the random check's size
    if arch in POOLED:
        assert fast._fused_pool, "the attention head's fused oneDNN steps are not taken with this torch"
        fast._fused_pool = False  # the separate steps (another device or build) give the same too
        _assert_same_outputs(net, fast, arch)


def test_the_pooled_shortcut_is_checked_before_use(monkeypatch: pytest.MonkeyPatch) -> None:
    net = _net("cnn")
    assert _fast_nets.pooled_shortcut(net) is not None
    monkeypatch.setattr(_fast_nets.PooledShortcutCNN, "forward", lambda self, x: torch.zeros(x.shape[0], 1))
    assert _fast_nets.pooled_shortcut(net) is None  # a rewrite that no longer matches SliceCNN is not used
    monkeypatch.undo()
    with_bias = _net("cnn")
    with_bias.backbone.blocks[-1].shortcut = nn.Conv2d(64, 128, 1)
    assert _fast_nets.pooled_shortcut(with_bias.eval()) is None
    handle = net.backbone.blocks[-1].register_forward_hook(lambda *_: None)  # Grad-CAM's hook
    assert _fast_nets.pooled_shortcut(net) is None
    handle.remove()


@pytest.mark.parametrize("arch", POOLED)
def test_the_fused_attention_is_checked_before_use(arch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    net = fold_batchnorm(_net(arch))
    assert _fast_nets.fused_attention(net) is not None
    monkeypatch.setattr(_fast_nets.FusedAttentionCNN, "forward", lambda self, x: torch.zeros(x.shape[0], 1))
    assert _fast_nets.fused_attention(net) is None  # a rewrite that no longer matches AttentionCNN is not used
    monkeypatch.undo()
    monkeypatch.setattr(_fast_nets.FusedAttentionCNN, "last_attention", None)
    assert _fast_nets.fused_attention(net) is None  # nor one that loses the attention map
    monkeypatch.undo()
    assert _fast_nets.fused_attention(_net(arch)) is None  # BatchNorm not folded
    assert _fast_nets.fused_attention(fold_batchnorm(_net("cnn-attention"))) is None  # mean pooling
    handle = net.pool.register_forward_hook(lambda *_: None)
    assert _fast_nets.fused_attention(net) is None
    handle.remove()


@pytest.mark.parametrize("context", [0, 1, 2])
@pytest.mark.parametrize("normalise_mode", [Normalise.WINDOW, Normalise.ZSCORE])
def test_slice_planes_match_the_whole_volume_stack(context: int, normalise_mode: Normalise) -> None:
    rng = np.random.default_rng(context)
    voxels = rng.integers(-1000, 1500, (11, 40, 36)).astype(np.int16)
    spec = InputSpec(size=(24, 20), context_slices=context, window=(40.0, 400.0), normalise=normalise_mode)
    want = _reference_input(voxels, spec, (24, 20))
    planes = SlicePlanes(voxels, intensity_for(voxels, spec), (24, 20), context)
    # Batches as the engine makes them, including one cut short (out of memory) and one going back.
    for start, stop in [(0, 4), (4, 8), (8, 9), (9, 11), (0, 11), (3, 5), (2, 3), (10, 11)]:
        got = planes.batch(start, stop)
        assert got.shape == (stop - start, 2 * context + 1, 24, 20)
        torch.testing.assert_close(got, want[start:stop], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("size", [(24, 20), (64, 80), (40, 36)])
def test_resize_into_is_resize(size: tuple[int, int]) -> None:
    t = torch.rand(3, 2, 40, 36)
    out = torch.full((3, 2, *size), float("nan"))
    assert resize_into(t, out) is out
    torch.testing.assert_close(out, resize(t, size), rtol=0, atol=0)


def test_slice_planes_without_resize_and_a_float_volume_left_as_it_was() -> None:
    voxels = np.random.default_rng(3).normal(size=(3, 16, 16)).astype(np.float32)
    before = voxels.copy()
    spec = InputSpec(size=None, context_slices=2, normalise=Normalise.ZSCORE)
    planes = SlicePlanes(voxels, intensity_for(voxels, spec), (16, 16), 2)
    torch.testing.assert_close(planes.batch(0, 3), _reference_input(voxels, spec, (16, 16)), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(voxels, before)


def _centre_logits(net: nn.Module, last: nn.Module, x: torch.Tensor, probability: float) -> None:
    """Scale the output weights ×10 (random weights give logits ~1e-3 apart from slice to slice) and shift
    its bias so that ``probability`` lies halfway between two slices' probabilities on ``x``."""
    with torch.no_grad():
        last.weight.mul_(10.0)
        logits = torch.sort(net(x)[:, 0]).values
        middle = float(logits[len(logits) // 2 - 1] + logits[len(logits) // 2]) / 2
        last.bias.add_(float(np.log(probability / (1 - probability))) - middle)


def _volume(n: int = 9) -> Volume:
    """Noise over a bright square whose size and brightness change from slice to slice."""
    rng = np.random.default_rng(1)
    voxels = rng.integers(-200, 200, (n, 50, 60))
    for k in range(n):
        voxels[k, 10 : 15 + 3 * k, 12 : 17 + 4 * k] += 50 * k
    return Volume(voxels.astype(np.int16), (0.7, 0.7, 3.0), (0, 0, 0), np.eye(3))


@pytest.mark.parametrize("arch", SLICE_ARCHS)
def test_engine_probabilities_equal_the_plain_model(arch: str) -> None:
    net = _net(arch)
    model_card = card(
        "slice-classification",
        explanation="none",
        input={"size": [48, 48], "context_slices": 1, "batch_size": 4, "window": [40.0, 400.0]},
    )
    volume = _volume()
    x = _reference_input(volume.voxels, model_card.input, (48, 48))
    _centre_logits(net, _last_layer(net, arch), x, 0.5)
    result = run(loaded(net, model_card), volume)
    with torch.no_grad():
        want = torch.sigmoid(net(x)[:, 0]).numpy()
    assert result.slice_probabilities is not None
    assert float(np.min(np.diff(np.sort(want)))) > 2e-5  # a slice mixed up with another would show
    np.testing.assert_allclose(result.slice_probabilities, want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("explanation", ["gradcam", "attention"])
def test_explanations_come_from_the_loaded_network(explanation: str) -> None:
    arch = "cnn" if explanation == "gradcam" else "cnn-attention"
    net = _net(arch)
    model_card = card(
        "slice-classification",
        explanation=explanation,
        threshold=0.99,
        input={"size": [48, 48], "context_slices": 1, "batch_size": 4, "window": [40.0, 400.0]},
    )
    volume = _volume()
    x = _reference_input(volume.voxels, model_card.input, (48, 48))
    with torch.no_grad():
        net.fc.weight.neg_()  # with this seed, evidence for the positive class (non-zero Grad-CAM maps)
    _centre_logits(net, net.fc, x, EXPLAIN_MIN_PROBABILITY)  # some slices explained, some not
    lm = loaded(net, model_card)
    result = run(lm, volume)
    assert lm.forward_network() is not net and lm.network is net
    with torch.no_grad():
        p = torch.sigmoid(net(x)[:, 0]).numpy()
    keep = p >= EXPLAIN_MIN_PROBABILITY  # only these slices get a map, whichever the explanation
    assert keep.any() and not keep.all()
    maps = np.zeros((len(p), 48, 48), np.float32)
    explain = grad_cam if explanation == "gradcam" else attention_map
    maps[keep] = explain(net, x[torch.from_numpy(keep)])
    back = resize(torch.from_numpy(maps)[:, None], volume.shape[1:])[:, 0].numpy()
    want = np.clip(back * p[:, None, None], 0.0, 1.0)
    heat = result.heatmaps[explanation]
    assert float(heat.max()) > 0.02
    assert not heat[~keep].any()  # exactly zero where no map was made
    np.testing.assert_allclose(heat, want, rtol=1e-5, atol=1e-6)


def test_keep_freed_memory_is_set_once_where_glibc_is() -> None:
    import sys

    first = keep_freed_memory()
    assert keep_freed_memory() is first
    if sys.platform.startswith("linux"):
        import platform

        assert first == (platform.libc_ver()[0] == "glibc")


def test_the_demo_models_map_comes_from_its_single_forward_pass() -> None:
    """The engine reads the shipped demo model's attention from the forward pass that gave the
    probabilities (the fused network's own pooling) instead of running the network again."""
    from inference.engine.loaded_model import forward, load_model
    from inference.models.explain import last_attention_map
    from inference.models.registry import discover

    demo = discover().get("ct-nodule-demo")
    lm = load_model(demo, "cpu")
    g = torch.Generator().manual_seed(5)
    x = torch.randn((6, 3, 128, 128), generator=g).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        forward(lm, x)
    got = last_attention_map(lm.forward_network(), x.shape)
    assert got is not None and got.shape == (6, 128, 128)
    want = attention_map(lm.network, x)
    assert float(want.max()) == pytest.approx(1.0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert last_attention_map(nn.Linear(2, 2), x.shape) is None  # no attention kept: the engine runs attention_map
