"""``summary.csv`` and ``summary.json``: one row per stack, plus the files that were not analysed."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from inference import __version__
from inference.batch.identity import Identity
from inference.batch.plan import Job, Plan
from inference.engine.result import Result
from inference.io.atomic import atomic_write
from inference.io.paths import display_path
from inference.volume import Volume

#: Column order of summary.csv; identity columns come from the run's identity policy.
COLUMNS = (
    "folder", "status", "error", "source", "input", "patient", "patient_name", "patient_id", "study_uid", "series_uid",
    "study_date", "study_description", "series_description", "modality", "shape_ijk", "spacing_ijk_mm",
    "qa_warnings", "model", "model_version", "suitability", "input_warnings", "ood_score", "device", "study_score",
    "verdict", "findings", "largest_finding_ml", "total_findings_ml", "outputs", "notes", "load_s", "inference_s",
    "write_s", "resumed",
)  # fmt: skip

#: ``refused``: the input check found the stack unsuitable for the model (and --force was not given).
OK, FAILED, SKIPPED, UNREADABLE, REFUSED = "ok", "failed", "skipped", "unreadable", "refused"


def _source(job: Job, identity: Identity) -> str:
    if identity.anonymize:
        return ""
    return display_path(job.stack.paths[0]) if job.stack.kind == "file" else job.source


def base_row(job: Job, identity: Identity) -> dict[str, Any]:
    st = job.stack
    k, j, i = st.dimensions
    row: dict[str, Any] = {
        "folder": job.folder,
        "status": SKIPPED if job.card is None else "",
        "error": job.skip_reason,
        "source": _source(job, identity),
        # Where under the input argument the stack lies (a relative path: folder names are the
        # user's; left out with --anonymize, as the source is).
        "input": "" if identity.anonymize else job.input_path,
        **identity.study_fields(st),
        "modality": job.modality or st.modality,
        "shape_ijk": f"{i}x{j}x{k}",
        "qa_warnings": "; ".join(str(q) for q in st.qa),
        "model": job.card.name if job.card else "",
        "model_version": job.card.version if job.card else "",
    }
    if identity.anonymize:
        row.pop("series_description", None)
    return row


def result_row(
    row: dict[str, Any], volume: Volume, result: Result, timings: dict[str, float], verdict: str = ""
) -> dict[str, Any]:
    sizes = [f.volume_ml for f in result.findings]
    row.update(
        suitability=result.suitability,
        input_warnings="; ".join(result.input_warnings),
        ood_score=None if result.ood_score is None else round(float(result.ood_score), 3),
        verdict=verdict,
        status=OK,
        error="",
        modality=volume.metadata.modality or row.get("modality", ""),
        spacing_ijk_mm="x".join(f"{s:.4g}" for s in volume.spacing),
        qa_warnings="; ".join(volume.qa_warnings),
        device=result.device,
        study_score=None if result.study_score is None else round(float(result.study_score), 5),
        findings=len(result.findings),
        largest_finding_ml=round(max(sizes), 4) if sizes else 0.0,
        total_findings_ml=round(sum(sizes), 4),
        **{f"{k}_s": round(v, 3) for k, v in timings.items()},
    )
    return row


def problem_rows(plan: Plan, identity: Identity) -> list[dict[str, Any]]:
    """Files that could not be read and objects that are not images, each with its reason."""
    rows: list[dict[str, Any]] = []
    for p in plan.problems:
        rows.append(
            {"status": UNREADABLE, "error": f"{p.error}: {p.reason}",
             "source": "" if identity.anonymize else display_path(p.path)}
        )  # fmt: skip
    for p in plan.not_dicom:
        rows.append(
            {"status": SKIPPED, "error": f"not DICOM or an image file: {p.reason}",
             "source": "" if identity.anonymize else display_path(p.path)}
        )  # fmt: skip
    for n in plan.non_image:
        rows.append(
            {"status": SKIPPED, "error": f"not an image ({n.modality or n.sop_class_uid})",
             "source": "" if identity.anonymize else display_path(n.path), "modality": n.modality,
             "series_uid": identity.uid(n.series_uid)}
        )  # fmt: skip
    for src, reason in plan.failed_inputs:
        rows.append({"status": FAILED, "error": reason, "source": "" if identity.anonymize else src})
    return rows


def write_summary(out_dir: Path, rows: list[dict[str, Any]], extra: dict[str, Any]) -> tuple[Path, Path]:
    """Both files, atomically; columns nobody filled are left out of the CSV."""
    used = [c for c in COLUMNS if any(r.get(c) not in (None, "") for r in rows)] or ["folder", "status"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=used, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: ("" if r.get(c) is None else r.get(c)) for c in used})
    csv_path = atomic_write(out_dir / "summary.csv", buf.getvalue())
    doc = {"radlens_version": __version__, **extra, "stacks": rows}
    json_path = atomic_write(out_dir / "summary.json", json.dumps(doc, indent=1, allow_nan=False) + "\n")
    return csv_path, json_path
