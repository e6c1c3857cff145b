"""Which stacks a batch run analyses, with which model, and where their outputs go."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from inference.batch.identity import Identity
from inference.batch.resume import stack_key
from inference.io.paths import display_path
from inference.io.scan import FileProblem, NonImageObject, ScanResult
from inference.io.stacks import Stack
from inference.models.card import ModelCard
from inference.models.registry import Registry


@dataclass(frozen=True)
class Job:
    """One image stack to analyse (``card`` set) or to list as skipped (``skip_reason`` set)."""

    stack: Stack
    folder: str
    card: ModelCard | None
    skip_reason: str = ""
    source: str = ""  # the input argument it was found under
    modality: str = ""  # the stack's, or --modality for image files that record none
    input_path: str = ""  # where under ``source`` it lies: the folder of its files (DICOM) or the file


@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)
    non_image: list[NonImageObject] = field(default_factory=list)
    not_dicom: list[FileProblem] = field(default_factory=list)
    failed_inputs: list[tuple[str, str]] = field(default_factory=list)  # (input, reason) for whole inputs

    @property
    def runnable(self) -> list[Job]:
        return [j for j in self.jobs if j.card is not None]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "", text)[:8] or "NA"


def folder_name(stack: Stack, identity: Identity, modality: str = "") -> str:
    """``CT_s0003_1a2b3c4d5e6f``: modality, series number, and a keyed hash of the stack's identity.

    Says what it holds without carrying a UID, a description or a file name (which might name
    the patient), and stays the same when the run is resumed.
    """
    kind = _slug(stack.modality or modality or "IMG")
    return f"{kind}_s{max(stack.series_number, 0):04d}_{identity.token(stack_key(stack))}"


def _choose_card(
    stack: Stack, registry: Registry, model: ModelCard | None, modality: str, force: bool = False
) -> tuple[ModelCard | None, str]:
    if stack.headers and stack.headers[0].samples_per_pixel != 1:
        return None, "colour images are not analysed"
    if model is not None:
        # The user named the model: an unrecorded modality is taken from it (the run notes it);
        # a recorded, different one is refused unless forced.
        if model.modality and modality and not model.accepts(modality) and not force:
            wanted = "/".join(model.modality)
            return None, f"model {model.name} is for {wanted}, this stack is {modality} (--force runs it)"
        return model, ""
    if not modality:
        return None, "the stack's modality is unknown: give it with --modality, or choose a model with --model"
    card = registry.default_for(modality)
    if card is None:
        return None, f"no default model for {modality} (choose one with --model)"
    return card, ""


def relative_input(stack: Stack, root: Path) -> str:
    """The stack's place under the input argument ``root``: the folder of its (first) file, or the
    file itself for an image file, relative to ``root`` ("." for files directly in it; the file's
    name when ``root`` is the file)."""
    first = Path(stack.paths[0]) if stack.paths else root
    where = first if stack.kind == "file" else first.parent
    if root.is_file() or root == first:
        return first.name if stack.kind == "file" else "."
    try:
        return Path(os.path.relpath(where, root)).as_posix()
    except ValueError:  # another drive (Windows)
        return where.name


def plan_jobs(
    scans: list[ScanResult],
    registry: Registry,
    identity: Identity,
    *,
    model: ModelCard | None = None,
    file_modality: str = "",
    force: bool = False,
) -> Plan:
    """One job per image stack; the same stack reached through two inputs is analysed once."""
    plan = Plan()
    seen: set[str] = set()
    for result in scans:
        plan.problems.extend(result.errors)
        plan.non_image.extend(result.non_image)
        plan.not_dicom.extend(result.not_dicom)
        for stack in result.stacks():
            key = stack_key(stack)
            if key in seen:
                continue
            seen.add(key)
            modality = stack.modality or (file_modality.upper() if stack.kind == "file" else "")
            card, reason = _choose_card(stack, registry, model, modality, force)
            folder = folder_name(stack, identity, modality)
            where = relative_input(stack, Path(result.root))
            plan.jobs.append(Job(stack, folder, card, reason, display_path(result.root), modality, where))
    return plan
