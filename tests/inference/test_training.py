"""``train``: a tiny CNN on a synthetic dataset; run folder, card, resume, NaN guard, config errors."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from inference.errors import OperationCancelled
from inference.progress import CancelToken
from inference.training.augment import AugmentParams, augment_batch
from inference.training.config import TrainingConfigError, dumps_toml, load_config, parse_config
from inference.training.dataset_format import DatasetError, write_dataset
from inference.training.train import CHECKPOINT, TrainingError, load_checkpoint, lr_factor, train

WINDOW = [-600.0, 1500.0]
SPLITS = ("train", "train", "val", "val", "test", "test")  # two sources (patients) per split
NO_AUGMENT = {"flip": False, "rotate_deg": 0.0, "scale": 0.0, "intensity": 0.0}


def make_dataset(
    root: Path, *, size: int = 64, per_source: int = 24, seed: int = 0, context: int = 0, dtype: Any = np.uint8
) -> Path:
    """Noise slices; every second one has a bright blob (label 1) with its disc as the mask."""
    rng = np.random.default_rng(seed)
    channels = 2 * context + 1
    yy, xx = np.mgrid[:size, :size]
    images, labels, masks, sources, ks = [], [], [], [], []
    for s in range(len(SPLITS)):
        for k in range(per_source):
            img = rng.normal(70, 12, (size, size))
            mask = np.zeros((size, size), np.uint8)
            label = k % 2
            if label:
                r = rng.uniform(4, 7)
                cy, cx = rng.uniform(12, size - 12, 2)
                d2 = (yy - cy) ** 2 + (xx - cx) ** 2
                img += 110 * np.exp(-d2 / (2 * (0.7 * r) ** 2))
                mask = (d2 <= r * r).astype(np.uint8)
            img = np.clip(img, 0, 255).astype(np.uint8)
            images.append(np.repeat(img[None], channels, axis=0).astype(dtype))
            labels.append(label)
            masks.append(mask)
            sources.append(s)
            ks.append(k)
    manifest: dict[str, Any] = {
        "sources": [{"id": f"patient-{i}", "split": sp} for i, sp in enumerate(SPLITS)],
        # the layout `radlens dataset build` writes
        "preprocessing": {"window": {"center": WINDOW[0], "width": WINDOW[1]}, "context_slices": context},
    }
    arrays = {
        "images": np.stack(images),
        "labels": np.array(labels, np.uint8),
        "masks": np.stack(masks),
        "sources": np.array(sources, np.int32),
        "slice_index": np.array(ks, np.int32),
    }
    return write_dataset(root, manifest, arrays)


def config_dict(dataset: Path, run_dir: Path, **train: Any) -> dict[str, Any]:
    return {
        "data": {"dataset": str(dataset)},
        "model": {"architecture": "cnn", "args": {"channels": [8, 16, 32], "dropout": 0.0}},
        "train": {
            "epochs": 4,
            "batch_size": 16,
            "lr": 1e-2,
            "schedule": "cosine",
            "early_stopping_patience": 0,
            "num_threads": 1,
            "seed": 3,
            **train,
        },
        "augment": {"flip": True, "rotate_deg": 0.0, "scale": 0.0, "intensity": 0.0},
        "card": {"name": "tiny-nodule", "version": "0.0.1", "modality": "CT", "licence": "Apache-2.0"},
        "output": {"run_dir": str(run_dir)},
    }


def make_config(dataset: Path, run_dir: Path, **train: Any) -> Any:
    return parse_config(config_dict(dataset, run_dir, **train))


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "blobs")


@pytest.fixture(scope="module")
def trained(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    messages: list[tuple[float, str]] = []
    train(make_config(dataset, run_dir, epochs=8), on_progress=lambda f, m: messages.append((f, m)))
    assert messages[-1][0] == 1.0 and "best validation AUC" in messages[-1][1]
    assert any("loss" in m and "AUC" in m for _, m in messages)
    fractions = [f for f, _ in messages]
    assert fractions == sorted(fractions)
    return run_dir


# --------------------------------------------------------------------------------------------
# a full run


def test_loss_falls_and_the_run_folder_is_complete(trained: Path) -> None:
    names = {p.name for p in trained.iterdir()}
    assert {"config.toml", "metrics.jsonl", "best.safetensors", "card.toml", CHECKPOINT} <= names
    assert not [n for n in names if ".tmp-" in n]
    records = read_metrics(trained)
    assert [r["epoch"] for r in records] == list(range(1, 9))
    keys = {"train_loss", "val_loss", "val_auc", "val_f1", "val_accuracy", "lr", "seconds"}
    assert all(keys <= set(r) for r in records)
    assert records[-1]["train_loss"] < 0.7 * records[0]["train_loss"]
    assert max(r["val_auc"] for r in records) > 0.95
    assert records[-1]["lr"] < records[0]["lr"]  # cosine schedule
    # the copied config is complete and parses back to the same config
    again = load_config(trained / "config.toml")
    assert again.to_dict() == load_config(trained / "config.toml").to_dict()
    assert again.train.epochs == 8 and again.model.architecture == "cnn"
    state = load_checkpoint(trained / CHECKPOINT)  # weights_only=True
    assert state["epoch"] == 8 and state["finished"] and len(state["history"]) == 8


def test_card_loads_registers_and_runs(trained: Path, dataset: Path) -> None:
    from inference.engine.run import run
    from inference.models.card import Explanation, Normalise, Task, load_card
    from inference.models.registry import discover
    from inference.models.safe_load import load_network, sha256_of
    from inference.training.dataset_format import read_dataset
    from inference.volume import Volume

    card = load_card(trained / "card.toml")
    assert card.task == Task.SLICE_CLASSIFICATION and card.architecture == "cnn"
    assert card.sha256 == sha256_of(trained / "best.safetensors")
    assert card.input.size == (64, 64) and card.input.context_slices == 0
    assert card.input.window == tuple(WINDOW) and card.input.normalise == Normalise.WINDOW
    assert card.explanation == Explanation.GRADCAM and card.labels[0].name == "nodule"
    assert card.modality == ("CT",) and card.not_for_clinical_use
    net = load_network(card)
    assert not net.training

    reg = discover([trained], include_user=False)
    assert reg.get("tiny-nodule").path == card.path

    # the engine runs it on a volume in Hounsfield units; the card's window reproduces the data
    ds = read_dataset(dataset)
    rows = ds.split_indices("test")[:8]
    lo = WINDOW[0] - WINDOW[1] / 2
    hu = (lo + ds.images[rows, 0].astype(np.float32) / 255.0 * WINDOW[1]).astype(np.int16)
    result = run(card, Volume(hu, (0.7, 0.7, 2.0), (0.0, 0.0, 0.0), np.eye(3)), device="cpu")
    assert result.slice_probabilities is not None
    labels = ds.labels[rows].astype(bool)
    probs = result.slice_probabilities
    assert probs[labels].min() > probs[~labels].max()

    # The card's training statistics (from the dataset's windowed slices) match what the engine
    # computes on the same slices in Hounsfield units; an MR-like volume is far from them.
    from inference.engine.input_statistics import model_input_quantiles, ood_score

    stats = card.domain.intensity
    assert stats is not None and stats.inputs >= 1 and card.domain.dimensionality == "slices"
    assert ood_score(model_input_quantiles(hu, card.input), stats) < stats.threshold
    mr_like = np.random.default_rng(0).uniform(0, 400, size=hu.shape).astype(np.int16)
    assert ood_score(model_input_quantiles(mr_like, card.input), stats) > stats.threshold
    # and its network features, taken as the engine takes them
    from inference.engine.feature_statistics import feature_score, pooled_features

    features = card.domain.features
    assert features is not None and len(features.mean) == len(features.spread) and features.inputs >= 2
    volume = Volume(hu, (0.7, 0.7, 2.0), (0.0, 0.0, 0.0), np.eye(3))
    assert np.isfinite(feature_score(pooled_features(net, volume, card.input), features))


def test_class_weighting_and_schedules() -> None:
    assert lr_factor(0, 10, 5, 1, "cosine") == pytest.approx(0.1)  # warm-up
    assert lr_factor(9, 10, 5, 1, "cosine") == pytest.approx(1.0)
    assert lr_factor(10, 10, 5, 1, "cosine") == pytest.approx(1.0)
    assert lr_factor(30, 10, 5, 1, "cosine") == pytest.approx(0.5)  # half-way after warm-up
    assert lr_factor(50, 10, 5, 1, "cosine") == pytest.approx(0.0)
    assert [lr_factor(s, 10, 4, 0, "step") for s in (0, 19, 20, 30, 39)] == pytest.approx([1, 1, 0.1, 0.01, 0.01])
    assert lr_factor(25, 10, 4, 0, "none") == 1.0


# --------------------------------------------------------------------------------------------
# interruption and resumption


def test_cancel_after_an_epoch_then_resume_finishes_without_redoing_epochs(dataset: Path, tmp_path: Path) -> None:
    reference = train(make_config(dataset, tmp_path / "straight", epochs=4))

    run_dir = tmp_path / "interrupted"
    token = CancelToken()

    def stop_after_two(record: dict[str, Any]) -> None:
        if record["epoch"] == 2:
            token.cancel()

    with pytest.raises(OperationCancelled):
        train(make_config(dataset, run_dir, epochs=4), cancel=token, on_epoch=stop_after_two)
    assert [r["epoch"] for r in read_metrics(run_dir)] == [1, 2]
    assert not (run_dir / "card.toml").exists()
    assert load_checkpoint(run_dir / CHECKPOINT)["epoch"] == 2

    # without resume the folder is refused, with a hint
    with pytest.raises(TrainingError, match="--resume"):
        train(make_config(dataset, run_dir, epochs=4), resume=False)
    # a different config cannot continue this run
    with pytest.raises(TrainingError, match=r"train\.lr"):
        train(make_config(dataset, run_dir, epochs=4, lr=5e-3))

    resumed_epochs: list[int] = []
    messages: list[str] = []
    train(
        make_config(dataset, run_dir, epochs=4),
        on_epoch=lambda r: resumed_epochs.append(r["epoch"]),
        on_progress=lambda f, m: messages.append(m),
    )
    assert resumed_epochs == [3, 4]
    assert messages[0] == "resuming after epoch 2/4"
    assert not any(m.startswith(("epoch 1/", "epoch 2/")) for m in messages)
    got, want = read_metrics(run_dir), read_metrics(reference)
    assert [r["epoch"] for r in got] == [1, 2, 3, 4]
    for a, b in zip(got, want, strict=True):  # the same numbers as the uninterrupted run
        for key in ("train_loss", "val_loss", "val_auc", "lr"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7), (a["epoch"], key)
    assert (run_dir / "card.toml").is_file()

    # a finished run is not trained again
    again: list[int] = []
    train(make_config(dataset, run_dir, epochs=4), on_epoch=lambda r: again.append(r["epoch"]))
    assert again == []


def test_crash_mid_epoch_keeps_the_finished_epochs(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "crash"
    calls = {"n": 0}
    real = augment_batch

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 5:  # second batch of epoch 2 (3 batches per epoch)
            raise RuntimeError("power cut")
        return real(*args, **kwargs)

    monkeypatch.setattr("inference.training.augment.augment_batch", flaky)
    with pytest.raises(RuntimeError, match="power cut"):
        train(make_config(dataset, run_dir, epochs=3))
    monkeypatch.undo()
    assert [r["epoch"] for r in read_metrics(run_dir)] == [1]
    epochs: list[int] = []
    train(make_config(dataset, run_dir, epochs=3), on_epoch=lambda r: epochs.append(r["epoch"]))
    assert epochs == [2, 3]


# --------------------------------------------------------------------------------------------
# bad data


def test_a_moving_average_of_the_weights_is_what_is_validated_kept_and_resumed(dataset: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    plain = train(make_config(dataset, tmp_path / "plain", epochs=3))
    averaged = train(make_config(dataset, tmp_path / "ema", epochs=3, ema_decay=0.9))
    state = load_checkpoint(averaged / CHECKPOINT)
    assert int(state["ema"]["n_averaged"]) == 3 * 3  # one update per step: 3 batches an epoch
    kept = load_file(averaged / "best.safetensors")
    best = int(state["best_epoch"])
    # What was kept is the average (the last epoch's), not the weights of the last step.
    if best == 3:
        for key, value in kept.items():
            torch.testing.assert_close(value, state["ema"][f"module.{key}"])
    assert any(not torch.equal(v, state["model"][k]) for k, v in kept.items() if v.is_floating_point())
    assert read_metrics(plain)[0]["val_loss"] != read_metrics(averaged)[0]["val_loss"]
    assert "ema_decay = 0.9" in (averaged / "config.toml").read_text()

    # Stopped after epoch 1 and resumed: the same numbers as the uninterrupted run.
    token = CancelToken()
    resumed = tmp_path / "ema-resumed"

    def stop(record: dict[str, Any]) -> None:
        token.cancel()

    with pytest.raises(OperationCancelled):
        train(make_config(dataset, resumed, epochs=3, ema_decay=0.9), cancel=token, on_epoch=stop)
    train(make_config(dataset, resumed, epochs=3, ema_decay=0.9))
    for a, b in zip(read_metrics(resumed), read_metrics(averaged), strict=True):
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5), a["epoch"]
    with pytest.raises(TrainingConfigError, match="ema_decay"):
        make_config(dataset, tmp_path / "bad", ema_decay=1.0)


def test_the_moving_average_warms_up_then_keeps_its_decay() -> None:
    """After n updates the average moves by 1 - min(decay, (1 + n) / (10 + n)) towards the weights."""
    from inference.training.train import weight_average

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    assert weight_average(model, 0.0) is None
    ema = weight_average(model, 0.99)
    kept = []
    for step in range(2000):
        with torch.no_grad():
            model[0].weight.fill_(float(step))
            model[1].running_mean.fill_(float(step))
        model[1].num_batches_tracked.fill_(step)
        ema.update_parameters(model)
        kept.append(float(ema.module[0].weight.detach()[0, 0, 0, 0]))
    assert kept[0] == 0.0  # the first update copies
    assert kept[1] == pytest.approx(1.0 - 2.0 / 11.0, abs=1e-6)  # n = 1: moves by 1 - 2/11 of the way
    want = 0.0
    for n in range(1, 2000):
        want += (1.0 - min(0.99, (1.0 + n) / (10.0 + n))) * (n - want)
    assert kept[-1] == pytest.approx(want, rel=1e-5)
    assert 1999 - kept[-1] == pytest.approx(99.0, rel=0.02)  # then the lag of a decay of 0.99: 99 steps
    assert float(ema.module[1].running_mean[0]) == pytest.approx(kept[-1], rel=1e-5)  # buffers averaged too
    assert int(ema.module[1].num_batches_tracked) == 1999  # counters are the latest


def test_a_run_from_before_a_setting_existed_resumes_at_its_default(dataset: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "old"
    token = CancelToken()
    with pytest.raises(OperationCancelled):
        train(make_config(dataset, run_dir, epochs=2), cancel=token, on_epoch=lambda r: token.cancel())
    state = load_checkpoint(run_dir / CHECKPOINT)
    for key in ("ema_decay", "attention_target"):  # what a checkpoint written before them holds
        del state["fingerprint"]["train"][key]
    torch.save(state, run_dir / CHECKPOINT)
    with pytest.raises(TrainingError, match=r"train\.ema_decay: None → 0\.5"):
        train(make_config(dataset, run_dir, epochs=2, ema_decay=0.5))
    epochs: list[int] = []
    train(make_config(dataset, run_dir, epochs=2), on_epoch=lambda r: epochs.append(r["epoch"]))
    assert epochs == [2]


def test_nan_inputs_are_refused_naming_the_samples(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "nan", per_source=8, dtype=np.float32)
    images = np.load(ds / "images.npy")
    images[3, 0, 10, 10] = np.nan
    np.save(ds / "images.npy", images)
    with pytest.raises(TrainingError, match=r"NaN or inf.*sample\(s\) 3 .*epoch 1"):
        train(make_config(ds, tmp_path / "run", epochs=1))


def test_nan_loss_is_refused_naming_the_batch(dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def nan_loss(self: Any, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return logits.sum() * float("nan")

    monkeypatch.setattr(torch.nn.BCEWithLogitsLoss, "forward", nan_loss)
    with pytest.raises(TrainingError, match=r"loss became nan at batch 1 of epoch 1 \(dataset samples \d+"):
        train(make_config(dataset, tmp_path / "run", epochs=1))


def test_dataset_problems_are_clear(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a RadLens dataset"):
        train(make_config(tmp_path / "missing", tmp_path / "run"))
    ds = make_dataset(tmp_path / "onesided", per_source=4)
    labels = np.load(ds / "labels.npy")
    sources = np.load(ds / "sources.npy")
    labels[sources < 2] = 0  # no positives in the train split
    np.save(ds / "labels.npy", labels)
    with pytest.raises(DatasetError, match="train split has no positive slices"):
        train(make_config(ds, tmp_path / "run"))
    manifest = json.loads((ds / "manifest.json").read_text())
    del manifest["preprocessing"]["window"]
    (ds / "manifest.json").write_text(json.dumps(manifest))
    np.save(ds / "labels.npy", np.arange(labels.size) % 2)
    with pytest.raises(DatasetError, match=r"no window \[centre, width\]"):
        train(make_config(ds, tmp_path / "run"))


def test_context_channels_reach_the_card(tmp_path: Path) -> None:
    from inference.models.card import load_card

    ds = make_dataset(tmp_path / "ctx", per_source=4, size=32, context=1)
    manifest = json.loads((ds / "manifest.json").read_text())
    manifest.update(window=[40.0, 400.0], context_slices=1)  # the top-level layout is read too, first
    (ds / "manifest.json").write_text(json.dumps(manifest))
    run_dir = train(make_config(ds, tmp_path / "run", epochs=1, batch_size=8))
    card = load_card(run_dir / "card.toml")
    assert card.input.context_slices == 1 and card.architecture_args["in_channels"] == 3
    assert card.input.window == (40.0, 400.0) and card.input.size == (32, 32)
    with pytest.raises(TrainingConfigError, match="in_channels = 1 but the dataset's slices have 3"):
        cfg = config_dict(ds, tmp_path / "run2")
        cfg["model"]["args"]["in_channels"] = 1
        train(parse_config(cfg))


# --------------------------------------------------------------------------------------------
# config


def test_config_errors_name_the_key_and_suggest(tmp_path: Path) -> None:
    base = config_dict(tmp_path / "ds", tmp_path / "run")

    def bad(section: str, key: str, value: Any) -> dict[str, Any]:
        cfg = json.loads(json.dumps(base))
        cfg[section][key] = value
        return cfg

    with pytest.raises(TrainingConfigError, match=r"'epoch' \(did you mean 'epochs'\?\)"):
        parse_config(bad("train", "epoch", 3))
    with pytest.raises(TrainingConfigError, match=r"'augmnt' \(did you mean 'augment'\?\)"):
        parse_config({**base, "augmnt": {}})
    with pytest.raises(TrainingConfigError, match=r"schedule = 'cosin' .*did you mean 'cosine'"):
        parse_config(bad("train", "schedule", "cosin"))
    with pytest.raises(TrainingConfigError, match=r"did you mean 'cnn-attention'"):
        parse_config(bad("model", "architecture", "cnn-atention"))
    assert parse_config(bad("model", "architecture", "unet3d")).card.explanation == "none"  # every one trains
    with pytest.raises(TrainingConfigError, match=r"train.batch_size must be at least 1"):
        parse_config(bad("train", "batch_size", 0))
    with pytest.raises(TrainingConfigError, match=r"train.amp must be true or false"):
        parse_config(bad("train", "amp", "yes"))
    with pytest.raises(TrainingConfigError, match=r"augment.rotate_deg"):
        parse_config(bad("augment", "rotate_deg", "ten"))
    with pytest.raises(TrainingConfigError, match="missing section \\[data\\]"):
        parse_config({"output": base["output"]})
    with pytest.raises(TrainingConfigError, match="'attention' needs architecture 'cnn-attention'"):
        parse_config(bad("card", "explanation", "attention"))
    with pytest.raises(TrainingConfigError, match=r"model.args: .*unexpected keyword"):
        from inference.training.train import build_network

        cfg = bad("model", "args", {"chanels": [8]})
        build_network(parse_config(cfg), {"chanels": [8]})


def test_config_file_round_trip_and_relative_paths(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "train.toml"
    path.parent.mkdir()
    path.write_text(
        '[data]\ndataset = "../data/blobs"\n[model]\narchitecture = "cnn-attention"\n'
        '[train]\nepochs = 2\n[output]\nrun_dir = "runs/a"\n[card]\nname = "x \\"quoted\\""\n'
    )
    cfg = load_config(path)
    assert cfg.data.dataset == (tmp_path / "data" / "blobs").resolve()
    assert cfg.output.run_dir == (tmp_path / "cfg" / "runs" / "a").resolve()
    assert cfg.train.schedule == "cosine" and cfg.augment.flip
    copy = tmp_path / "copy.toml"
    copy.write_text(dumps_toml(cfg.to_dict()))
    assert load_config(copy).to_dict() == cfg.to_dict()
    path.write_text("[data\n")
    with pytest.raises(TrainingConfigError, match="not valid TOML"):
        load_config(path)
    with pytest.raises(TrainingConfigError, match="cannot read"):
        load_config(tmp_path / "nope.toml")


# --------------------------------------------------------------------------------------------
# augmentation


def test_augmentation_is_seeded_and_moves_masks_with_images() -> None:
    x = torch.zeros(6, 2, 32, 32)
    masks = torch.zeros(6, 32, 32, dtype=torch.uint8)
    x[:, :, 5:11, 20:26] = 1.0
    masks[:, 5:11, 20:26] = 1
    params = AugmentParams(flip=True, rotate_deg=20.0, scale=0.15, intensity=0.0)
    a1, m1 = augment_batch(x, masks, params, torch.Generator().manual_seed(1))
    a2, m2 = augment_batch(x, masks, params, torch.Generator().manual_seed(1))
    a3, _ = augment_batch(x, masks, params, torch.Generator().manual_seed(2))
    assert m1 is not None and m2 is not None
    assert torch.equal(a1, a2) and torch.equal(m1, m2) and not torch.equal(a1, a3)
    assert m1.dtype == torch.uint8 and torch.equal(x[:, :, 5:11, 20:26], torch.ones(6, 2, 6, 6))  # input untouched
    for img, m in zip(a1, m1, strict=True):
        inside = img[0][m.bool()]
        assert inside.numel() > 0 and float(inside.mean()) > 0.8  # the mask still covers the blob
        assert float(img[0][~m.bool()].mean()) < 0.05
    flipped = sum(int(m[:, :16].sum() > m[:, 16:].sum()) for m in m1)
    assert 0 < flipped < 6  # some flipped to the left half, some not


def test_augmentation_identity_and_intensity_range() -> None:
    x = torch.rand(4, 1, 16, 16)
    same, none = augment_batch(x, None, AugmentParams(False, 0.0, 0.0, 0.0), torch.Generator().manual_seed(0))
    assert torch.equal(same, x) and none is None
    jittered, _ = augment_batch(x, None, AugmentParams(False, 0.0, 0.0, 0.5), torch.Generator().manual_seed(0))
    assert float(jittered.min()) >= 0.0 and float(jittered.max()) <= 1.0 and not torch.equal(jittered, x)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        augment_batch(x[0], None, AugmentParams(), torch.Generator())


def test_augmentation_noise_is_seeded_and_leaves_the_other_draws_alone() -> None:
    x = torch.full((8, 1, 32, 32), 0.5)
    geo = AugmentParams(flip=True, rotate_deg=10.0, scale=0.1, intensity=0.2)
    plain, _ = augment_batch(x, None, geo, torch.Generator().manual_seed(3))
    noisy, _ = augment_batch(x, None, AugmentParams(True, 10.0, 0.1, 0.2, noise=0.1), torch.Generator().manual_seed(3))
    again, _ = augment_batch(x, None, AugmentParams(True, 10.0, 0.1, 0.2, noise=0.1), torch.Generator().manual_seed(3))
    assert torch.equal(noisy, again) and not torch.equal(noisy, plain)
    residual = (noisy - plain)[:, :, 8:24, 8:24]  # away from the zero padding of rotations
    sds = residual.flatten(1).std(dim=1)
    assert float(sds.max()) <= 0.1 * 1.1 and float(sds.max()) > 0.01  # SD uniform in [0, 0.1] per sample
    assert float(noisy.min()) >= 0.0 and float(noisy.max()) <= 1.0


def test_deterministic_settings_are_restored(dataset: Path, tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    train(make_config(dataset, tmp_path / "run", epochs=1, num_threads=1))
    assert torch.get_num_threads() == threads and torch.are_deterministic_algorithms_enabled() == det
    assert math.isfinite(read_metrics(tmp_path / "run")[0]["train_loss"])


def test_attention_guidance_loss_values_and_gradient() -> None:
    from inference.models.architectures import build_model
    from inference.training.losses import attention_guidance_loss

    torch.manual_seed(0)
    model = build_model("cnn-attention", channels=[8, 16, 32], pooling="attention", fused_channels=16)
    x = torch.rand(3, 1, 32, 32)
    masks = torch.zeros(3, 32, 32, dtype=torch.uint8)
    masks[0, 4:8, 4:8] = 1  # one attention cell (8×8 grid: 4 px per cell)
    masks[2, 16:24, 16:24] = 1  # a negative's mask is ignored
    labels = torch.tensor([1.0, 1.0, 0.0])  # slice 1: positive but its lesion left the image
    model(x)
    loss = attention_guidance_loss(model, masks, labels)
    weights = model.attention_weights
    assert weights is not None and weights.shape == (3, 8, 8)
    torch.testing.assert_close(loss, -torch.log(weights[0, 1, 1]))
    loss.backward()
    assert model.pool.key.weight.grad is not None and float(model.pool.key.weight.grad.abs().sum()) > 0
    model(x)
    zero = attention_guidance_loss(model, masks, torch.zeros(3))
    assert float(zero.detach()) == 0.0
    with pytest.raises(TrainingError, match="attention pooling"):
        attention_guidance_loss(build_model("cnn-attention"), masks, labels)


def test_attention_guidance_on_the_finer_grid() -> None:
    """With ``pool_scale=2`` the attention and its target are on a grid at 1/2 of the input (2-pixel cells)."""
    from inference.models.architectures import build_model
    from inference.training.losses import attention_guidance_loss

    torch.manual_seed(0)
    model = build_model("cnn-attention", channels=[8, 16, 32], pooling="attention", fused_channels=8, pool_scale=2)
    x = torch.rand(1, 1, 32, 32)
    masks = torch.zeros(1, 32, 32, dtype=torch.uint8)
    masks[0, 6:8, 10:13] = 1  # fills cell (3, 5), half of cell (3, 6)
    model(x)
    weights = model.attention_weights
    assert weights is not None and weights.shape == (1, 16, 16)
    touch = attention_guidance_loss(model, masks, torch.ones(1), "touch")
    torch.testing.assert_close(touch, -torch.log(weights[0, 3, 5] + weights[0, 3, 6]))
    coverage = attention_guidance_loss(model, masks, torch.ones(1), "coverage")
    want = -(2 / 3 * torch.log(weights[0, 3, 5]) + 1 / 3 * torch.log(weights[0, 3, 6]))
    torch.testing.assert_close(coverage, want)


def test_the_coverage_target_asks_for_the_attention_where_the_lesion_fills_the_cells() -> None:
    from inference.models.architectures import build_model
    from inference.training.losses import attention_guidance_loss

    torch.manual_seed(0)
    model = build_model("cnn-attention", channels=[8, 16, 32], pooling="attention", fused_channels=16)
    x = torch.rand(2, 1, 32, 32)
    masks = torch.zeros(2, 32, 32, dtype=torch.uint8)
    masks[0, 4:8, 4:8] = 1  # fills cell (1, 1)
    masks[0, 8:9, 4:8] = 1  # and a quarter of cell (2, 1): shares 4/5 and 1/5
    labels = torch.tensor([1.0, 1.0])  # slice 1 has no lesion left in its mask
    model(x)
    weights = model.attention_weights
    assert weights is not None
    loss = attention_guidance_loss(model, masks, labels, "coverage")
    want = -(0.8 * torch.log(weights[0, 1, 1]) + 0.2 * torch.log(weights[0, 2, 1]))
    torch.testing.assert_close(loss, want)
    # "touch" is content with any split between the two cells; "coverage" is not.
    touch = attention_guidance_loss(model, masks, labels, "touch")
    torch.testing.assert_close(touch, -torch.log(weights[0, 1, 1] + weights[0, 2, 1]))
    loss.backward()
    assert model.pool.key.weight.grad is not None and float(model.pool.key.weight.grad.abs().sum()) > 0
    model(x)
    assert float(attention_guidance_loss(model, masks, torch.zeros(2), "coverage").detach()) == 0.0


def test_the_coverage_target_puts_the_peak_inside_small_lesions() -> None:
    """Lesions that spill a pixel into the next cell: trained on "coverage", the attention's peak
    ends in the cell the lesion fills, not in the one it grazes."""
    from inference.models.architectures import build_model
    from inference.training.losses import attention_guidance_loss

    torch.manual_seed(2)
    model = build_model("cnn-attention", channels=[8, 16, 32], pooling="attention", fused_channels=16).eval()
    x = torch.rand(4, 1, 32, 32)
    masks = torch.zeros(4, 32, 32, dtype=torch.uint8)
    for n, (r, c) in enumerate([(4, 4), (20, 8), (8, 24), (24, 24)]):
        masks[n, r : r + 5, c : c + 4] = 1  # cell (r/4, c/4), and its edge one row into the cell below,
        x[n, :, r : r + 4, c : c + 4] += 1.0
        x[n, :, r + 4, c : c + 4] += 3.0  # where it shows most
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):
        model(x)
        loss = attention_guidance_loss(model, masks, torch.ones(4), "coverage")
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        model(x)
    attention = model.last_attention
    assert attention is not None
    peaks = [divmod(int(a.argmax()), 8) for a in attention]
    assert peaks == [(1, 1), (5, 2), (2, 6), (6, 6)]


def test_attention_loss_moves_the_attention_onto_the_lesions() -> None:
    """A few optimiser steps on the mask-guided loss alone put most of the attention on the lesions."""
    import torch.nn.functional as F

    from inference.models.architectures import build_model
    from inference.training.losses import attention_guidance_loss

    torch.manual_seed(1)
    model = build_model("cnn-attention", channels=[8, 16, 32], pooling="attention", fused_channels=16).eval()
    x = torch.rand(4, 1, 32, 32)
    masks = torch.zeros(4, 32, 32, dtype=torch.uint8)
    for n, (r, c) in enumerate([(4, 4), (20, 8), (8, 24), (24, 24)]):
        masks[n, r : r + 4, c : c + 4] = 1
        x[n, :, r : r + 4, c : c + 4] += 1.0  # something to see there
    labels = torch.ones(4)
    grid = F.adaptive_max_pool2d(masks[:, None].float(), (8, 8))[:, 0] > 0

    def inside() -> float:
        with torch.no_grad():
            model(x)
        return float((model.last_attention * grid).flatten(1).sum(1).mean())  # type: ignore[operator]

    before = inside()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):
        model(x)
        loss = attention_guidance_loss(model, masks, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert before < 0.1 and inside() > 0.6, (before, inside())


def test_training_with_the_attention_loss_points_at_the_lesions(dataset: Path, tmp_path: Path) -> None:
    from inference.models.card import load_card
    from inference.models.explain import attention_map
    from inference.models.safe_load import load_network
    from inference.training.dataset_format import read_dataset
    from inference.training.metrics import pointing_game

    cfg = config_dict(dataset, tmp_path / "guided", epochs=4, attention_loss=1.0)
    cfg["model"] = {"architecture": "cnn-attention", "args": {"channels": [8, 16, 32], "pooling": "attention"}}
    cfg["card"]["threshold"] = "auto"
    run_dir = train(parse_config(cfg))
    card = load_card(run_dir / "card.toml")
    assert card.architecture_args["pooling"] == "attention"
    # "auto": the F1-optimal threshold on the validation split, recorded in the card and its description.
    assert "F1-optimal" in card.description and 0.0 < card.threshold < 1.0
    assert 'threshold = "auto"' in (run_dir / "config.toml").read_text()
    net = load_network(card, "cpu").eval()
    ds = read_dataset(dataset)
    test = ds.split_indices("test")
    pos = test[np.asarray(ds.labels)[test] == 1]
    x = torch.from_numpy(np.asarray(ds.images[pos])).float() / 255
    assert pointing_game(attention_map(net, x), np.asarray(ds.masks[pos])) >= 0.9
    with pytest.raises(TrainingConfigError, match="attention_loss"):
        parse_config(config_dict(dataset, tmp_path / "bad", attention_loss=-1.0))
