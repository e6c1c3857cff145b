"""``evaluate`` and the ``train`` / ``evaluate`` commands on a tiny synthetic dataset."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.cli.main import main
from inference.training.dataset_format import read_dataset
from inference.training.evaluate import EvaluationError, evaluate
from inference.training.report import REPORT_FILES
from inference.training.train import train

from .test_training import make_config, make_dataset

PNG = b"\x89PNG\r\n\x1a\n"


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "blobs", seed=5)


@pytest.fixture(scope="module")
def run_dir(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(make_config(dataset, tmp_path_factory.mktemp("runs") / "tiny", epochs=8))


def test_evaluate_writes_the_report_with_sane_values(run_dir: Path, dataset: Path, tmp_path: Path) -> None:
    before = tree_digest(dataset)
    out = tmp_path / "eval"
    messages: list[tuple[float, str]] = []
    m = evaluate(run_dir, dataset, "test", out, on_progress=lambda f, msg: messages.append((f, msg)))
    assert tree_digest(dataset) == before  # the dataset folder is only read

    assert sorted(p.name for p in out.iterdir()) == sorted(REPORT_FILES)
    for name in ("roc.png", "calibration.png", "examples.png"):
        assert (out / name).read_bytes()[:8] == PNG
    page = (out / "report.html").read_text()
    assert all(f'src="{n}"' in page for n in ("roc.png", "calibration.png", "examples.png"))
    assert "not for clinical use" in page and "pointing game" in page

    saved = json.loads((out / "metrics.json").read_text())  # strict JSON: no NaN tokens
    ds = read_dataset(dataset)
    test_rows = ds.split_indices("test")
    assert saved["n_slices"] == m["n_slices"] == test_rows.size
    assert saved["n_positive"] == int(ds.labels[test_rows].sum())
    assert m["auc"] > 0.9 and saved["auc"] == pytest.approx(m["auc"])
    for key in ("accuracy", "f1", "sensitivity", "specificity", "ece", "pointing_game", "map_dice"):
        assert 0.0 <= m[key] <= 1.0, key
    c = m["confusion"]
    assert c["tp"] + c["fp"] + c["tn"] + c["fn"] == test_rows.size
    assert m["pointing_game_n"] == m["n_positive"]  # every positive slice has a mask
    assert m["pointing_game"] >= 0.8  # Grad-CAM of the blob detector points at the blob
    assert m["throughput_slices_per_s"] > 0 and m["explain_slices_per_s"] > 0
    assert saved["roc"]["fpr"][0] == 0.0 and saved["roc"]["thresholds"][0] is None  # +inf → null
    assert sum(saved["calibration"]["counts"]) == test_rows.size
    assert messages[-1][0] == 1.0 and [f for f, _ in messages] == sorted(f for f, _ in messages)


def test_evaluate_without_explanations_and_on_another_split(run_dir: Path, dataset: Path) -> None:
    m = evaluate(run_dir / "card.toml", dataset, "val", explain=False)
    assert m["split"] == "val" and math.isnan(m["pointing_game"]) and m["pointing_game_n"] == 0
    assert math.isnan(m["map_dice"]) and "report" not in m


def test_evaluate_with_an_attention_model(dataset: Path, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from inference.models.architectures import build_model
    from inference.models.safe_load import sha256_of

    torch.manual_seed(0)
    net = build_model("cnn-attention", channels=(8, 16))
    save_file(net.state_dict(), str(tmp_path / "w.safetensors"))
    (tmp_path / "card.toml").write_text(
        f"""name = "attn"\nversion = "1"\ntask = "slice-classification"\narchitecture = "cnn-attention"
