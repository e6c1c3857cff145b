"""deepbet through the engine: real networks on a real T1 brain (Colin27 from Debian's mricron-data).

Each run of the 256³ network takes about 10 s on a small CPU, so each run is a module fixture.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from inference.engine.deepbet_pipeline import from_ras, to_ras
from inference.engine.result import Result
from inference.engine.run import run
from inference.errors import InferenceCancelled, ModelLoadError
from inference.io.image_file import read_image_file
from inference.io.orientation import closest_lps_axes
from inference.models.card import ModelCard, load_card
from inference.progress import CancelToken
from inference.volume import Volume

REPO = Path(__file__).resolve().parents[2]
CARD = REPO / "resources" / "models" / "deepbet" / "card.toml"
TEMPLATES = Path("/usr/share/mricron/templates")
COLIN = TEMPLATES / "ch2.nii.gz"
COLIN_BET = TEMPLATES / "ch2bet.nii.gz"


def _require(path: Path) -> Path:
    if not path.is_file():
        pytest.fail(f"{path} is missing: the Colin27 T1 templates come from Debian; run `apt-get install mricron-data`")
    return path


def dice(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> float:
    a, b = a.astype(bool), b.astype(bool)
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


@pytest.fixture(scope="module")
def card() -> ModelCard:
    return load_card(CARD)


@pytest.fixture(scope="module")
def colin() -> Volume:
    vol = read_image_file(_require(COLIN))
    return dataclasses.replace(vol, metadata=dataclasses.replace(vol.metadata, modality="MR"))


@pytest.fixture(scope="module")
def ours(card: ModelCard, colin: Volume) -> tuple[Result, list[tuple[float, str]], float]:
    progress: list[tuple[float, str]] = []
    t0 = time.perf_counter()
    result = run(card, colin, lambda f, m: progress.append((f, m)), device="cpu")
    return result, progress, time.perf_counter() - t0


@pytest.fixture(scope="module")
def deepbet_mask(tmp_path_factory: pytest.TempPathFactory) -> Volume:
    """deepbet's own mask for the same file, written by deepbet and read back as a Volume."""
    import deepbet

    out = tmp_path_factory.mktemp("deepbet") / "mask.nii.gz"
    with warnings.catch_warnings():  # deepbet's own torch.jit.load warns on torch 2.x
        warnings.simplefilter("ignore", DeprecationWarning)
        deepbet.BrainExtraction(no_gpu=True).run(str(_require(COLIN)), mask_path=str(out))
    return read_image_file(out)


def _reindex(vol: Volume, perm: tuple[int, int, int], flips: tuple[bool, bool, bool]) -> Volume:
    """The same image on another voxel order: ``new[n] = old[o]`` with numpy axis ``a`` of the new
    array reading old numpy axis ``perm[a]``, reversed where ``flips[a]``; placement unchanged."""
    new = np.transpose(vol.voxels, perm)
    for a, f in enumerate(flips):
        if f:
            new = np.flip(new, axis=a)
    old_shape = vol.shape
    # New numpy axis a ↔ new ijk axis 2-a; old numpy axis perm[a] ↔ old ijk axis 2-perm[a].
    origin_old_np = [0, 0, 0]
    for a in range(3):
        origin_old_np[perm[a]] = old_shape[perm[a]] - 1 if flips[a] else 0
    origin = vol.index_to_lps(origin_old_np[::-1])
    direction = np.zeros((3, 3))
    spacing = [0.0, 0.0, 0.0]
    for a in range(3):
        old_ijk = 2 - perm[a]
        direction[:, 2 - a] = vol.direction[:, old_ijk] * (-1 if flips[a] else 1)
        spacing[2 - a] = vol.spacing[old_ijk]
    out = dataclasses.replace(
        vol,
        voxels=np.ascontiguousarray(new),
        origin=(float(origin[0]), float(origin[1]), float(origin[2])),
        direction=direction,
        spacing=(spacing[0], spacing[1], spacing[2]),
    )
    # Sanity: a few voxels hold the same value at the same place in both.
    rng = np.random.default_rng(0)
    for _ in range(20):
        k, j, i = (int(rng.integers(n)) for n in out.shape)
        ko, jo, io_ = np.rint(vol.lps_to_index(out.index_to_lps([i, j, k]))[::-1]).astype(int)
        assert out.voxels[k, j, i] == vol.voxels[ko, jo, io_]
    return out


def _to_grid(mask_vol: Volume, target: Volume) -> npt.NDArray[np.bool_]:
    """Each set voxel of ``mask_vol`` placed by its LPS position onto ``target``'s grid."""
    k, j, i = np.nonzero(mask_vol.voxels)
    ijk = np.rint(target.lps_to_index(mask_vol.index_to_lps(np.column_stack([i, j, k])))).astype(int)
    out = np.zeros(target.shape, dtype=bool)
    inside = np.all((ijk >= 0) & (ijk < np.array(target.size_ijk)), axis=1)
    out[ijk[inside, 2], ijk[inside, 1], ijk[inside, 0]] = True
    return out


