"""A MONAI bundle added with `radlens models add` and run by the engine gives what MONAI's own
bundle workflow (`python -m monai.bundle run`) writes, voxel for voxel, on volumes of several
geometries; tampered or unsafe bundles are refused before anything runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inference.errors import ModelLoadError
from inference.models.card import load_card
from inference.models.model_import import UntrustedModelError, add_model, remove_model
from inference.progress import CancelToken
from inference.volume import Volume

METADATA = {
    "version": "0.1.0",
    "changelog": {"0.1.0": "a tiny UNet for tests"},
    "monai_version": "1.6.1",
    "name": "Tiny Spleen CT",
    "task": "segmentation",
    "description": "A tiny randomly initialised 3-D UNet for RadLens's tests",
    "authors": "RadLens tests",
    "license": "Apache-2.0",
    "network_data_format": {
        "inputs": {"image": {"type": "image", "format": "hounsfield", "modality": "CT", "num_channels": 1}},
        "outputs": {
            "pred": {
                "type": "image",
                "format": "segmentation",
                "num_channels": 2,
                "channel_def": {"0": "background", "1": "spleen"},
            }
        },
    },
}


def _inference_config(pixdim: list[float]) -> dict[str, Any]:
    """A Model Zoo style inference config: dataset, dataloader, evaluator and handlers included."""
    return {
        "imports": ["$import glob", "$import os", "$import numpy as np"],
        "bundle_root": ".",
        "output_dir": "$@bundle_root + '/eval'",
        "dataset_dir": "/nonexistent",
        "datalist": "$list(sorted(glob.glob(os.path.join(@dataset_dir, '*.nii.gz'))))",
        "device": "$torch.device('cpu')",
        "network_def": {
            "_target_": "UNet",
            "spatial_dims": 3,
            "in_channels": 1,
            "out_channels": 2,
            "channels": [8, 16],
            "strides": [2],
            "num_res_units": 1,
        },
        "network": "$@network_def.to(@device)",
        "preprocessing": {
            "_target_": "Compose",
            "transforms": [
                {"_target_": "LoadImaged", "keys": "image"},
                {"_target_": "EnsureChannelFirstd", "keys": "image"},
                {"_target_": "Orientationd", "keys": "image", "axcodes": "RAS"},
                {"_target_": "Spacingd", "keys": "image", "pixdim": pixdim, "mode": "bilinear"},
                {
                    "_target_": "ScaleIntensityRanged",
                    "keys": "image",
                    "a_min": -200,
                    "a_max": 300,
                    "b_min": 0.0,
                    "b_max": 1.0,
                    "clip": True,
                },
                {"_target_": "EnsureTyped", "keys": "image"},
            ],
        },
        "dataset": {"_target_": "Dataset", "data": "$[{'image': i} for i in @datalist]", "transform": "@preprocessing"},
        "dataloader": {"_target_": "DataLoader", "dataset": "@dataset", "batch_size": 1, "num_workers": 0},
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": [32, 32, 32], "sw_batch_size": 2, "overlap": 0.25},
        "postprocessing": {
            "_target_": "Compose",
            "transforms": [
                {"_target_": "Activationsd", "keys": "pred", "softmax": True},
                {
                    "_target_": "Invertd",
                    "keys": "pred",
                    "transform": "@preprocessing",
                    "orig_keys": "image",
                    "nearest_interp": False,
                    "to_tensor": True,
                },
                {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
                {
                    "_target_": "SaveImaged",
                    "keys": "pred",
                    "output_dir": "@output_dir",
                    "separate_folder": False,
                    "resample": False,
                    "output_dtype": "$np.uint8",
                },
            ],
        },
        "handlers": [
            {
                "_target_": "CheckpointLoader",
                "load_path": "$@bundle_root + '/models/model.pt'",
                "load_dict": {"model": "@network"},
            }
        ],
        "evaluator": {
            "_target_": "SupervisedEvaluator",
            "device": "@device",
            "val_data_loader": "@dataloader",
            "network": "@network",
            "inferer": "@inferer",
            "postprocessing": "@postprocessing",
            "val_handlers": "@handlers",
            "amp": False,
        },
        "run": ["$@evaluator.run()"],
    }


def _write_bundle(root: Path, pixdim: list[float] | None = None) -> Path:
    """A MONAI bundle built with MONAI's own UNet, its weights saved as a state dict."""
    import torch
    from monai.networks.nets import UNet

    (root / "configs").mkdir(parents=True)
    (root / "models").mkdir()
    config = _inference_config(pixdim or [1.5, 1.5, 2.0])
    (root / "configs" / "metadata.json").write_text(json.dumps(METADATA, indent=1))
    (root / "configs" / "inference.json").write_text(json.dumps(config, indent=1))
    torch.manual_seed(7)
    net = UNet(spatial_dims=3, in_channels=1, out_channels=2, channels=(8, 16), strides=(2,), num_res_units=1)
    with torch.no_grad():  # a random network that splits the head: bone and brain fall on different sides
        last = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d | torch.nn.ConvTranspose3d)][-1]
        assert last.bias is not None and last.bias.shape == (2,)
        last.bias.copy_(torch.tensor([0.0, 0.05]))
    torch.save(net.state_dict(), root / "models" / "model.pt")
    return root


