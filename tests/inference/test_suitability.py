"""The input check before inference, on real data: every refusal and warning, the image's body region, OOD scores.

Real inputs: the CT head of Debian's invesalius-examples, Colin27's T1 (mricron-data), nibabel's
Siemens diffusion mosaics (real headers), pydicom's CT_small, the sample chest phantom; foreign
inputs made from them (:mod:`tests.inference.foreign_inputs`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

from inference.engine.body_region import estimate_body_region
from inference.engine.input_statistics import OOD_WARNING, model_input_quantiles, ood_score
from inference.engine.session import ModelSession
from inference.engine.suitability import Verdict, check_suitability
from inference.errors import UnsuitableInputError
from inference.io.dicom_loader import load_stack
from inference.io.scan import scan
from inference.models.card import ModelCard
from inference.models.domain import InputDomain
from inference.models.registry import discover
from inference.sample_study import make_chest_phantom
from inference.volume import Volume, VolumeMetadata
from tests.inference.foreign_inputs import colin, dwi_like, unzip_dicom


@pytest.fixture(scope="module")
def cards() -> dict[str, ModelCard]:
    reg = discover(include_user=False)
    return {"ct": reg.get("ct-nodule-demo"), "bet": reg.get("deepbet-brain")}


@pytest.fixture(scope="module")
def head(ct_head: tuple[np.ndarray, tuple[float, float, float]]) -> Volume:
    voxels, spacing = ct_head
    return Volume(voxels, spacing, (0.0, 0.0, 0.0), np.eye(3), VolumeMetadata(modality="CT"))


@pytest.fixture(scope="module")
def chest() -> Volume:
    return make_chest_phantom()[0]


@pytest.fixture(scope="module")
def t1() -> Volume:
    return colin()


def _region_only(card: ModelCard, regions: tuple[str, ...]) -> ModelCard:
    return dataclasses.replace(card, domain=dataclasses.replace(card.domain, body_region=regions))


def _loaded(folder: Path) -> tuple[Any, Volume]:
    """The folder's stack and volume: nibabel's two real diffusion mosaics are one 4-D series of two
    volumes (b 0 and b 1000) once the loader unpacks them; one mosaic alone is a 3-D volume."""
    stack = scan(folder).stacks()[0]
    return stack, load_stack(stack)


def test_body_region_from_the_image(head: Volume, chest: Volume, t1: Volume) -> None:
    assert estimate_body_region(head, "CT").region == "head"
    assert estimate_body_region(chest, "CT").region == "chest"
    assert estimate_body_region(t1, "MR").region == "head"


def test_in_domain_inputs_are_suitable(cards: dict[str, ModelCard], head: Volume, chest: Volume) -> None:
    for volume in (head, chest):
        checked = check_suitability(cards["ct"], volume)
        assert checked.verdict == Verdict.SUITABLE, checked.describe()
        assert checked.ood_score is not None and checked.ood_score < cards["ct"].domain.intensity.threshold  # type: ignore[union-attr]


def test_a_chest_model_refuses_a_head_and_a_head_model_a_chest(
    cards: dict[str, ModelCard], head: Volume, chest: Volume
) -> None:
    on_head = check_suitability(_region_only(cards["ct"], ("chest",)), head)
    assert on_head.verdict == Verdict.UNSUITABLE and "looks like a head" in on_head.describe()
    unnamed = dataclasses.replace(chest, metadata=VolumeMetadata(modality="CT"))  # no "Chest" in its description
    on_chest = check_suitability(_region_only(cards["ct"], ("head",)), unnamed)
    assert on_chest.verdict == Verdict.UNSUITABLE and "looks like a chest" in on_chest.describe()


def test_another_modality_is_refused(cards: dict[str, ModelCard], head: Volume, t1: Volume) -> None:
    on_ct = check_suitability(cards["bet"], head)
    assert "model deepbet-brain is for MR, this stack is CT" in on_ct.reasons
    mr = dataclasses.replace(t1, metadata=VolumeMetadata(modality="MR"))
    assert "model ct-nodule-demo is for CT, this stack is MR" in check_suitability(cards["ct"], mr).reasons


def test_a_file_without_modality(cards: dict[str, ModelCard], t1: Volume) -> None:
    # Not named by the user: refused; named: taken from the model, said in a warning.
    assert not check_suitability(cards["bet"], t1).suitable
    chosen = check_suitability(cards["bet"], t1, model_chosen=True)
    assert chosen.suitable and "taken from the model (MR)" in " ".join(chosen.warnings)
    assert "sequence unknown: the model expects T1-weighted MR" in chosen.warnings
    # The CT model on an MR file: its values are not Hounsfield units, whoever says it is CT.
    for kwargs in ({"model_chosen": True}, {"modality": "CT"}):
        wrong = check_suitability(cards["ct"], t1, **kwargs)  # type: ignore[arg-type]
        assert not wrong.suitable and "not Hounsfield units" in wrong.describe()


def test_the_siemens_diffusion_mosaic_is_refused_for_the_t1_model(tmp_path: Path, cards: dict[str, ModelCard]) -> None:
    folder = tmp_path / "dwi"
    for name in ("siemens_dwi_0.dcm.gz", "siemens_dwi_1000.dcm.gz"):
        unzip_dicom(name, folder)
    stack, volume = _loaded(folder)
    checked = check_suitability(cards["bet"], volume, stack)
    text = checked.describe()
    assert checked.verdict == Verdict.UNSUITABLE
    assert volume.is_4d and stack.is_mosaic
    assert "2 images at each slice position" in text
    assert any("a mosaic unpacked into slices" in w for w in checked.warnings)
    assert "a DWI series; the model expects T1-weighted MR" in text
    with pytest.raises(UnsuitableInputError) as info:
        ModelSession("cpu").analyse(cards["bet"], volume, stack=stack)
    assert info.value.reasons == checked.reasons


def test_a_localizer_and_a_single_slice_are_refused(
    tmp_path: Path, cards: dict[str, ModelCard], write_series: Any
) -> None:
    chest, _ = make_chest_phantom(shape=(12, 96, 96), spacing=(3.0, 3.0, 5.0))
    files = write_series(chest.voxels, tmp_path / "scout", spacing=chest.spacing, series_description="scout")
    for f in files:
        ds = pydicom.dcmread(f)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
        ds.BodyPartExamined = "CHEST"
        ds.save_as(f)
    stack = scan(tmp_path / "scout").stacks()[0]
    checked = check_suitability(cards["ct"], load_stack(stack), stack)
    assert "a localizer (scout) image, not a diagnostic stack" in checked.reasons
    assert checked.region == "chest"  # from BodyPartExamined
    single = write_series(chest.voxels[5:6], tmp_path / "one", spacing=chest.spacing, modality="MR")
    stack = scan(single[0]).stacks()[0]
    with pytest.warns(Warning):
        volume = load_stack(stack)
    assert "a single slice; the model needs a volume" in check_suitability(cards["bet"], volume, stack).reasons
    # A slice classifier reads one slice, with a warning that its neighbours are missing.
    ct = dataclasses.replace(volume, metadata=VolumeMetadata(modality="CT"))
    slice_wise = check_suitability(cards["ct"], ct)
    assert "1 slice(s), fewer than the model's 3-slice context: edge slices repeated" in slice_wise.warnings


def test_body_part_in_the_headers_decides_over_the_image(
    tmp_path: Path, cards: dict[str, ModelCard], write_series: Any
) -> None:
    chest, _ = make_chest_phantom(shape=(12, 96, 96), spacing=(3.0, 3.0, 5.0))
    files = write_series(chest.voxels, tmp_path / "knee", spacing=chest.spacing)
    for f in files:
        ds = pydicom.dcmread(f)
        ds.BodyPartExamined = "KNEE"
        ds.save_as(f)
    stack = scan(tmp_path / "knee").stacks()[0]
    checked = check_suitability(cards["ct"], load_stack(stack), stack)
    assert "the headers say extremity; the model is for chest/head" in checked.reasons


@pytest.mark.slow
def test_forced_run_carries_the_reasons(cards: dict[str, ModelCard], t1: Volume) -> None:
    small = Volume(np.ascontiguousarray(t1.voxels[60:66]), t1.spacing, t1.origin, t1.direction, VolumeMetadata("MR"))
    session = ModelSession("cpu")
    with pytest.raises(UnsuitableInputError, match="is for CT, this stack is MR"):
        session.analyse(cards["ct"], small)
    result = session.analyse(cards["ct"], small, force=True)
    assert result.suitability == "unsuitable (run forced)"
    assert "forced: model ct-nodule-demo is for CT, this stack is MR" in result.input_warnings
    assert result.slice_probabilities is not None and len(result.slice_probabilities) == 6
    again = session.analyse(cards["ct"], small, force=True)  # the loaded model is reused
    assert session.model(cards["ct"]) is session.model(cards["ct"])
    np.testing.assert_array_equal(again.slice_probabilities, result.slice_probabilities)  # type: ignore[arg-type]


def test_ood_scores_separate_foreign_inputs(
    cards: dict[str, ModelCard], head: Volume, chest: Volume, t1: Volume
) -> None:
    """Figures for the README: each input's score under each model's training statistics."""
    ct = cards["ct"]
    stats = ct.domain.intensity
    assert stats is not None
    inside = [ood_score(model_input_quantiles(v.voxels, ct.input), stats) for v in (chest, head)]
    mr_as_ct = ood_score(model_input_quantiles(t1.voxels, ct.input), stats)
    assert max(inside) < stats.threshold < mr_as_ct, (inside, mr_as_ct)
    # The network's own pooled features decide for the demo model: they separate too, and a
    # diffusion-like MR read as CT, which the intensities do not.
    from inference.engine.run import load_model
    from inference.engine.suitability import judge_features

    network = load_model(ct, "cpu").network
    judged = {}
    for name, volume, modality in (
        ("chest", chest, ""),
        ("head", head, ""),
        ("mr", t1, "CT"),
        ("dwi", dwi_like(0), "CT"),
    ):
        checked = check_suitability(ct, volume, modality=modality)
        assert not any(OOD_WARNING in w for w in checked.warnings)  # intensities do not decide here
        judge_features(ct, network, "cpu", volume, checked)
        judged[name] = checked
    assert ct.domain.features is not None
    limit = ct.domain.features.threshold
    assert max(judged["chest"].ood_scores["features"], judged["head"].ood_scores["features"]) < limit
    assert min(judged["mr"].ood_scores["features"], judged["dwi"].ood_scores["features"]) > limit
    assert (
        any(OOD_WARNING in w for w in judged["mr"].warnings)
        and judged["mr"].ood_score == judged["mr"].ood_scores["features"]
    )
    assert not any(OOD_WARNING in w for w in judged["chest"].warnings)
    bet = cards["bet"]
    assert bet.domain.intensity is not None
    t1_score = ood_score(model_input_quantiles(t1.voxels, bet.input), bet.domain.intensity)
    dwi_score = ood_score(model_input_quantiles(dwi_like(1000).voxels, bet.input), bet.domain.intensity)
    assert t1_score < bet.domain.intensity.threshold and t1_score < dwi_score


@pytest.mark.slow
def test_a_chest_only_model_scores_a_head_out_of_distribution(cards: dict[str, ModelCard], head: Volume) -> None:
    from inference.training.domain_statistics import statistics_from_volumes
    from inference.training.phantom_sources import add_phantoms

    phantoms = [s.load() for s in add_phantoms(6, seed=1)]
    stats = statistics_from_volumes(phantoms[:4], cards["ct"].input, "4 chest phantoms")
    chest_card = dataclasses.replace(cards["ct"], domain=InputDomain(body_region=("chest",), intensity=stats))
    held_out = [check_suitability(chest_card, v).ood_score for v in phantoms[4:]]
    on_head = check_suitability(chest_card, head).ood_score
    assert on_head is not None and all(s is not None for s in held_out)
    assert max(held_out) < stats.threshold < on_head, (held_out, on_head, stats.threshold)  # type: ignore[type-var]


def test_what_the_loader_says_of_volumes_and_mosaics_is_used_when_it_says_it(
    tmp_path: Path, cards: dict[str, ModelCard]
) -> None:
    """A loader that unpacks mosaics and splits 4-D series gives ``stack.is_mosaic`` and ``stack.n_volumes``."""
    from types import SimpleNamespace

    folder = tmp_path / "dwi"
    unzip_dicom("siemens_dwi_0.dcm.gz", folder)
    stack, volume = _loaded(folder)
    told = SimpleNamespace(
        headers=stack.headers, slices=stack.slices, qa=(), modality="MR", is_mosaic=True, n_volumes=1
    )
    checked = check_suitability(cards["bet"], volume, told)
    assert not any("a mosaic" in r or "images at each slice position" in r for r in checked.reasons)
    assert any("a mosaic unpacked into slices" in w for w in checked.warnings)
    assert "a DWI series; the model expects T1-weighted MR" in checked.reasons  # the headers still say DWI
    four_d = check_suitability(cards["bet"], volume, SimpleNamespace(**{**vars(told), "n_volumes": 30}))
    assert any(r.startswith("30 images at each slice position") for r in four_d.reasons)


@pytest.mark.parametrize(
    ("fields", "sequence"),
    [
        ({"series_description": "t1_mprage_sag_p2_iso"}, "T1"),
        ({"protocol": "SAG FSPGR BRAVO"}, "T1"),
        ({"series_description": "T1 FLAIR AX"}, "T1"),
        ({"series_description": "AX T2 FLAIR"}, "FLAIR"),
        ({"series_description": "ep2d_diff_3scan_trace"}, "DWI"),
        ({"image_type": ("DERIVED", "PRIMARY", "DIFFUSION", "ADC")}, "DWI"),
        ({"b_value": 1000.0}, "DWI"),
        ({"repetition_time": 500.0, "echo_time": 12.0}, "T1"),
        ({"repetition_time": 2300.0, "echo_time": 3.0, "inversion_time": 900.0}, "T1"),
        ({"repetition_time": 4000.0, "echo_time": 100.0}, "T2"),
        ({"repetition_time": 9000.0, "echo_time": 90.0, "inversion_time": 2500.0}, "FLAIR"),
        ({"series_description": "localizer"}, ""),
    ],
)
def test_the_mr_sequence_is_read_from_the_headers_only(fields: dict[str, Any], sequence: str) -> None:
    from inference.engine.input_facts import InputFacts

    assert InputFacts(modality="MR", **fields).sequence == sequence