weights = "w.safetensors"\nweights_format = "safetensors"\nsha256 = "{sha256_of(tmp_path / "w.safetensors")}"
licence = "MIT"\nintended_use = "tests"\nexplanation = "attention"\narchitecture_args = {{ channels = [8, 16] }}
[input]\nsize = [48, 48]\nwindow = [-600, 1500]\nbatch_size = 7\n"""
    )
    m = evaluate(tmp_path, dataset, "test", tmp_path / "out")  # the card's size differs from the data's
    assert m["model"]["explanation"] == "attention" and m["batch_size"] == 7
    assert 0.0 <= m["pointing_game"] <= 1.0 and 0.0 <= m["auc"] <= 1.0
    assert (tmp_path / "out" / "examples.png").is_file()


def test_evaluate_refuses_what_it_cannot_do(run_dir: Path, dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(EvaluationError, match="inside the dataset folder"):
        evaluate(run_dir, dataset, "test", dataset / "eval")
    assert not (dataset / "eval").exists()
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / "checkpoint_last.pt").write_bytes(b"")
    with pytest.raises(EvaluationError, match="training has not finished"):
        evaluate(tmp_path / "unfinished", dataset)
    with pytest.raises(EvaluationError, match="no such card file"):
        evaluate(tmp_path / "nowhere" / "card.toml", dataset)
    ctx = make_dataset(tmp_path / "ctx", per_source=2, context=1)
    with pytest.raises(EvaluationError, match=r"takes 1 channel\(s\).*have 3"):
        evaluate(run_dir, ctx)


# --------------------------------------------------------------------------------------------
# the commands


def test_train_and_evaluate_commands(dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "train.toml"
    cfg.write_text(
        f'[data]\ndataset = "{dataset}"\n[model]\narchitecture = "cnn"\nargs = {{ channels = [8, 16] }}\n'
        "[train]\nepochs = 2\nbatch_size = 16\nlr = 0.01\nnum_threads = 1\n"
        '[card]\nname = "cli-model"\n[output]\nrun_dir = "run"\n'
    )
    assert main(["train", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "epoch   1/2" in out and "epoch   2/2" in out and "card.toml" in out
    assert (tmp_path / "run" / "card.toml").is_file()

    assert main(["train", str(cfg)]) == 1  # the run exists: refused without --resume
    assert "--resume" in capsys.readouterr().err
    assert main(["train", str(cfg), "--resume"]) == 0  # finished: nothing to redo
    assert "epoch" not in capsys.readouterr().out.split("run folder")[0]

    report = tmp_path / "report"
    code = main(["evaluate", "--model", str(tmp_path / "run"), "--dataset", str(dataset), "--out", str(report)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "AUC" in printed and "pointing game" in printed and "report.html" in printed
    assert (report / "metrics.json").is_file()

    bad = tmp_path / "bad.toml"
    bad.write_text(cfg.read_text().replace("epochs", "epoch"))
    assert main(["train", str(bad)]) == 1
    assert "did you mean 'epochs'" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(tmp_path / "run"), "--dataset", str(tmp_path / "x"), "--out", "o"]) == 1
    assert "not a RadLens dataset" in capsys.readouterr().err


def test_the_new_commands_are_listed_without_importing_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys\nfrom inference.cli.main import build_parser\n"
        "h = build_parser().format_help()\nassert 'train' in h and 'evaluate' in h\n"
        "assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules, 'heavy import'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_report_pages_handle_missing_values(tmp_path: Path) -> None:
    from inference.training.metrics import calibration_curve
    from inference.training.report import Example, write_report

    cal = calibration_curve([0, 1], [0.2, 0.9])
    ex = Example(0, np.zeros((8, 8), np.float32), np.zeros((8, 8), np.uint8), 0, 0.2, None)
    metrics = {"auc": math.nan, "threshold": 0.5, "confusion": {}, "model": {"name": "<b>x</b>"}}
    page = write_report(tmp_path, metrics, ([0.0, 1.0], [0.0, 1.0]), cal, [ex])
    text = page.read_text()
    assert "&lt;b&gt;x&lt;/b&gt;" in text and "<b>x</b>" not in text
    assert json.loads((tmp_path / "metrics.json").read_text())["auc"] is None
