"""An ONNX export of RadLens's own networks, added with a card the user completes, runs through
the engine like the original: the same slice probabilities (the shipped slice classifier) and the
same segmentation (the 3-D U-Net through the sliding window), within float tolerance."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inference.errors import ModelCardError, ModelLoadError
from inference.models.card import load_card
from inference.models.model_import import OnnxCardOptions, add_model
from inference.models.registry import discover


def _export(network: Any, example: Any, path: Path, dynamic: dict[int, str]) -> Path:
    import torch

    with torch.no_grad():
        torch.onnx.export(
            network, example, str(path), dynamo=False, input_names=["x"], output_names=["y"],
            dynamic_axes={"x": dynamic, "y": dynamic}, opset_version=17,
        )  # fmt: skip
    return path


def test_the_shipped_slice_classifier_exported_to_onnx_gives_its_probabilities(tmp_path: Path, ct_head: Any) -> None:
    import torch

    from inference.engine.run import run
    from inference.models.safe_load import load_network
    from inference.volume import Volume

    demo = discover().get("ct-nodule-demo")
    network = load_network(demo, "cpu")

    class Logits(torch.nn.Module):  # the classifier's logit output alone, as an exporter would take it
        def __init__(self) -> None:
            super().__init__()
            self.net = network

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.net(x)
            return out[0] if isinstance(out, tuple) else out

    onnx_file = _export(Logits().eval(), torch.zeros(2, 3, 128, 128), tmp_path / "demo.onnx", {0: "n"})
    options = OnnxCardOptions(
        modality="CT", task="slice-classification", labels={1: "lesion"}, window=(40.0, 400.0), size=(128, 128),
        context_slices=1, threshold=demo.threshold,
    )  # fmt: skip
    card = load_card(add_model(onnx_file, "demo-onnx", folder=tmp_path / "models", onnx=options))
    assert card.weights_format.value == "onnx" and card.input.window == (40.0, 400.0)
    voxels, spacing = ct_head
    volume = Volume(np.ascontiguousarray(voxels[40:60]), spacing, (0.0, 0.0, 0.0), np.eye(3))
    expected = run(demo, volume, device="cpu", explain=False)
    got = run(card, volume, device="cpu", explain=False)
    assert got.slice_probabilities is not None and expected.slice_probabilities is not None
    np.testing.assert_allclose(got.slice_probabilities, expected.slice_probabilities, atol=2e-4)
    assert got.study_score == pytest.approx(expected.study_score, abs=2e-4)


def test_a_3d_unet_exported_to_onnx_segments_like_the_original(tmp_path: Path, ct_head: Any) -> None:
    import torch

    from inference.engine.run import run
    from inference.models.architectures import build_model
    from inference.volume import Volume

    torch.manual_seed(3)
    unet = build_model("unet3d", in_channels=1, out_channels=2).eval()
    weights = tmp_path / "unet.pt"
    buffer = io.BytesIO()
    torch.save(unet.state_dict(), buffer)
    weights.write_bytes(buffer.getvalue())
    import hashlib

    torch_card_path = tmp_path / "torch" / "card.json"
    torch_card_path.parent.mkdir()
    table = {
        "name": "unet-torch", "version": "1", "task": "segmentation", "modality": ["CT"], "architecture": "unet3d",
        "architecture_args": {"in_channels": 1, "out_channels": 2}, "weights": str(weights),
        "weights_format": "state-dict", "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "licence": "test", "intended_use": "test", "input": {"window": [40.0, 400.0], "patch_size": [32, 32, 32]},
        "labels": [{"value": 1, "name": "lesion"}],
    }  # fmt: skip
    torch_card_path.write_text(json.dumps(table))
    torch_card = load_card(torch_card_path)
    onnx_file = _export(unet, torch.zeros(1, 1, 32, 32, 32), tmp_path / "unet.onnx", {0: "n"})
    options = OnnxCardOptions(
        modality="CT", task="segmentation", labels={1: "lesion"}, window=(40.0, 400.0), patch_size=(32, 32, 32)
    )
    card = load_card(add_model(onnx_file, "unet-onnx", folder=tmp_path / "models", onnx=options))
    voxels, spacing = ct_head
    volume = Volume(np.ascontiguousarray(voxels[40:80, 64:160, 64:160]), spacing, (0.0, 0.0, 0.0), np.eye(3))
    expected = run(torch_card, volume, device="cpu")
    got = run(card, volume, device="cpu")
    assert got.probability_map is not None and expected.probability_map is not None
    np.testing.assert_allclose(got.probability_map, expected.probability_map, atol=1e-4)
    assert expected.label_map is not None and got.label_map is not None
    assert (got.label_map != expected.label_map).mean() < 1e-4  # ties at the threshold may fall either way
    assert 0 < expected.label_map.mean() < 1


def test_an_onnx_model_needs_its_card_completed_and_its_checksum(tmp_path: Path) -> None:
    import torch

    onnx_file = _export(
        torch.nn.Conv3d(1, 2, 3, padding=1).eval(), torch.zeros(1, 1, 8, 8, 8), tmp_path / "m.onnx", {0: "n"}
    )
    with pytest.raises(ModelCardError, match="--modality, --task"):
        add_model(onnx_file, folder=tmp_path / "models")
    done = subprocess.run(
        [sys.executable, "-m", "inference.cli.main", "models", "add", str(onnx_file), "--task", "segmentation"],
        capture_output=True, text=True, check=False, timeout=120,
        env={"XDG_DATA_HOME": str(tmp_path / "data"), "HOME": str(tmp_path), "PYTHONPATH": str(Path.cwd())},
    )  # fmt: skip
    assert done.returncode == 1 and "give --modality" in done.stderr, done.stderr
    card = load_card(
        add_model(onnx_file, folder=tmp_path / "models", onnx=OnnxCardOptions(modality="MR", task="segmentation"))
    )
    from inference.engine.run import run
    from inference.volume import Volume

    onnx_file.write_bytes(onnx_file.read_bytes()[:-1] + b"\0")
    volume = Volume(np.zeros((8, 8, 8), np.int16), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    with pytest.raises(ModelLoadError, match="sha256 mismatch"):
        run(card, volume, device="cpu")
