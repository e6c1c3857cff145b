"""The CUDA path, on an NVIDIA GPU: results equal the CPU's within tolerance (AMP on), the sliding
window, a real out-of-memory back-off, Grad-CAM and attention maps, deepbet, a few training steps
with AMP, and ``analyze --cluster`` with a GPU actor.

Marked ``cuda``: deselected by default (``tests/conftest.py``), run by ``benchmarks/gpu_check.sh``
(``pytest -m cuda``). With ``-m cuda`` and no GPU they fail: asking for the GPU tests where there
is no GPU is a mistake to report, not to skip.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.engine.run import LoadedModel, load_model, run
from inference.models.architectures import build_model
from inference.models.explain import attention_map, grad_cam
from inference.models.registry import discover
from inference.sample_study import make_chest_phantom
from inference.volume import Volume

from .oracle_models import Pointwise
from .oracle_models import card as oracle_card
from .test_deepbet import CARD as DEEPBET_CARD
from .test_deepbet import COLIN, _require

pytestmark = pytest.mark.cuda


@pytest.fixture(scope="module", autouse=True)
def gpu() -> None:
    assert torch.cuda.is_available(), "the cuda tests need torch with CUDA and an NVIDIA GPU (benchmarks/gpu_check.sh)"


def test_the_demo_model_on_cuda_with_amp_matches_the_cpu() -> None:
    volume, _ = make_chest_phantom(shape=(48, 256, 256))
    model_card = discover().default_for("CT")
    assert model_card is not None
    on_cpu = run(load_model(model_card, "cpu"), volume, device="cpu")
    on_gpu = run(load_model(model_card, "cuda"), volume, device="cuda")
    assert on_gpu.device.startswith("cuda") and not on_gpu.messages
    assert on_cpu.slice_probabilities is not None and on_gpu.slice_probabilities is not None
    # AMP computes in bfloat16/float16: probabilities agree to ~1e-2, not to float32's 1e-6.
    np.testing.assert_allclose(on_gpu.slice_probabilities, on_cpu.slice_probabilities, atol=0.03)
    for name, heat in on_cpu.heatmaps.items():
        assert np.abs(on_gpu.heatmaps[name] - heat).mean() < 0.03, name
    if on_cpu.label_map is not None and on_gpu.label_map is not None:
        assert (on_cpu.label_map == on_gpu.label_map).mean() > 0.99


def test_sliding_window_on_cuda_equals_the_whole_volume_on_the_cpu() -> None:
    rng = np.random.default_rng(0)
    volume = Volume(rng.integers(-1000, 1000, (40, 64, 72)).astype(np.int16), (1.0, 1.0, 2.0), (0, 0, 0), np.eye(3))
    whole = run(LoadedModel(oracle_card(input={"patch_size": [48, 64, 80]}), Pointwise().eval(), "cpu"), volume)
    windows_card = oracle_card(input={"patch_size": [16, 32, 32], "batch_size": 3})
    windows = run(LoadedModel(windows_card, Pointwise().eval().cuda(), "cuda"), volume, device="cuda")
    assert whole.probability_map is not None and windows.probability_map is not None
    np.testing.assert_allclose(windows.probability_map, whole.probability_map, atol=1e-2)


class _RealOomAboveTwo(torch.nn.Module):
    """A real CUDA out-of-memory error for batches over two (an allocation no GPU holds)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 2:
            torch.empty(1 << 50, dtype=torch.uint8, device=x.device)  # 1 PiB
        self.batches.append(x.shape[0])
        out: torch.Tensor = self.inner(x)
        return out


def test_a_real_out_of_memory_halves_the_batch() -> None:
    torch.manual_seed(0)
    net = _RealOomAboveTwo(build_model("cnn")).eval().cuda()
    model_card = oracle_card("slice-classification", explanation="none", input={"size": [32, 32], "batch_size": 8})
    volume = Volume(np.zeros((10, 40, 40), np.int16), (1.0, 1.0, 1.0), (0, 0, 0), np.eye(3))
    result = run(LoadedModel(model_card, net, "cuda"), volume, device="cuda")
    assert result.slice_probabilities is not None and result.slice_probabilities.shape == (10,)
    assert max(net.batches) <= 2 and sum(net.batches) == 10
    assert any("batch size reduced" in m for m in result.messages), result.messages


@pytest.mark.parametrize("name", ["cnn", "cnn-attention"])
def test_grad_cam_and_attention_on_cuda_match_the_cpu(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name).eval()
    x = torch.randn(2, 1, 64, 64)
    cpu_cam = grad_cam(model, x)
    gpu_cam = grad_cam(model.cuda(), x.cuda())
    np.testing.assert_allclose(gpu_cam, cpu_cam, atol=1e-3)
    if name == "cnn-attention":
        np.testing.assert_allclose(attention_map(model, x.cuda()), attention_map(model.cpu(), x), atol=1e-3)


def test_deepbet_on_cuda_matches_the_cpu() -> None:
    from inference.io.image_file import read_image_file
    from inference.models.card import load_card

    model_card = load_card(DEEPBET_CARD)
    vol = read_image_file(_require(COLIN))
    volume = dataclasses.replace(vol, metadata=dataclasses.replace(vol.metadata, modality="MR"))
    on_cpu = run(model_card, volume, device="cpu")
    on_gpu = run(model_card, volume, device="cuda")
    assert on_cpu.label_map is not None and on_gpu.label_map is not None
    a, b = on_cpu.label_map > 0, on_gpu.label_map > 0
    assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.99


def test_training_a_few_steps_with_amp(tmp_path: Path) -> None:
    from inference.training.train import train
    from tests.inference.test_training import make_config, make_dataset, read_metrics

    dataset = make_dataset(tmp_path / "data", per_source=16)
    run_dir = train(make_config(dataset, tmp_path / "run", epochs=2, device="cuda", amp=True))
    records = read_metrics(run_dir)
    assert len(records) == 2 and all(math.isfinite(r["train_loss"]) for r in records)
    assert records[-1]["train_loss"] < records[0]["train_loss"] * 1.5


def test_the_cluster_path_runs_inference_on_a_gpu_actor(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray", reason="the cluster extra is not installed")
    from inference.batch.pipeline import BatchOptions, analyze
    from tests.inference.test_analyze_cluster import _write_stacks

    _write_stacks(tmp_path / "in", 2, "gpu-actor")
    ray.init(num_cpus=4, num_gpus=1, object_store_memory=200 * 1024**2, include_dashboard=False)
    try:
        report = analyze([tmp_path / "in"], BatchOptions(out=tmp_path / "out", jobs=0, cluster="local"))
    finally:
        ray.shutdown()
    assert report.count("ok") == 2, report.rows
    for row in report.rows:
        findings = json.loads((tmp_path / "out" / row["folder"] / "findings.json").read_text())
        assert str(findings.get("device", "")).startswith("cuda"), findings.get("device")