def test_matches_deepbet_itself(
    ours: tuple[Result, list[tuple[float, str]], float], colin: Volume, deepbet_mask: Volume
) -> None:
    result = ours[0]
    assert result.label_map is not None and result.probability_map is not None
    assert result.label_map.dtype == np.uint8 and result.label_map.shape == colin.shape
    assert result.probability_map.dtype == np.float32 and result.probability_map.shape == colin.shape
    assert deepbet_mask.shape == colin.shape
    np.testing.assert_allclose(deepbet_mask.affine, colin.affine, atol=1e-4)
    d = dice(result.label_map, deepbet_mask.voxels > 0)
    print(f"Dice vs deepbet 1.0.2: {d:.5f}")
    assert d >= 0.99


def test_matches_colin_reference_brain(ours: tuple[Result, list[tuple[float, str]], float], colin: Volume) -> None:
    ref = read_image_file(_require(COLIN_BET))
    assert ref.shape == colin.shape
    np.testing.assert_allclose(ref.affine, colin.affine, atol=1e-4)
    assert ours[0].label_map is not None
    d = dice(ours[0].label_map, ref.voxels > 0)
    print(f"Dice vs ch2bet: {d:.5f}")
    assert d >= 0.93


def test_result_contents(ours: tuple[Result, list[tuple[float, str]], float], colin: Volume) -> None:
    result, progress, seconds = ours
    assert result.device == "cpu" and result.model == "deepbet-brain"
    assert result.label_map is not None and result.probability_map is not None
    assert set(np.unique(result.label_map)) == {0, 1}
    assert float(result.probability_map.min()) >= 0.0 and float(result.probability_map.max()) <= 1.0
    # One brain: its volume is the TIV (adult brains: roughly 1.1–2.1 L; Colin27's head is large).
    assert len(result.findings) == 1
    brain = result.findings[0]
    assert brain.name == "brain" and brain.label == 1
    assert brain.voxel_count == int(result.label_map.sum())
    assert 1000 < brain.volume_ml < 2200
    assert result.study_score is not None and 0.9 < result.study_score <= 1.0
    # Progress at each stage, in order, ending at 1.
    fractions = [f for f, _ in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("bounding box" in m for _, m in progress) and any(m.startswith("segmenting") for _, m in progress)
    for key in ("load", "bbox", "inference", "postprocess", "total"):
        assert key in result.timings
    print(f"TIV {brain.volume_ml:.1f} mL; run {seconds:.1f} s; timings {result.timings}")


def test_ras_reindexing_round_trips(colin: Volume) -> None:
    amap = closest_lps_axes(colin.direction)
    ras = to_ras(colin.voxels, amap)
    # For a NIfTI stored RAS, our RAS view is exactly the stored (x, y, z) array nibabel reads.
    import nibabel as nib

    stored = np.asarray(nib.load(str(COLIN)).dataobj)
    np.testing.assert_array_equal(ras, stored)
    np.testing.assert_array_equal(from_ras(np.ascontiguousarray(ras), amap, colin.shape), colin.voxels)


def test_mask_lands_right_in_another_voxel_order(
    card: ModelCard, colin: Volume, ours: tuple[Result, list[tuple[float, str]], float]
) -> None:
    # Slices become sagittal, rows run inferior→superior reversed, columns anterior→posterior.
    other = _reindex(colin, perm=(2, 0, 1), flips=(True, True, False))
    assert other.shape != colin.shape
    result = run(card, other, device="cpu")
    assert result.label_map is not None and result.label_map.shape == other.shape
    placed = _to_grid(other.with_voxels(result.label_map), colin)
    assert ours[0].label_map is not None
    d = dice(placed, ours[0].label_map)
    print(f"Dice, reordered volume vs original, in physical space: {d:.5f}")
    assert d >= 0.99


def test_cancel_before_second_stage(card: ModelCard, colin: Volume) -> None:
    token = CancelToken()
    seen: list[str] = []

    def on_progress(fraction: float, message: str) -> None:
        seen.append(message)
        if message.startswith("segmenting"):
            token.cancel()

    t0 = time.perf_counter()
    with pytest.raises(InferenceCancelled):
        run(card, colin, on_progress, token, device="cpu")
    assert any("bounding box" in m for m in seen)
    assert not any(m.startswith("post-processing") or m.startswith("done") for m in seen)
    assert time.perf_counter() - t0 < 8.0  # the 256³ network never ran


@pytest.mark.parametrize("tampered", ["model.pt", "bbox_model.pt"])
def test_tampered_weights_refused_before_loading(
    card: ModelCard, colin: Volume, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tampered: str
) -> None:
    import torch

    shutil.copy(CARD, tmp_path / "card.toml")
    for name in ("model.pt", "bbox_model.pt"):
        shutil.copy(card.resolve_file(name), tmp_path / name)
    target = tmp_path / tampered
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    copy = dataclasses.replace(card, weights_distribution="", path=tmp_path / "card.toml", weights="model.pt")
    assert copy.resolve_file(tampered) == target.resolve()

    loads: list[object] = []
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: loads.append(a))
    with pytest.raises(ModelLoadError, match="sha256 mismatch") as err:
        run(copy, colin, device="cpu")
    assert err.value.path == target.resolve()
    assert loads == []  # nothing was deserialised, not even the untouched network
