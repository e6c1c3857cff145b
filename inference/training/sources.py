"""The volumes a slice dataset is made from, before slicing: :class:`SourceVolume`, and the
sources found in folders of scans (labelled by name) or named by a labels CSV.

Folders or files give everything the loader reads (every image stack a scan finds, NIfTI, NRRD,
MetaImage), labelled by name as in the literature's example: a path component named ``normal``
gives label 0, anything else 1, applied to every slice of the volume. A labels CSV has columns
``path`` or ``series_uid``, ``label`` (0/1) and optionally ``mask`` (a lesion mask on the scan's
grid; then a slice is positive where the mask crosses it). Generated sources live in
:mod:`inference.training.phantom_sources` and :mod:`inference.training.pseudo_ct`.
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.errors import GeometryWarning, LoadError
from inference.io.paths import display_path
from inference.io.stacks import Stack
from inference.progress import CancelToken
from inference.training.dataset_format import DatasetError
from inference.training.quality import QualityReport
from inference.volume import Volume

__all__ = [
    "CsvRow",
    "SourceVolume",
    "label_from_name",
    "load_mask",
    "read_labels_csv",
    "sources_from_csv",
    "sources_from_folders",
    "stack_loader",
]


@dataclass
class SourceVolume:
    """One volume of the dataset before slicing.

    ``label``: whole-volume label (0/1), or ``None`` when ``mask`` decides per slice.
    ``region``: where simulated lesions may go (``None``: :func:`lesions.default_region`).
    """

    name: str
    load: Callable[[], Volume]
    label: int | None
    path: str = ""
    series_uid: str = ""
    mask_path: str = ""
    mask: npt.NDArray[np.uint8] | None = None
    region: Callable[[Volume], npt.NDArray[np.bool_]] | None = None
    mask_of: Callable[[Volume], npt.NDArray[np.uint8]] | None = None
    host: bool = True
    info: dict[str, Any] = field(default_factory=dict)


def label_from_name(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> int:
    """0 when a path component (from ``root``'s own name down) is named ``normal``, else 1."""
    p = Path(path)
    if root is not None:
        r = Path(root)
        try:
            parts = (r.name, *p.relative_to(r).parts)
        except ValueError:
            parts = p.parts
    else:
        parts = p.parts
    from inference.io.image_file import IMAGE_SUFFIXES

    names = []
    for part in parts:
        low = part.lower()
        for suffix in IMAGE_SUFFIXES:
            if low.endswith(suffix):
                low = low[: -len(suffix)]
                break
        names.append(low)
    return 0 if "normal" in names else 1


@dataclass(frozen=True)
class CsvRow:
    line: int
    path: str
    series_uid: str
    label: int
    mask: str


def _cell(row: dict[str | Any, str | Any], fields: dict[str, str], key: str) -> str:
    if key not in fields:
        return ""
    value = row.get(fields[key])
    return value.strip() if isinstance(value, str) else ""


def read_labels_csv(path: str | os.PathLike[str]) -> list[CsvRow]:
    """Rows of a labels CSV (``path`` or ``series_uid``, ``label``, optional ``mask``).

    Relative paths are taken from the CSV's folder. Files that do not exist, bad labels and
    missing columns raise one :class:`DatasetError` listing every problem.
    """
    csv_path = Path(path)
    if not csv_path.is_file():
        raise DatasetError(f"{display_path(csv_path)}: labels CSV not found")
    base = csv_path.parent
    with open(csv_path, newline="", encoding="utf-8-sig") as fp:
        reader = csv.DictReader(fp)
        fields = {(f or "").strip().lower(): f for f in (reader.fieldnames or [])}
        if "label" not in fields or not ({"path", "series_uid"} & fields.keys()):
            raise DatasetError(
                f"{display_path(csv_path)}: a labels CSV needs a 'label' column and a 'path' or 'series_uid' column "
                f"(found: {', '.join(fields) or 'none'})"
            )
        mask_col = fields.get("mask") or fields.get("mask_path")
        rows: list[CsvRow] = []
        problems: list[str] = []
        missing: list[str] = []
        for n, raw in enumerate(reader, start=2):
            rel, uid, label_text = (_cell(raw, fields, key) for key in ("path", "series_uid", "label"))
            mask_rel = (raw.get(mask_col) or "").strip() if mask_col else ""
            if not rel and not uid:
                if any((v or "").strip() for v in raw.values() if isinstance(v, str)):
                    problems.append(f"line {n}: neither path nor series_uid")
                continue
            try:
                label = int(float(label_text))
                if label not in (0, 1):
                    raise ValueError
            except ValueError:
                problems.append(f"line {n}: label must be 0 or 1, got {label_text!r}")
                continue
            full = str(base / rel) if rel else ""
            mask_full = str(base / mask_rel) if mask_rel else ""
            for p in (full, mask_full):
                if p and not os.path.exists(p):
                    missing.append(display_path(p))
            rows.append(CsvRow(n, full, uid, label, mask_full))
    if missing:
        raise DatasetError(
            f"{display_path(csv_path)} names {len(missing)} file(s) that do not exist: " + ", ".join(missing)
        )
    if problems:
        raise DatasetError(f"{display_path(csv_path)}: " + "; ".join(problems))
    if not rows:
        raise DatasetError(f"{display_path(csv_path)}: no rows")
    return rows


def _stack_name(stack: Stack, shared_dirs: dict[str, int]) -> str:
    if stack.kind == "file":
        return display_path(stack.file_path)
    folder = os.path.commonpath(stack.paths) if len(stack.paths) > 1 else os.path.dirname(stack.paths[0])
    name = display_path(folder)
    if shared_dirs.get(folder, 0) > 1:
        name += f"#series{stack.series_number}-stack{stack.id}"
    return name


def _stack_folder(stack: Stack) -> str:
    if stack.kind == "file":
        return stack.file_path
    return os.path.commonpath(stack.paths) if len(stack.paths) > 1 else os.path.dirname(stack.paths[0])


def stack_loader(stack: Stack) -> Callable[[], Volume]:
    """Loads ``stack`` when called (geometry QA kept in ``volume.qa_warnings``, not warned)."""

    def load() -> Volume:
        from inference.io.dicom_loader import load_stack

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", GeometryWarning)  # the QA travels in volume.qa_warnings
            return load_stack(stack)

    return load


def _scan_stacks(path: str, quality: QualityReport, cancel: CancelToken) -> list[Stack]:
    from inference.io.scan import scan

    result = scan(path, cancel=cancel)
    for problem in result.errors:
        quality.add_unreadable(problem.path, problem.error, problem.reason)
    for problem in result.not_dicom:
        if problem.path.lower().endswith((".csv", ".txt", ".md", ".json")):
            quality.add_not_image(problem.path)
        else:
            quality.add_unreadable(problem.path, problem.error, problem.reason)
    return result.stacks()


def sources_from_folders(
    inputs: Sequence[str | os.PathLike[str]], quality: QualityReport, cancel: CancelToken | None = None
) -> list[SourceVolume]:
    """Every image stack under ``inputs``, labelled by name (:func:`label_from_name`)."""
    cancel = cancel or CancelToken()
    out: list[SourceVolume] = []
    for root in inputs:
        stacks = _scan_stacks(os.fspath(root), quality, cancel)
        dirs: dict[str, int] = {}
        for st in stacks:
            dirs[_stack_folder(st)] = dirs.get(_stack_folder(st), 0) + 1
        for st in stacks:
            folder = _stack_folder(st)
            out.append(
                SourceVolume(
                    name=_stack_name(st, dirs),
                    load=stack_loader(st),
                    label=label_from_name(folder, root),
                    path=display_path(folder),
                    series_uid=st.series_uid,
                )
            )
    return out


def sources_from_csv(
    csv_path: str | os.PathLike[str],
    inputs: Sequence[str | os.PathLike[str]],
    quality: QualityReport,
    cancel: CancelToken | None = None,
) -> list[SourceVolume]:
    """The volumes a labels CSV names, by path or by series UID (searched for in ``inputs``)."""
    cancel = cancel or CancelToken()
    rows = read_labels_csv(csv_path)
    out: list[SourceVolume] = []
    by_uid: dict[str, list[Stack]] = {}
    if any(r.series_uid and not r.path for r in rows):
        if not inputs:
            raise DatasetError("the labels CSV names series UIDs: give the folders that hold them as inputs")
        for root in inputs:
            for st in _scan_stacks(os.fspath(root), quality, cancel):
                if st.series_uid:
                    by_uid.setdefault(st.series_uid, []).append(st)
        unknown = [r.series_uid for r in rows if r.series_uid and not r.path and r.series_uid not in by_uid]
        if unknown:
            raise DatasetError(
                f"the labels CSV names {len(unknown)} series UID(s) found in no input: " + ", ".join(unknown)
            )
    for row in rows:
        stacks = by_uid[row.series_uid] if row.series_uid and not row.path else _scan_stacks(row.path, quality, cancel)
        if not stacks:
            quality.add_skipped(display_path(row.path or row.series_uid), f"CSV line {row.line}: no image found")
            continue
        dirs: dict[str, int] = {}
        for st in stacks:
            dirs[_stack_folder(st)] = dirs.get(_stack_folder(st), 0) + 1
        for st in stacks:
            out.append(
                SourceVolume(
                    name=_stack_name(st, dirs),
                    load=stack_loader(st),
                    label=row.label,
                    path=display_path(_stack_folder(st)),
                    series_uid=st.series_uid,
                    mask_path=row.mask,
                    host=row.label == 0 or bool(row.mask),  # a mask says where its lesions are
                    info={"csv_line": row.line},
                )
            )
    return out


def load_mask(path: str, volume: Volume) -> npt.NDArray[np.uint8]:
    """A lesion mask a labels CSV names, as 0/1 on ``volume``'s grid (another grid is a :class:`LoadError`)."""
    from inference.io.scan import scan

    stacks = scan(path).stacks()
    if not stacks:
        raise LoadError(path, "no image in the mask file or folder")
    mask_volume = stack_loader(stacks[0])()
    if mask_volume.shape != volume.shape or not np.allclose(mask_volume.affine, volume.affine, atol=0.05):
        raise LoadError(
            path,
            f"mask grid {mask_volume.shape} does not match the scan's {volume.shape} (or lies elsewhere in space)",
        )
    return (np.asarray(mask_volume.voxels) > 0).astype(np.uint8)
