"""Grad-CAM and attention maps: shapes, ranges, hygiene (hooks, modes, grads) and localisation."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import nn

from inference.models.architectures import build_model
from inference.models.explain import attention_map, grad_cam

# --------------------------------------------------------------------------------------------
# shapes and ranges


def _check_map(cam: np.ndarray, shape: tuple[int, ...]) -> None:
    assert isinstance(cam, np.ndarray)
    assert cam.dtype == np.float32
    assert cam.shape == shape
    assert np.isfinite(cam).all()
    assert cam.min() >= 0.0 and cam.max() <= 1.0


@pytest.mark.parametrize("name", ["keras-baseline", "cnn", "cnn-attention"])
def test_grad_cam_2d_shapes_and_range(name: str) -> None:
    torch.manual_seed(0)
    kwargs = {"input_size": 64} if name == "keras-baseline" else {}
    model = build_model(name, **kwargs).eval()
    cam = grad_cam(model, torch.randn(3, 1, 64, 64))
    _check_map(cam, (3, 64, 64))
    for sample in cam:  # each sample scaled by its own max: 1 or an all-zero map
        assert sample.max() == pytest.approx(1.0) or sample.max() == 0.0


def test_grad_cam_non_square_and_other_target() -> None:
    torch.manual_seed(0)
    model = build_model("cnn", num_outputs=3).eval()
    _check_map(grad_cam(model, torch.randn(2, 1, 48, 80), target=2), (2, 48, 80))
    with pytest.raises(ValueError, match="target=3"):
        grad_cam(model, torch.randn(1, 1, 48, 80), target=3)


def test_grad_cam_3d_on_unet3d_returns_the_input_shape() -> None:
    torch.manual_seed(0)
    model = build_model("unet3d", out_channels=2).eval()
    x = torch.randn(2, 1, 32, 32, 32)
    for target in (0, 1):
        cam = grad_cam(model, x, target=target)
        _check_map(cam, (2, 32, 32, 32))


def test_grad_cam_on_a_stack_model_gives_one_map_per_slice() -> None:
    torch.manual_seed(0)
    model = build_model("cnn-rnn").eval()
    cam = grad_cam(model, torch.randn(2, 5, 1, 64, 64))
    _check_map(cam, (2, 5, 64, 64))


def test_grad_cam_explicit_layer() -> None:
    torch.manual_seed(0)
    model = build_model("cnn").eval()
    cam = grad_cam(model, torch.randn(1, 1, 64, 64), layer=model.backbone.blocks[1])
    _check_map(cam, (1, 64, 64))


class _NoEvidence(nn.Module):
    """The score falls as the layer's (positive) activations rise: no positive evidence."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.gradcam_layer = self.conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.relu(self.conv(x)) + 1.0
        return -a.mean(dim=(1, 2, 3)).unsqueeze(1)


def test_a_map_with_no_positive_evidence_stays_zero() -> None:
    """Zero means "no evidence for the target", and is not stretched or inverted."""
    torch.manual_seed(0)
    model = _NoEvidence()
    with torch.no_grad():
        model.conv.weight.zero_()
        model.conv.bias.fill_(1.0)
    cam = grad_cam(model, torch.randn(2, 1, 16, 16))
    _check_map(cam, (2, 16, 16))
    assert (cam == 0).all()


def test_evidence_is_not_inverted() -> None:
    """A model whose logit is the mean brightness of a region: the map is high there."""

    class Bright(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 1, bias=False)
            self.gradcam_layer = self.conv
            with torch.no_grad():
                self.conv.weight.fill_(1.0)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x).mean(dim=(1, 2, 3)).unsqueeze(1)

    x = torch.zeros(1, 1, 32, 32)
    x[0, 0, 4:10, 20:28] = 5.0
    cam = grad_cam(Bright(), x)
    assert cam[0, 4:10, 20:28].min() == pytest.approx(1.0)
    assert cam[0, 16:, :16].max() == pytest.approx(0.0)


# --------------------------------------------------------------------------------------------
# hygiene


def _no_hooks(layer: nn.Module) -> bool:
    return not layer._forward_hooks and not layer._backward_hooks and not layer._forward_pre_hooks


def test_hooks_are_removed_after_use() -> None:
    model = build_model("cnn").eval()
    grad_cam(model, torch.randn(1, 1, 64, 64))
    assert all(_no_hooks(m) for m in model.modules())


