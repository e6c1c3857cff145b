"""Model cards, discovery, and weights that load only when they are what the card says."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from inference.errors import ModelCardError, ModelLoadError
from inference.models.card import Task, load_card
from inference.models.registry import discover
from inference.models.safe_load import load_network, read_verified

CARD = """
name = "tiny"
version = "1.2.0"
task = "slice-classification"
modality = ["CT"]
architecture = "cnn"
weights = "{weights}"
weights_format = "{fmt}"
sha256 = "{sha}"
licence = "Apache-2.0"
intended_use = "tests"
explanation = "gradcam"
[input]
size = [64, 64]
window = [40, 400]
[[labels]]
value = 1
name = "lesion"
"""


def _write_card(folder: Path, weights: str, sha: str, fmt: str = "state-dict", name: str = "card.toml") -> Path:
    path = folder / name
    path.write_text(CARD.format(weights=weights, sha=sha, fmt=fmt))
    return path


def _state_dict_file(folder: Path) -> tuple[Path, str]:
    from inference.models.architectures import build_model

    torch.manual_seed(0)
    model = build_model("cnn")
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    path = folder / "tiny.pt"
    path.write_bytes(buf.getvalue())
    return path, hashlib.sha256(buf.getvalue()).hexdigest()


def test_card_parses_and_validates(tmp_path: Path) -> None:
    card = load_card(_write_card(tmp_path, "w.pt", "a" * 64))
    assert card.task == Task.SLICE_CLASSIFICATION and card.input.size == (64, 64) and card.accepts("ct")
    assert card.labels[0].name == "lesion"
    bad = tmp_path / "card_bad.toml"
    bad.write_text(CARD.format(weights="w.pt", sha="a" * 64, fmt="state-dict").replace("task =", "tsak ="))
    with pytest.raises(ModelCardError, match="did you mean 'task'"):
        load_card(bad)
    bad.write_text(CARD.format(weights="w.pt", sha="a" * 64, fmt="pickle"))
    with pytest.raises(ModelCardError, match="weights_format = 'pickle'"):
        load_card(bad)
    bad.write_text(CARD.format(weights="w.pt", sha="xyz", fmt="state-dict"))
    with pytest.raises(ModelCardError, match="64 hexadecimal"):
        load_card(bad)


def test_registry_finds_bundled_user_and_extra_cards_and_lists_broken_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    user = tmp_path / "data" / "radlens" / "models" / "mine"
    user.mkdir(parents=True)
    _write_card(user, "w.pt", "b" * 64)
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "card.toml").write_text("name = 'broken'")
    reg = discover([extra])
    names = {c.name for c in reg.cards}
    assert {"tiny", "deepbet-brain"} <= names
    assert any("broken" in p or "missing required" in p for p in reg.problems)
    assert reg.default_for("MR") is not None and reg.default_for("MR").name == "deepbet-brain"
    with pytest.raises(Exception, match="did you mean 'tiny'"):
        reg.get("tiyn")


def test_state_dict_and_safetensors_load_after_checksum(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path, sha = _state_dict_file(tmp_path)
    net = load_network(load_card(_write_card(tmp_path, path.name, sha)))
    assert not net.training
    state = torch.load(path, weights_only=True)
    save_file(state, str(tmp_path / "tiny.safetensors"))
    sha_st = hashlib.sha256((tmp_path / "tiny.safetensors").read_bytes()).hexdigest()
    card = load_card(_write_card(tmp_path, "tiny.safetensors", sha_st, "safetensors", "card2.toml"))
    net2 = load_network(card)
    for (k, a), (_k, b) in zip(net.state_dict().items(), net2.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    path, sha = _state_dict_file(tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="sha256 mismatch"):
        load_network(load_card(_write_card(tmp_path, path.name, sha)))
    with pytest.raises(ModelLoadError, match="missing"):
        read_verified(tmp_path / "nope.pt", sha)


class _Exploit:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self) -> tuple[object, tuple[str, ...]]:
        return (os.system, (f"touch {self.target}",))


def test_a_malicious_pickle_with_a_matching_checksum_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"weight": _Exploit(str(marker))})
    weights = tmp_path / "evil.pt"
    weights.write_bytes(payload)
    card = load_card(_write_card(tmp_path, weights.name, hashlib.sha256(payload).hexdigest()))
    with pytest.raises(ModelLoadError, match="refused"):
        load_network(card)
    assert not marker.exists()
    # Also a torch.save archive carrying the exploit.
    buf = io.BytesIO()
    torch.save({"weight": _Exploit(str(marker))}, buf)
    weights.write_bytes(buf.getvalue())
    card = load_card(_write_card(tmp_path, weights.name, hashlib.sha256(buf.getvalue()).hexdigest()))
    with pytest.raises(ModelLoadError, match="refused"):
        load_network(card)
    assert not marker.exists()


def test_models_command_lists_the_registry() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "inference.cli.main", "models", "--verify"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "deepbet-brain" in proc.stdout and "verified" in proc.stdout
