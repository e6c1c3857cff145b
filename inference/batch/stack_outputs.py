"""The outputs of one analysed stack, written by the batch command and the viewer's export alike.

File names say what they hold: ``seg.dcm`` (DICOM SEG), ``findings-sr.dcm`` (the findings as a
DICOM SR, TID 1500, referencing the SEG when it was written), ``mask.nii.gz`` (label map),
``heatmap.nii.gz`` (explanation or probability map, [0, 1] in steps of 1/255), ``heatmap-pm.dcm``
(the same map as a DICOM Parametric Map on the source instances), ``findings.json``,
``key_NN_sliceKKKK.png`` and ``report.pdf``. Every file is written under a temporary name and
renamed into place.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from inference import __version__
from inference.batch.identity import Identity
from inference.batch.output_maps import heatmap_name, label_table, output_heatmap, output_label_map
from inference.batch.source_headers import SourceHeaders
from inference.engine.result import Result
from inference.io.atomic import atomic_write
from inference.io.stacks import Stack
from inference.models.card import ModelCard
from inference.volume import Volume

FORMATS = ("seg", "sr", "pm", "mask", "heatmap", "findings", "key-images", "pdf")
#: What ``radlens analyze`` writes unless told: all but the parametric map, which costs a third of the
#: writing time of all the others together for a second copy of heatmap.nii.gz (the viewer's export
#: writes every format).
DEFAULT_FORMATS = tuple(f for f in FORMATS if f != "pm")
OWN_NAMES = (
    "seg.dcm", "findings-sr.dcm", "heatmap-pm.dcm", "mask.nii.gz", "heatmap.nii.gz", "findings.json", "report.pdf",
)  # fmt: skip


@dataclass
class StackOutputs:
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # outputs not written, with the reason


#: heatmap.nii.gz holds uint8 steps of 1/255 with scl_slope 1/255: readers see values in [0, 1].
#: A quarter of float32's bytes, and gzip is several times faster on them: on a large CT the
#: float map was the slowest output to write.
HEATMAP_SCALE = (1.0 / 255.0, 0.0)


def quantised_heatmap(heat: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.uint8]:
    """``heat`` clipped to [0, 1] in steps of 1/255, rounded to nearest; a few slices at a time,
    so the float temporaries stay in the cache."""
    out = np.empty(heat.shape, dtype=np.uint8)
    if heat.ndim == 0 or heat.shape[0] == 0:
        return out
    step = max(1, (1 << 20) // max(1, heat[0].size))
    scratch = np.empty((step, *heat.shape[1:]), dtype=np.float32)
    for k in range(0, heat.shape[0], step):
        if not heat[k : k + step].any():  # slices without a map (most of a stack): one read, no arithmetic
            out[k : k + step] = 0
            continue
        part = scratch[: min(step, heat.shape[0] - k)]
        np.clip(heat[k : k + step], 0.0, 1.0, out=part)
        part *= 255.0
        np.rint(part, out=part)
        out[k : k + step] = part
    return out


def _study_header(stack: Stack, volume: Volume, identity: Identity) -> dict[str, str]:
    fields = identity.study_fields(stack)
    k, j, i = volume.shape
    fields["modality"] = volume.metadata.modality or stack.modality
    fields["dimensions"] = f"{i}×{j}×{k}"
    fields["spacing_mm"] = " × ".join(f"{s:.3g}" for s in volume.spacing)
    return fields


def findings_document(
    stack: Stack, volume: Volume, result: Result, card: ModelCard, identity: Identity, label_map: Any
) -> dict[str, Any]:
    from inference.engine.interpretation import interpret

    summary = result.summary()
    reading = interpret(result, card)
    return {
        "radlens_version": __version__,
        "study": identity.study_fields(stack),
        "stack": {
            "modality": volume.metadata.modality or stack.modality,
            "shape_kji": list(volume.shape),
            "spacing_ijk_mm": list(volume.spacing),
            "origin_lps_mm": list(volume.origin),
            "direction_ijk_in_lps": np.asarray(volume.direction).round(6).tolist(),
            "qa_warnings": list(volume.qa_warnings),
            **(
                {"slice_positions_lps_mm": np.asarray(volume.slice_positions).round(4).tolist()}
                if volume.slice_positions is not None
                else {}
            ),
        },
        "model": {k: v for k, v in card.summary().items() if k != "card"},
        "threshold": card.threshold,
        "study_score": summary["study_score"],
        "findings": summary["findings"],
        "labelled_voxels": int(np.count_nonzero(label_map)) if label_map is not None else None,
        "slice_probabilities": (
            [round(float(p), 5) for p in result.slice_probabilities] if result.slice_probabilities is not None else None
        ),
        "device": result.device,
        "timings_s": summary["timings_s"],
        "messages": summary["messages"],
        "verdict": reading.verdict,
        "headline": reading.headline,
        "label_volumes_ml": {k: round(v, 4) for k, v in reading.volumes_ml.items()},
        "suitability": summary["suitability"],
        "input_warnings": summary["input_warnings"],
        "ood_score": summary["ood_score"],
        "ood_scores": summary["ood_scores"],
    }


def clear_outputs(stack_dir: Path) -> None:
    """Remove outputs of an earlier run of this stack (key images may differ in number)."""
    for name in OWN_NAMES:
        (stack_dir / name).unlink(missing_ok=True)
    for png in stack_dir.glob("key_*.png"):
        png.unlink(missing_ok=True)


def write_stack_outputs(
    stack_dir: Path,
    *,
    stack: Stack,
    volume: Volume,
    result: Result,
    card: ModelCard,
    identity: Identity,
    formats: tuple[str, ...] = FORMATS,
    key_image_count: int = 3,
) -> StackOutputs:
    """Write the chosen formats for one stack into ``stack_dir`` (created if needed). Outputs that
    reference source instances reference those ``volume`` was loaded from (a file whose pixels
    could not be read was left out of it)."""
    from inference.io.dicom_loader import loaded_part

    stack = loaded_part(stack, volume)
    stack_dir.mkdir(parents=True, exist_ok=True)
    out = StackOutputs()
    labels = output_label_map(result, card)
    heat = output_heatmap(result)
    if "mask" in formats:
        if labels is None:
            out.notes.append("mask: the model gives no label map or explanation map")
        else:
            _nifti(volume, labels, stack_dir / "mask.nii.gz", out)
    stored = quantised_heatmap(heat) if heat is not None and ("heatmap" in formats or "pm" in formats) else None
    if "heatmap" in formats:
        if stored is None:
            out.notes.append("heatmap: the model gives no map")
        else:
            _nifti(volume, stored, stack_dir / "heatmap.nii.gz", out, scale=HEATMAP_SCALE)
    sources = SourceHeaders(stack, identity.dataset)  # read once for the SEG, the SR and the map
    if "seg" in formats:
        if labels is None:
            out.notes.append("seg: the model gives no label map")
        else:
            from inference.batch.seg_writer import write_dicom_seg

            table = label_table(card)
            _dicom_object(
                "seg",
                stack,
                out,
                partial(write_dicom_seg, stack, volume, labels, table, card, stack_dir / "seg.dcm", sources=sources),
            )
    if "pm" in formats:
        if stored is None:
            out.notes.append("pm: the model gives no map")
        else:
            from inference.batch.pm_writer import write_parametric_map

            path, what = stack_dir / "heatmap-pm.dcm", heatmap_name(result)
            _dicom_object(
                "pm",
                stack,
                out,
                partial(write_parametric_map, stack, volume, stored, card, path, what=what, sources=sources),
            )
    if "sr" in formats:  # after the SEG, so that its findings can reference their segments
        from inference.batch.sr_writer import write_findings_sr

        seg_path = stack_dir / "seg.dcm" if "seg.dcm" in out.files else None
        path = stack_dir / "findings-sr.dcm"
        _dicom_object(
            "sr",
            stack,
            out,
            partial(
                write_findings_sr,
                stack,
                volume,
                result,
                card,
                path,
                seg_path=seg_path,
                label_map=labels,
                sources=sources,
            ),
        )
    if "findings" in formats:
        doc = findings_document(stack, volume, result, card, identity, labels)
        atomic_write(stack_dir / "findings.json", json.dumps(doc, indent=1, allow_nan=False) + "\n")
        out.files.append("findings.json")
    keys: list[Path] = []
    if "key-images" in formats or "pdf" in formats:
        from inference.batch.key_images import write_key_images

        keys = write_key_images(volume, result, stack_dir, card=card, count=key_image_count, label_map=labels)
        if "key-images" in formats:
            out.files.extend(p.name for p in keys)
    if "pdf" in formats:
        from inference.batch.pdf_report import write_pdf_report

        write_pdf_report(
            stack_dir / "report.pdf",
            study=_study_header(stack, volume, identity),
            card=card,
            result=result,
            key_images=keys,
            qa=list(volume.qa_warnings),
        )
        out.files.append("report.pdf")
        if "key-images" not in formats:
            for p in keys:
                p.unlink(missing_ok=True)
    return out


def _nifti(
    volume: Volume, voxels: npt.NDArray[Any], path: Path, out: StackOutputs, scale: tuple[float, float] | None = None
) -> None:
    from inference.io.nifti_writer import write_nifti

    if volume.slice_positions is not None:  # one affine would misplace the slices past a gap
        out.notes.append(f"{path.name}: the slices are not on a regular grid, which NIfTI cannot hold; not written")
        return
    write_nifti(volume.with_voxels(voxels), path, scale=scale)
    out.files.append(path.name)


#: Format → what its DICOM object is called in a note ("… no instances for a SEG to reference").
_DICOM_OBJECTS = {"seg": "a SEG", "pm": "a parametric map", "sr": "an SR"}


def _dicom_object(fmt: str, stack: Stack, out: StackOutputs, write: Callable[[], Path]) -> None:
    """``write()`` the DICOM object of format ``fmt`` (it returns the file's path); a note instead
    when the input is not DICOM or the writer says it cannot be made (:class:`OutputNotSupported`)."""
    from inference.batch.errors import OutputNotSupported

    if stack.kind != "dicom":
        what = _DICOM_OBJECTS[fmt]
        out.notes.append(f"{fmt}: the input is not DICOM, so there are no instances for {what} to reference")
        return
    try:
        path = write()
    except OutputNotSupported as exc:
        out.notes.append(f"{fmt}: {exc}")
        return
    out.files.append(path.name)