class _Explodes(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.gradcam_layer = self.conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.conv(x)  # the hook fires, then the forward fails
        raise RuntimeError("boom")


def test_hooks_are_removed_when_the_forward_raises() -> None:
    model = _Explodes()
    with pytest.raises(RuntimeError, match="boom"):
        grad_cam(model, torch.randn(1, 1, 8, 8))
    assert not model.conv._forward_hooks
    assert not model.conv._backward_hooks
    assert all(_no_hooks(m) for m in model.modules())


def test_hooks_are_removed_when_the_target_is_bad() -> None:
    model = build_model("cnn").eval()
    with pytest.raises(ValueError):
        grad_cam(model, torch.randn(1, 1, 32, 32), target=5)
    assert all(_no_hooks(m) for m in model.modules())


@pytest.mark.parametrize("training", [False, True])
def test_mode_buffers_and_grads_are_left_alone(training: bool) -> None:
    torch.manual_seed(0)
    model = build_model("cnn")
    model.train(training)
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    grad_cam(model, torch.randn(4, 1, 64, 64))
    assert model.training is training
    assert all(m.training is training for m in model.modules())
    for k, v in model.named_buffers():
        assert torch.equal(v, buffers[k]), k
    assert all(p.grad is None for p in model.parameters())


def _contexts() -> Iterator[tuple[str, object]]:
    yield "plain", None
    yield "no_grad", torch.no_grad
    yield "inference_mode", torch.inference_mode


@pytest.mark.parametrize(("label", "ctx"), list(_contexts()))
def test_grad_cam_under_no_grad_and_inference_mode(label: str, ctx: object) -> None:
    torch.manual_seed(0)
    model = build_model("cnn").eval()
    x = torch.randn(2, 1, 64, 64)
    expected = grad_cam(model, x)
    if ctx is None:
        return
    assert callable(ctx)
    with ctx():
        x_ctx = x.clone()  # an inference tensor under inference_mode
        cam = grad_cam(model, x_ctx)
    np.testing.assert_allclose(cam, expected, atol=1e-6)


def test_grad_cam_with_frozen_parameters() -> None:
    torch.manual_seed(0)
    model = build_model("cnn").eval().requires_grad_(False)
    cam = grad_cam(model, torch.randn(1, 1, 64, 64))
    _check_map(cam, (1, 64, 64))
    assert cam.max() > 0


def test_grad_cam_refuses_bad_input() -> None:
    model = build_model("cnn").eval()
    with pytest.raises(ValueError, match="B, C, H, W"):
        grad_cam(model, torch.randn(64, 64))


def test_attention_map_shape_range_and_mode() -> None:
    torch.manual_seed(0)
    model = build_model("cnn-attention").train()
    amap = attention_map(model, torch.randn(2, 1, 64, 64))
    _check_map(amap, (2, 64, 64))
    assert amap.max(axis=(1, 2)) == pytest.approx([1.0, 1.0])
    assert model.training


def test_attention_map_needs_an_attention_model() -> None:
    with pytest.raises(ValueError, match="last_attention"):
        attention_map(build_model("cnn").eval(), torch.randn(1, 1, 64, 64))


# --------------------------------------------------------------------------------------------
# localisation: trained on noise + a bright square, does the map point at the square?

SIZE = 64


def _squares(n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Noise images; even indices get a bright square (side 10–16) at a random position."""
    x = rng.normal(0.0, 1.0, (n, 1, SIZE, SIZE)).astype(np.float32)
    y = np.zeros(n, np.float32)
    boxes = np.zeros((n, 3), np.int64)  # row, col, side
    for i in range(0, n, 2):
        side = int(rng.integers(10, 17))
        r0, c0 = rng.integers(0, SIZE - side, 2)
        x[i, 0, r0 : r0 + side, c0 : c0 + side] += 2.0
        y[i] = 1.0
        boxes[i] = (r0, c0, side)
    return torch.from_numpy(x), torch.from_numpy(y), boxes


def _train(name: str, steps: int = 40, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_model(name).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = nn.BCEWithLogitsLoss()
    for _ in range(steps):
        x, y, _ = _squares(16, rng)
        loss = loss_fn(model(x)[:, 0], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def _pointing_game(maps: np.ndarray, boxes: np.ndarray) -> float:
    hits = []
    for m, (r0, c0, side) in zip(maps, boxes, strict=True):
        r, c = np.unravel_index(int(np.argmax(m)), m.shape)
        hits.append(r0 <= r < r0 + side and c0 <= c < c0 + side)
    return float(np.mean(hits))


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Single-threaded: reproducible, and faster than fighting over a busy machine's cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_cnn_grad_cam_points_at_the_lesion() -> None:
    model = _train("cnn")
    x, y, boxes = _squares(60, np.random.default_rng(1000))
    with torch.no_grad():
        pred = torch.sigmoid(model(x)[:, 0]) > 0.5
    assert (pred == (y > 0.5)).float().mean() >= 0.9  # it learned the task
    pos = y.numpy() > 0.5
    cam = grad_cam(model, x[pos])
    assert _pointing_game(cam, boxes[pos]) >= 0.8


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_cnn_attention_map_points_at_the_lesion() -> None:
    model = _train("cnn-attention")
    x, y, boxes = _squares(60, np.random.default_rng(1000))
    with torch.no_grad():
        pred = torch.sigmoid(model(x)[:, 0]) > 0.5
    assert (pred == (y > 0.5)).float().mean() >= 0.9
    pos = y.numpy() > 0.5
    amap = attention_map(model, x[pos])
    assert _pointing_game(amap, boxes[pos]) >= 0.8
    # Grad-CAM at the backbone's last block works for this model too
    assert _pointing_game(grad_cam(model, x[pos]), boxes[pos]) >= 0.8