def _volumes(ct_head: Any) -> dict[str, Volume]:
    voxels, (si, sj, sk) = ct_head
    part = np.ascontiguousarray(voxels[30:70, 40:200:3, 40:200:3])
    spacing = (si * 3, sj * 3, sk)
    c, s = np.cos(np.radians(20)), np.sin(np.radians(20))
    oblique = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]) @ np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    feet_first = np.diag([-1.0, 1.0, -1.0])
    return {
        "axial": Volume(part, spacing, (-80.0, -90.0, 10.0), np.eye(3)),
        "oblique": Volume(part, spacing, (-80.0, -90.0, 10.0), oblique),
        "feet-first": Volume(part, spacing, (80.0, -90.0, 60.0), feet_first),
        "anisotropic": Volume(
            np.ascontiguousarray(part[::2]), (spacing[0], spacing[1] * 0.7, sk * 2), (0.0, 0.0, 0.0), np.eye(3)
        ),
    }


def _monai_run(bundle: Path, image: Path, out: Path) -> np.ndarray:
    """MONAI's own bundle workflow (``monai.bundle.run``, what ``python -m monai.bundle run`` calls)
    on ``image``: the label map it saves, as ``[k, j, i]``."""
    import nibabel as nib

    call = (
        "from monai.bundle import run; "
        f"run(run_id='run', config_file={str(bundle / 'configs' / 'inference.json')!r}, "
        f"meta_file={str(bundle / 'configs' / 'metadata.json')!r}, bundle_root={str(bundle)!r}, "
        f"dataset_dir={str(image.parent)!r}, output_dir={str(out)!r})"
    )
    done = subprocess.run([sys.executable, "-c", call], capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    saved = sorted(out.glob("*.nii.gz"))
    assert len(saved) == 1, (saved, done.stderr[-2000:])
    return np.asarray(nib.load(str(saved[0])).dataobj).squeeze().transpose(2, 1, 0)


@pytest.mark.slow
def test_bundle_equals_monais_own_run_on_several_geometries(tmp_path: Path, ct_head: Any) -> None:
    from inference.engine.pipelines import pipeline_for
    from inference.io.nifti_writer import write_nifti

    bundle = _write_bundle(tmp_path / "bundle")
    card = load_card(add_model(bundle, folder=tmp_path / "models"))
    assert (card.name, card.modality, [lab.name for lab in card.labels]) == ("tiny-spleen-ct", ("CT",), ["spleen"])
    run = pipeline_for(card)
    for name, volume in _volumes(ct_head).items():
        folder = tmp_path / name
        folder.mkdir()
        image = write_nifti(volume, folder / "image.nii.gz")
        expected = _monai_run(bundle, image, tmp_path / f"{name}-out")
        progress: list[float] = []
        result = run(card, volume, lambda f, _m, seen=progress: seen.append(f), CancelToken(), "cpu")
        assert result.label_map is not None and result.label_map.shape == volume.shape
        assert set(np.unique(expected)) == {0, 1}, f"{name}: the test network should mark some voxels"
        assert np.array_equal(result.label_map, expected), (
            f"{name}: {int((result.label_map != expected).sum())} of {expected.size} voxels differ"
        )
        assert result.findings and all(f.name == "spleen" for f in result.findings)
        assert progress[0] == 0.0 and progress[-1] == 1.0 and len(progress) > 3
    assert not any(p.name.startswith("image") for p in bundle.rglob("*"))  # nothing written into the bundle


def test_cli_adds_lists_and_removes_a_bundle(tmp_path: Path) -> None:
    bundle = _write_bundle(tmp_path / "bundle")
    env = {"XDG_DATA_HOME": str(tmp_path / "data"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}

    def radlens(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "inference.cli.main", "models", *args],
            capture_output=True, text=True, env={**env, "PYTHONPATH": str(Path.cwd())}, check=False, timeout=120,
        )  # fmt: skip

    added = radlens("add", str(bundle), "--name", "tiny")
    assert added.returncode == 0, added.stderr
    assert "added tiny 0.1.0 [segmentation, CT]" in added.stdout and "spleen" in added.stdout
    listed = radlens("--json")
    names = [m["name"] for m in json.loads(listed.stdout)["models"]]
    assert "tiny" in names
    removed = radlens("remove", "tiny")
    assert removed.returncode == 0, removed.stderr
    assert "tiny" not in [m["name"] for m in json.loads(radlens("--json").stdout)["models"]]
    assert bundle.joinpath("models", "model.pt").is_file()  # the model's own files stay
    missing = radlens("remove", "tiny")
    assert missing.returncode == 1 and "no added model named 'tiny'" in missing.stderr


def test_a_tampered_bundle_is_refused_before_it_runs(tmp_path: Path, ct_head: Any) -> None:
    from inference.engine.pipelines import pipeline_for

    bundle = _write_bundle(tmp_path / "bundle")
    card = load_card(add_model(bundle, folder=tmp_path / "models"))
    volume = _volumes(ct_head)["axial"]
    weights = bundle / "models" / "model.pt"
    weights.write_bytes(weights.read_bytes() + b"\0")
    with pytest.raises(ModelLoadError, match="sha256 mismatch"):
        pipeline_for(card)(card, volume, lambda *_: None, CancelToken(), "cpu")
    _write_bundle(tmp_path / "bundle2")
    card2 = load_card(add_model(tmp_path / "bundle2", name="two", folder=tmp_path / "models"))
    config = tmp_path / "bundle2" / "configs" / "inference.json"
    config.write_text(config.read_text().replace('"num_res_units": 1', '"num_res_units": 2'))
    with pytest.raises(ModelLoadError, match="sha256 mismatch"):
        pipeline_for(card2)(card2, volume, lambda *_: None, CancelToken(), "cpu")


@pytest.mark.parametrize(
    ("item", "value"),
    [
        ("network_def", {"_target_": "os.system", "command": "touch MARKER"}),
        ("network", "$__import__('os').system('touch MARKER')"),
        ("network", "$os.system('touch MARKER')"),
        ("network", "$torch.load('weights.pkl', weights_only=False)"),
        ("imports", ["$import subprocess"]),
        ("network", "$open('MARKER', 'w').write('x')"),
    ],
)
def test_a_bundle_that_could_run_other_code_is_refused_unless_trusted(
    tmp_path: Path, item: str, value: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = _write_bundle(tmp_path / "bundle")
    config_path = bundle / "configs" / "inference.json"
    config = json.loads(config_path.read_text())
    config[item] = value
    config_path.write_text(json.dumps(config))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UntrustedModelError, match="--trust"):
        add_model(bundle, folder=tmp_path / "models")
    assert not (tmp_path / "models" / "tiny-spleen-ct").exists()
    assert not (tmp_path / "MARKER").exists()
    card = load_card(add_model(bundle, folder=tmp_path / "models", trust=True))  # the user said so
    assert card.architecture_args["trusted"] is True
    assert not (tmp_path / "MARKER").exists()  # adding never runs the config
    remove_model(card.name, folder=tmp_path / "models")
