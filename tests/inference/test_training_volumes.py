"""``train`` for the stack models: the CNN + RNN on windows of consecutive slices and the 3-D U-Net
on patches; runs of slices; the cards these runs write, run by the engine on a volume."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inference.training.config import TrainingConfigError, parse_config
from inference.training.dataset_format import DatasetError, read_dataset, write_dataset
from inference.training.sequences import contiguous_runs, random_windows, tiling_windows, window_rows
from inference.training.train import train
from inference.volume import Volume, VolumeMetadata

WINDOW = (40.0, 400.0)
SPLITS = ("train", "train", "train", "val", "val", "test", "test")
SLICES, SIZE = 24, 32


def stack_volumes(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """One HU volume per source (24 × 32²: soft tissue and noise) and its lesion mask: a bright
    ellipsoid over a few slices in every source but the last of each split."""
    rng = np.random.default_rng(seed)
    kk, yy, xx = np.mgrid[:SLICES, :SIZE, :SIZE]
    out = []
    for s, split in enumerate(SPLITS):
        hu = rng.normal(40.0, 12.0, (SLICES, SIZE, SIZE))
        mask = np.zeros((SLICES, SIZE, SIZE), np.uint8)
        if s + 1 < len(SPLITS) and SPLITS[s + 1] == split:  # not the last of its split
            for _ in range(2):
                cz, cy, cx = rng.uniform(3, SLICES - 4), rng.uniform(8, SIZE - 8), rng.uniform(8, SIZE - 8)
                rz, rxy = rng.uniform(2.0, 3.0), rng.uniform(3.0, 5.0)
                inside = ((kk - cz) / rz) ** 2 + ((yy - cy) / rxy) ** 2 + ((xx - cx) / rxy) ** 2 <= 1
                hu[inside] += 120.0
                mask[inside] = 1
        out.append((hu, mask))
    return out


def windowed(hu: np.ndarray) -> np.ndarray:
    lo = WINDOW[0] - WINDOW[1] / 2
    return np.clip(np.rint((hu - lo) / WINDOW[1] * 255), 0, 255).astype(np.uint8)


def make_stack_dataset(root: Path, *, drop_every: int = 0) -> Path:
    """A dataset as ``radlens dataset build`` writes it with every slice kept (context 1: 3 channels);
    ``drop_every`` leaves out every n-th slice, as sampling per source does."""
    images, labels, masks, sources, positions = [], [], [], [], []
    for s, (hu, mask) in enumerate(stack_volumes()):
        u8 = windowed(hu)
        for k in range(SLICES):
            if drop_every and k % drop_every == 0:
                continue
            ctx = [u8[max(k - 1, 0)], u8[k], u8[min(k + 1, SLICES - 1)]]
            images.append(np.stack(ctx))
            labels.append(int(mask[k].any()))
            masks.append(mask[k])
            sources.append(s)
            positions.append(k)
    manifest: dict[str, Any] = {
        "sources": [{"id": f"stack-{i}", "split": sp} for i, sp in enumerate(SPLITS)],
        "preprocessing": {"window": {"center": WINDOW[0], "width": WINDOW[1]}, "context_slices": 1},
    }
    arrays = {
        "images": np.stack(images),
        "labels": np.array(labels, np.uint8),
        "masks": np.stack(masks),
        "sources": np.array(sources, np.int32),
        "slice_index": np.array(positions, np.int32),
    }
    return write_dataset(root, manifest, arrays)


def without_lesions(dataset: Path, split: str, out: Path) -> Path:
    """A copy of ``dataset`` whose ``split`` has no lesion (labels and masks cleared)."""
    ds = read_dataset(dataset)
    rows = ds.split_indices(split)
    masks, labels = np.array(ds.masks), np.array(ds.labels)
    masks[rows], labels[rows] = 0, 0
    arrays = {
        "images": ds.images,
        "labels": labels,
        "masks": masks,
        "sources": ds.sources,
        "slice_index": ds.slice_index,
    }
    return write_dataset(out, dict(ds.manifest), arrays)


def config(dataset: Path, run_dir: Path, architecture: str, args: dict[str, Any], **train_keys: Any) -> Any:
    return parse_config(
        {
            "data": {"dataset": str(dataset)},
            "model": {"architecture": architecture, "args": args},
            "train": {
                "epochs": 6, "batch_size": 4, "lr": 3e-3, "early_stopping_patience": 0, "num_threads": 1, "seed": 1,
                **train_keys,
            },
            "augment": {"flip": True, "rotate_deg": 5.0, "scale": 0.05, "intensity": 0.05},
            "card": {"name": f"tiny-{architecture}", "version": "0.0.1", "modality": "CT", "licence": "Apache-2.0"},
            "output": {"run_dir": str(run_dir)},
        }
    )  # fmt: skip


def metrics(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_stack_dataset(tmp_path_factory.mktemp("stacks") / "ds")


def volume_of(source: int) -> tuple[Volume, np.ndarray]:
    hu, mask = stack_volumes()[source]
    meta = VolumeMetadata(modality="CT")
    voxels = np.rint(hu).astype(np.int16)
    return Volume(voxels=voxels, spacing=(1.0, 1.0, 2.0), origin=(0, 0, 0), direction=np.eye(3), metadata=meta), mask


# --------------------------------------------------------------------------------------------
# runs and windows


def test_runs_follow_each_source_in_slice_order_and_break_at_gaps(stacks: Path, tmp_path: Path) -> None:
    ds = read_dataset(stacks)
    shuffled = np.random.default_rng(0).permutation(ds.split_indices("train"))
    runs = contiguous_runs(ds, shuffled)
    assert len(runs) == 3 and all(r.size == SLICES for r in runs)
    for run in runs:
        assert len(set(ds.sources[run].tolist())) == 1 and np.array_equal(ds.slice_index[run], np.arange(SLICES))
    gappy = read_dataset(make_stack_dataset(tmp_path / "gappy", drop_every=5))
    sizes = sorted(r.size for r in contiguous_runs(gappy, gappy.split_indices("train")))
    assert sizes == [3] * 3 + [4] * 12  # 1-4, 6-9, 11-14, 16-19, 21-23 of each source

    windows = tiling_windows(runs, 10)
    covered = np.concatenate([window_rows(runs, w) for w in windows])
    assert set(covered.tolist()) == set(shuffled.tolist()) and all(w.length == 10 for w in windows)
    wanted = [np.flatnonzero(np.asarray(ds.labels[r]) > 0) for r in runs]
    picked = random_windows(runs, 6, 200, np.random.default_rng(1), wanted, fraction=1.0)
    assert all(np.asarray(ds.labels[window_rows(runs, w)]).any() for w in picked)  # each holds a lesion
    anywhere = random_windows(runs, 6, 200, np.random.default_rng(1))
    assert {w.start for w in anywhere} == set(range(SLICES - 6 + 1))


# --------------------------------------------------------------------------------------------
# cnn-rnn


def test_the_cnn_rnn_learns_which_windows_hold_a_lesion_and_its_card_runs(stacks: Path, tmp_path: Path) -> None:
    from inference.engine.run import run
    from inference.models.card import Task, load_card

    run_dir = train(config(stacks, tmp_path / "rnn", "cnn-rnn", {"channels": [8, 16, 32]}, sequence_length=8))
    history = metrics(run_dir)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert max(r["val_auc"] for r in history) >= 0.9 and "val_dice" not in history[0]
    card = load_card(run_dir / "card.toml")
    assert card.task == Task.VOLUME_CLASSIFICATION and card.architecture == "cnn-rnn"
    assert card.input.context_slices == 1 and card.input.size == (SIZE, SIZE) and card.explanation.value == "none"
    volume, _ = volume_of(5)  # a test stack with lesions
    result = run(card, volume, device="cpu")
    assert 0.0 <= result.study_score <= 1.0
    assert result.slice_probabilities is not None and result.slice_probabilities.shape == (SLICES,)


def test_windows_need_whole_stacks_and_both_classes(tmp_path: Path) -> None:
    gappy = make_stack_dataset(tmp_path / "gappy", drop_every=5)
    with pytest.raises(DatasetError, match=r"no run of 8 consecutive slices.*--positives-per-source"):
        train(config(gappy, tmp_path / "r1", "cnn-rnn", {"channels": [8, 16, 32]}, sequence_length=8))
    stacks = make_stack_dataset(tmp_path / "whole")
    healthy = without_lesions(stacks, "train", tmp_path / "healthy")
    with pytest.raises(DatasetError, match="train split has no positive windows"):
        train(config(healthy, tmp_path / "r2", "cnn-rnn", {"channels": [8, 16, 32]}, sequence_length=8))
    with pytest.raises(TrainingConfigError, match="no map for 'cnn-rnn'"):
        cfg = config(stacks, tmp_path / "r3", "cnn-rnn", {}).to_dict()
        cfg["card"]["explanation"] = "gradcam"
        parse_config(cfg)
    with pytest.raises(TrainingConfigError, match="sequence_length"):
        config(stacks, tmp_path / "r4", "cnn-rnn", {}, sequence_length=1)


# --------------------------------------------------------------------------------------------
# unet3d


def test_the_3d_unet_learns_the_lesion_masks_and_the_engine_segments_with_its_card(
    stacks: Path, tmp_path: Path
) -> None:
    from inference.engine.run import run
    from inference.models.card import Task, load_card
    from inference.training.metrics import dice

    args = {"channels": [8, 16, 32, 64]}
    run_dir = train(config(stacks, tmp_path / "unet", "unet3d", args, epochs=12, patch_size=[8, 32, 32], lr=1e-2))
    history = metrics(run_dir)
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    best = max(r["val_dice"] for r in history)
    assert best >= 0.6 and "val_auc" not in history[0]
    card = load_card(run_dir / "card.toml")
    assert card.task == Task.SEGMENTATION and card.input.patch_size == (8, 32, 32)
    assert card.input.context_slices == 0 and card.architecture_args["in_channels"] == 1
    assert f"best validation Dice {best:.4f}" in card.description
    volume, mask = volume_of(5)
    result = run(card, volume, device="cpu")
    assert result.label_map is not None and result.label_map.shape == volume.shape
    assert dice(result.label_map > 0, mask > 0) >= 0.5
    assert result.findings  # the lesions, as components


def test_the_engine_segments_on_the_grid_the_model_was_trained_on(stacks: Path, tmp_path: Path) -> None:
    """A card's in-plane size resizes each slice for the U-Net and the masks back: a volume twice
    as fine in-plane gets the same lesions as the one the model saw."""
    from scipy import ndimage

    from inference.engine.run import run
    from inference.models.card import load_card
    from inference.training.metrics import dice

    args = {"channels": [8, 16, 32, 64]}
    run_dir = train(config(stacks, tmp_path / "unet", "unet3d", args, epochs=12, patch_size=[8, 32, 32], lr=1e-2))
    card = load_card(run_dir / "card.toml")
    volume, mask = volume_of(5)
    fine = Volume(
        voxels=ndimage.zoom(volume.voxels, (1, 2, 2), order=1), spacing=(0.5, 0.5, 2.0), origin=(0, 0, 0),
        direction=np.eye(3), metadata=volume.metadata,
    )  # fmt: skip
    labels = run(card, fine, device="cpu").label_map
    assert labels is not None and labels.shape == (SLICES, 2 * SIZE, 2 * SIZE)
    assert dice(labels > 0, np.kron(mask, np.ones((1, 2, 2), np.uint8)) > 0) >= 0.5


def test_patches_need_lesions_and_must_fit_the_slices(tmp_path: Path) -> None:
    stacks = make_stack_dataset(tmp_path / "ds")
    args = {"channels": [8, 16, 32, 64]}
    with pytest.raises(DatasetError, match="larger than the dataset's slices"):
        train(config(stacks, tmp_path / "r1", "unet3d", args, patch_size=[8, 64, 64]))
    with pytest.raises(TrainingConfigError, match="multiple of 8"):
        config(stacks, tmp_path / "r2", "unet3d", args, patch_size=[8, 30, 32])
    empty = without_lesions(stacks, "val", tmp_path / "no-val-lesions")
    with pytest.raises(DatasetError, match="val split has no slice with a lesion"):
        train(config(empty, tmp_path / "r3", "unet3d", args, patch_size=[8, 32, 32]))


def test_a_unet_run_resumes_where_it_stopped(stacks: Path, tmp_path: Path) -> None:
    from inference.errors import OperationCancelled
    from inference.progress import CancelToken

    args = {"channels": [8, 16, 32, 64]}
    straight = train(config(stacks, tmp_path / "straight", "unet3d", args, epochs=3, patch_size=[8, 32, 32]))
    token = CancelToken()
    with pytest.raises(OperationCancelled):
        train(
            config(stacks, tmp_path / "stopped", "unet3d", args, epochs=3, patch_size=[8, 32, 32]),
            cancel=token,
            on_epoch=lambda r: token.cancel(),
        )
    resumed = train(config(stacks, tmp_path / "stopped", "unet3d", args, epochs=3, patch_size=[8, 32, 32]))
    for a, b in zip(metrics(resumed), metrics(straight), strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["val_dice"] == pytest.approx(b["val_dice"], rel=1e-5) or (
            math.isnan(a["val_dice"]) and math.isnan(b["val_dice"])
        )


# --------------------------------------------------------------------------------------------
# evaluation


@pytest.fixture(scope="module")
def unet_run(stacks: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    args = {"channels": [8, 16, 32, 64]}
    run_dir = tmp_path_factory.mktemp("unet") / "run"
    return train(config(stacks, run_dir, "unet3d", args, epochs=12, patch_size=[8, 32, 32], lr=1e-2))


def test_evaluating_a_segmentation_card_measures_dice_and_lesions_found(
    stacks: Path, unet_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from scipy import ndimage

    from inference.cli.main import main
    from inference.training.evaluate import evaluate

    out = tmp_path / "report"
    m = evaluate(unet_run / "card.toml", stacks, "test", out, device="cpu")
    truth_lesions = sum(ndimage.label(stack_volumes()[s][1])[1] for s in (5, 6))
    assert m["n_stacks"] == 2 and m["n_slices"] == 2 * SLICES and m["lesions"] == truth_lesions
    assert m["dice"] >= 0.5 and m["lesion_sensitivity"] >= 0.5 and m["slice_sensitivity"] >= 0.5
    assert [s["dice"] is None for s in m["stacks"]] == [False, True]  # stack 6 has no lesion
    assert m["stacks"][1]["lesions"] == 0
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["dice"] == pytest.approx(m["dice"]) and saved["model"]["task"] == "segmentation"
    page = (out / "report.html").read_text()
    assert "not for clinical use" in page and "lesion sensitivity" in page
    assert (out / "examples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    assert main(["evaluate", "--model", str(unet_run), "--dataset", str(stacks), "--out", str(tmp_path / "cli")]) == 0
    printed = capsys.readouterr().out
    assert "Dice" in printed and f"lesions found {m['lesions_found']} of {truth_lesions}" in printed


def test_evaluating_a_stack_classifier_on_windows_or_whole_stacks(stacks: Path, tmp_path: Path) -> None:
    from inference.training.evaluate import evaluate

    run_dir = train(config(stacks, tmp_path / "rnn", "cnn-rnn", {"channels": [8, 16, 32]}, sequence_length=8))
    windows = evaluate(run_dir / "card.toml", stacks, "test", tmp_path / "w", device="cpu", window=8)
    assert windows["n_stacks"] == 2 * 3 and windows["window_slices"] == 8  # 24 slices: 3 windows a stack
    ds = read_dataset(stacks)
    test_rows = ds.split_indices("test")
    runs = contiguous_runs(ds, test_rows)
    want = [int(np.asarray(ds.labels)[window_rows(runs, w)].max()) for w in tiling_windows(runs, 8)]
    assert windows["n_positive"] == sum(want) and 0.0 <= windows["auc"] <= 1.0
    whole = evaluate(run_dir / "card.toml", stacks, "test", None, device="cpu")
    assert whole["n_stacks"] == 2 and whole["n_positive"] == 1 and whole["n_negative"] == 1
    assert "report.html" in (tmp_path / "w" / "report.html").name and (tmp_path / "w" / "metrics.json").is_file()
