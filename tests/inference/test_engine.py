"""The engine: alignment on the source grid, sliding windows, cancellation, out-of-memory, shapes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inference.engine.result import Result
from inference.engine.run import LoadedModel, _Batches, run
from inference.errors import InferenceCancelled, RadLensError
from inference.progress import CancelToken
from inference.sample_study import make_chest_phantom
from inference.volume import Volume

from .oracle_models import BlobOracle, Pointwise, card, loaded


def _rotation(deg: float) -> np.ndarray:
    a = np.radians(deg)
    return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])


@pytest.fixture(scope="module")
def phantom() -> tuple[Volume, list]:
    return make_chest_phantom()


@pytest.mark.parametrize("orientation", ["head-first", "feet-first", "oblique"])
def test_blob_oracle_findings_sit_on_the_known_nodules(phantom: tuple[Volume, list], orientation: str) -> None:
    base, nodules = phantom
    direction = {
        "head-first": np.eye(3),
        "feet-first": np.diag([-1.0, 1.0, -1.0]),
        "oblique": _rotation(25),
    }[orientation]
    volume = Volume(base.voxels, base.spacing, (-10.0, 20.0, 30.0), direction, base.metadata)
    result = run(loaded(BlobOracle(), card(input={"patch_size": [48, 96, 96], "batch_size": 2})), volume)
    assert result.label_map is not None and result.label_map.shape == volume.shape
    centres = np.array([f.centroid_lps for f in result.findings])
    assert len(result.findings) >= len(nodules)
    for nodule in nodules:
        expected = volume.index_to_lps(nodule.center_ijk)
        distance = np.linalg.norm(centres - expected, axis=1).min()
        assert distance < 2.0, f"{orientation}: no finding within 2 mm of the nodule at {expected} ({distance:.2f} mm)"
        # The label map itself is set at the nodule centre voxel.
        i, j, k = (int(round(v)) for v in nodule.center_ijk)
        assert result.label_map[k, j, i] == 1


def test_sliding_window_equals_whole_volume_inference_where_both_fit() -> None:
    rng = np.random.default_rng(0)
    vox = rng.integers(-1000, 1000, size=(40, 64, 72)).astype(np.int16)
    volume = Volume(vox, (1.0, 1.0, 2.0), (0, 0, 0), np.eye(3))
    whole = run(loaded(Pointwise(), card(input={"patch_size": [48, 64, 80]})), volume)
    windows = run(loaded(Pointwise(), card(input={"patch_size": [16, 32, 32], "batch_size": 3})), volume)
    assert whole.probability_map is not None and windows.probability_map is not None
    np.testing.assert_allclose(windows.probability_map, whole.probability_map, atol=1e-5)
    np.testing.assert_array_equal(windows.label_map, whole.label_map)


def test_target_spacing_round_trip_keeps_outputs_on_the_source_grid(phantom: tuple[Volume, list]) -> None:
    volume, nodules = phantom
    model_card = card(input={"target_spacing": [2.0, 2.0, 2.0], "patch_size": [64, 96, 96]})
    result = run(loaded(BlobOracle(sigma_small=1.0, sigma_large=3.5), model_card), volume)
    assert result.label_map is not None and result.label_map.shape == volume.shape
    big = max(nodules, key=lambda n: n.radius_mm)
    i, j, k = (int(round(v)) for v in big.center_ijk)
    assert result.label_map[k, j, i] == 1


def test_cancel_mid_run_stops_within_one_batch() -> None:
    vox = np.zeros((64, 64, 64), dtype=np.int16)
    volume = Volume(vox, (1.0, 1.0, 1.0), (0, 0, 0), np.eye(3))
    net = Pointwise()
    calls: list[int] = []
    net.register_forward_hook(lambda _m, inp, _o: calls.append(inp[0].shape[0]))
    token = CancelToken()

    def progress(fraction: float, message: str) -> None:
        if fraction > 0:
            token.cancel()

    with pytest.raises(InferenceCancelled):
        run(loaded(net, card(input={"patch_size": [16, 16, 16], "batch_size": 2})), volume, progress, token)
    assert len(calls) == 1  # the batch in flight finished; no further batch started


class _OomAboveTwo(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        self.batches.append(x.shape[0])
        return self.inner(x)


def test_out_of_memory_halves_the_batch_and_says_so() -> None:
    from inference.models.architectures import build_model

    torch.manual_seed(0)
    net = _OomAboveTwo(build_model("cnn"))
    model_card = card("slice-classification", explanation="none", input={"size": [32, 32], "batch_size": 8})
    volume = Volume(np.zeros((10, 40, 40), np.int16), (1.0, 1.0, 1.0), (0, 0, 0), np.eye(3))
    result = run(loaded(net, model_card), volume)
    assert result.slice_probabilities is not None and result.slice_probabilities.shape == (10,)
    assert max(net.batches) <= 2 and sum(net.batches) == 10
    assert any("batch size reduced to 2" in m for m in result.messages)


def test_out_of_memory_at_batch_one_falls_back_to_cpu() -> None:
    net = torch.nn.Linear(1, 1)
    lm = LoadedModel(card(), net, "mps")  # device string only: the step below simulates the GPU
    result = Result("oracle", "0", "mps")
    batches = _Batches(lm, 1, result, CancelToken())
    seen: list[str] = []

    def step(start: int, stop: int) -> None:
        if lm.device != "cpu":
            raise torch.cuda.OutOfMemoryError("out of memory")
        seen.append(lm.device)

    batches.run(3, step, lambda f, m: None, "slices")
    assert seen == ["cpu"] * 3
    assert result.device == "cpu" and any("fell back to CPU" in m for m in result.messages)


def test_other_errors_are_not_mistaken_for_out_of_memory() -> None:
    lm = LoadedModel(card(), torch.nn.Linear(1, 1), "cpu")
    batches = _Batches(lm, 4, Result("o", "0", "cpu"), CancelToken())

    def step(start: int, stop: int) -> None:
        raise ValueError("shape mismatch")

    with pytest.raises(ValueError, match="shape mismatch"):
        batches.run(3, step, lambda f, m: None, "slices")


@pytest.mark.parametrize("explanation", ["gradcam", "attention"])
def test_slice_classifier_outputs_lie_on_the_source_grid(explanation: str) -> None:
    from inference.models.architectures import build_model

    torch.manual_seed(0)
    arch = "cnn" if explanation == "gradcam" else "cnn-attention"
    net = build_model(arch, in_channels=3)
    model_card = card(
        "slice-classification",
        explanation=explanation,
        threshold=0.99,
        input={"size": [48, 48], "context_slices": 1, "batch_size": 4},
    )
    rng = np.random.default_rng(1)
    volume = Volume(rng.integers(-1000, 400, (7, 50, 60)).astype(np.int16), (0.7, 0.7, 3.0), (0, 0, 0), np.eye(3))
    result = run(loaded(net, model_card), volume)
    assert result.slice_probabilities is not None
    assert result.slice_probabilities.shape == (7,)
    assert np.all((result.slice_probabilities >= 0) & (result.slice_probabilities <= 1))
    heat = result.heatmaps[explanation]
    assert heat.shape == volume.shape and heat.dtype == np.float32
    assert float(heat.min()) >= 0.0 and float(heat.max()) <= 1.0
    assert result.study_score == pytest.approx(float(result.slice_probabilities.max()))


def test_volume_classifier_gives_a_study_score_and_slice_contributions() -> None:
    from inference.models.architectures import build_model

    torch.manual_seed(0)
    model_card = card("volume-classification", input={"size": [32, 32]})
    volume = Volume(np.zeros((9, 40, 40), np.int16), (1.0, 1.0, 1.0), (0, 0, 0), np.eye(3))
    result = run(loaded(build_model("cnn-rnn"), model_card), volume)
    assert result.study_score is not None and 0.0 <= result.study_score <= 1.0
    assert result.slice_probabilities is not None and result.slice_probabilities.shape == (9,)


def test_modality_mismatch_is_refused_with_reason() -> None:
    volume = Volume(np.zeros((4, 8, 8), np.int16), (1.0, 1.0, 1.0), (0, 0, 0), np.eye(3))
    from inference.volume import VolumeMetadata

    mr = Volume(volume.voxels, volume.spacing, volume.origin, volume.direction, VolumeMetadata(modality="MR"))
    with pytest.raises(RadLensError, match="is for CT, this volume is MR"):
        run(loaded(Pointwise(), card()), mr)
