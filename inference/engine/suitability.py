"""Is this input one the model was made for? Checked before any inference, for every caller.

:func:`check_suitability` compares what is known about the input (:mod:`inference.engine.input_facts`:
modality, image type, volumes per position, body part, MR sequence, geometry QA, spacing; the
image's own body-region estimate, :mod:`inference.engine.body_region`; its intensity statistics,
:mod:`inference.engine.input_statistics`) with the card's input domain, and answers *suitable*,
*suitable with warnings* or *unsuitable*, with reasons a user can act on. An unsuitable input is
refused (:class:`~inference.errors.UnsuitableInputError`) unless the user forces the run; the
warnings travel with the result into the viewer, the summary, the PDF and the SR.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from inference.engine.body_region import RegionEstimate, estimate_body_region
from inference.engine.input_facts import InputFacts, gather_facts
from inference.engine.input_statistics import OOD_WARNING, model_input_quantiles, ood_score
from inference.models.card import ModelCard, Task
from inference.volume import Volume

#: Slice normal further than this from the body's long axis: not an axial stack.
AXIAL_MAX_ANGLE_DEG = 30.0
#: QA problems that make a volume's geometry doubtful (a warning, the model still runs).
_QA_WARNINGS = {
    "missing-slices": "slices are missing (a gap in the stack)",
    "irregular-spacing": "the slices are irregularly spaced",
    "gantry-tilt": "the stack was acquired with a gantry tilt",
    "mixed-rescale": "the slices are rescaled differently",
    "inconsistent-orientation": "the slices are not all oriented alike",
    "no-geometry": "the slices have no position or orientation",
}
#: Regions that contain each other for this purpose: a brain model takes a head scan.
_SAME_REGION = {"head": {"head", "brain"}, "brain": {"head", "brain"}}


class Verdict(StrEnum):
    SUITABLE = "suitable"
    WARNINGS = "suitable with warnings"
    UNSUITABLE = "unsuitable"


@dataclass
class Suitability:
    model: str
    reasons: list[str] = field(default_factory=list)  # why it is unsuitable
    warnings: list[str] = field(default_factory=list)
    modality: str = ""  # the modality the model runs with
    region: str = ""  # from the headers or the image, "" when unknown
    sequence: str = ""  # MR: from the headers, "" when unknown
    ood_score: float | None = None  # the one that decides: network features where the card has them
    ood_threshold: float | None = None
    ood_scores: dict[str, float] = field(default_factory=dict)  # "intensity", "features"

    @property
    def verdict(self) -> Verdict:
        if self.reasons:
            return Verdict.UNSUITABLE
        return Verdict.WARNINGS if self.warnings else Verdict.SUITABLE

    @property
    def suitable(self) -> bool:
        return not self.reasons

    def describe(self) -> str:
        """One line: the verdict and its reasons (or warnings)."""
        why = self.reasons or self.warnings
        return f"{self.verdict.value}" + (f": {'; '.join(why)}" if why else "")

    def summary(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "reasons": list(self.reasons),
            "warnings": list(self.warnings),
            "modality": self.modality,
            "region": self.region,
            "sequence": self.sequence,
            "ood_score": None if self.ood_score is None else round(self.ood_score, 3),
            "ood_threshold": self.ood_threshold,
            "ood_scores": {k: round(v, 3) for k, v in self.ood_scores.items()},
        }


def _accepts_region(card_regions: tuple[str, ...], found: tuple[str, ...]) -> bool:
    wanted = set().union(*(_SAME_REGION.get(r, {r}) for r in card_regions))
    return bool(wanted & set(found))


def _modality(card: ModelCard, facts: InputFacts, out: Suitability, model_chosen: bool) -> None:
    wanted = "/".join(card.modality)
    if not facts.modality:
        if not card.modality:
            return
        if model_chosen:
            out.modality = card.modality[0]
            out.warnings.append(f"the modality is not recorded: taken from the model ({card.modality[0]})")
        else:
            out.reasons.append(f"the modality is not recorded (model {card.name} is for {wanted}): give it")
        return
    out.modality = facts.modality
    if card.modality and not card.accepts(facts.modality):
        out.reasons.append(f"model {card.name} is for {wanted}, this stack is {facts.modality}")


def _values_fit(modality: str, volume: Volume, out: Suitability, said_by: str) -> None:
    """A modality the file does not record (given by the user or taken from the model), checked
    against the values: a CT holds air near −1000 HU, an MR image no negative values to speak of."""
    if volume.voxels.ndim != 3 or not volume.voxels.size:
        return
    flat = np.asarray(volume.voxels).reshape(-1)
    low = float(np.percentile(flat[:: max(1, flat.size // 1_000_000)], 0.5))
    if modality == "CT" and low > -500:
        out.reasons.append(
            f"the modality {said_by} is CT, but the values are not Hounsfield units (no air: lowest {low:g})"
        )
    elif modality == "MR" and low < -500:
        out.reasons.append(f"the modality {said_by} is MR, but the values look like CT (air at {low:g})")


def _dimensionality(card: ModelCard, facts: InputFacts, out: Suitability) -> None:
    dom = card.domain
    if "LOCALIZER" in facts.image_type:
        out.reasons.append("a localizer (scout) image, not a diagnostic stack")
    if facts.is_mosaic and not facts.mosaic_unpacked:
        out.reasons.append("a mosaic (several slices tiled in one image, e.g. Siemens EPI), not a 3-D volume")
    elif facts.is_mosaic:
        out.warnings.append("a mosaic unpacked into slices (an EPI acquisition: lower resolution, distortions)")
    if facts.volumes_per_position > 1:
        out.reasons.append(
            f"{facts.volumes_per_position} images at each slice position (a 4-D series: diffusion, perfusion, "
            "dynamic or multi-echo); the model takes one 3-D volume"
        )
    needs_volume = dom.dimensionality == "volume" or card.task != Task.SLICE_CLASSIFICATION
    if facts.slices < 2 and needs_volume:
        out.reasons.append("a single slice; the model needs a volume")
    elif dom.slices is not None and facts.slices < dom.slices[0]:
        out.reasons.append(f"{facts.slices} slices; the model needs at least {dom.slices[0]}")
    elif dom.slices is not None and facts.slices > dom.slices[1]:
        out.warnings.append(f"{facts.slices} slices, more than the {dom.slices[1]} the model was made for")
    if card.input.context_slices and 0 < facts.slices < card.input.channels:
        out.warnings.append(
            f"{facts.slices} slice(s), fewer than the model's {card.input.channels}-slice context: edge slices repeated"
        )
    if "DERIVED" in facts.image_type or "SECONDARY" in facts.image_type:
        out.warnings.append(f"a derived image ({'/'.join(facts.image_type[:3])}), not an original acquisition")
    for code in facts.qa_codes:
        if code in _QA_WARNINGS:
            out.warnings.append(_QA_WARNINGS[code])


def _geometry(card: ModelCard, facts: InputFacts, out: Suitability) -> None:
    dom = card.domain
    si, sj, sk = facts.spacing
    if dom.in_plane_spacing_mm is not None:
        lo, hi = dom.in_plane_spacing_mm
        if not (lo <= min(si, sj) and max(si, sj) <= hi):
            out.warnings.append(f"pixel spacing {si:.2g} × {sj:.2g} mm is outside the model's {lo:g}–{hi:g} mm")
    if dom.slice_spacing_mm is not None and facts.slices > 1:
        lo, hi = dom.slice_spacing_mm
        if not lo <= sk <= hi:
            out.warnings.append(f"slice spacing {sk:.2g} mm is outside the model's {lo:g}–{hi:g} mm")
    if dom.in_plane_size is not None:
        lo_n, hi_n = dom.in_plane_size
        if not (lo_n <= min(facts.in_plane) and max(facts.in_plane) <= hi_n):
            rows, cols = facts.in_plane
            out.warnings.append(f"images of {rows} × {cols} pixels, outside the model's {lo_n}–{hi_n}")
    if dom.orientation == "axial":
        angle = float(np.degrees(np.arccos(min(1.0, abs(facts.slice_normal_lps[2])))))
        if angle > AXIAL_MAX_ANGLE_DEG:
            out.warnings.append(f"not an axial stack (slices {angle:.0f}° from axial); the model was made for axial")


def _sequence(card: ModelCard, facts: InputFacts, out: Suitability) -> None:
    wanted = card.domain.sequence
    if out.modality != "MR":
        return
    out.sequence = facts.sequence
    if not wanted:
        return
    if not out.sequence:
        out.warnings.append(f"sequence unknown: the model expects {'/'.join(wanted)}-weighted MR")
    elif out.sequence not in wanted:
        out.reasons.append(f"a {out.sequence} series; the model expects {'/'.join(wanted)}-weighted MR")


def _region(card: ModelCard, facts: InputFacts, volume: Volume, out: Suitability) -> RegionEstimate | None:
    wanted = card.domain.body_region
    tagged = facts.tag_regions
    if tagged:
        out.region = "/".join(tagged)
        if wanted and not _accepts_region(wanted, tagged):
            out.reasons.append(f"the headers say {out.region}; the model is for {'/'.join(wanted)}")
        return None
    if not wanted or volume.voxels.ndim != 3:
        return None
    estimate = estimate_body_region(volume, out.modality or facts.modality)
    out.region = estimate.region
    if not estimate.region:
        out.warnings.append(f"body region not recognised from the image; the model is for {'/'.join(wanted)}")
    elif not _accepts_region(wanted, (estimate.region,)):
        out.reasons.append(f"the image looks like a {estimate.describe()}; the model is for {'/'.join(wanted)}")
    return estimate


def _intensity(card: ModelCard, volume: Volume, out: Suitability) -> None:
    stats = card.domain.intensity
    if stats is None or volume.voxels.ndim != 3 or not volume.voxels.size:
        return
    out.ood_score = ood_score(model_input_quantiles(volume.voxels, card.input), stats)
    out.ood_scores["intensity"] = out.ood_score
    out.ood_threshold = stats.threshold
    if card.domain.features is not None:
        return  # the network's own features decide, once it is loaded (ModelSession.analyse)
    if out.ood_score > stats.threshold:
        out.warnings.append(f"{OOD_WARNING} (out-of-distribution score {out.ood_score:.1f} > {stats.threshold:.1f})")


def judge_features(card: ModelCard, network: Any, device: str, volume: Volume, out: Suitability) -> None:
    """The out-of-distribution judgement from the network's pooled features
    (:mod:`inference.engine.feature_statistics`), for a card with ``[domain.features]`` and a network
    RadLens builds; it replaces the intensity one."""
    from inference.engine.feature_statistics import feature_score, pooled_features

    stats = card.domain.features
    if stats is None or not hasattr(network, "gradcam_layer") or volume.voxels.ndim != 3:
        return
    score = feature_score(pooled_features(network, volume, card.input, device), stats)
    out.ood_scores["features"] = score
    out.ood_score, out.ood_threshold = score, stats.threshold
    if score > stats.threshold:
        out.warnings.append(
            f"{OOD_WARNING} (network-feature out-of-distribution score {score:.1f} > {stats.threshold:.1f})"
        )


def check_suitability(
    card: ModelCard,
    volume: Volume,
    stack: Any = None,
    *,
    modality: str = "",
    model_chosen: bool = False,
) -> Suitability:
    """Whether ``card``'s model may run on ``volume`` (from ``stack``, when scanned), and why not.

    ``modality`` is the user's for inputs that record none (NIfTI); ``model_chosen``: the user named
    this model, so an unrecorded modality is taken from it (with a warning) instead of refusing."""
    out = Suitability(card.name)
    facts = gather_facts(volume, stack, modality)
    if volume.is_colour:
        out.reasons.append(f"colour or multi-channel images (voxels of shape {volume.voxels.shape})")
    _modality(card, facts, out, model_chosen)
    recorded = volume.metadata.modality or getattr(stack, "modality", "")
    if not recorded and out.modality:
        _values_fit(out.modality, volume, out, "given" if modality else "taken from the model")
    _dimensionality(card, facts, out)
    _geometry(card, facts, out)
    _sequence(card, facts, out)
    _region(card, facts, volume, out)
    if not card.domain.stated:
        out.warnings.append("the model's card does not state the inputs it was made for")
    _intensity(card, volume, out)
    return out
