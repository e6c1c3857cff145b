"""The data-quality report of a dataset build: what was unreadable, duplicated, empty or contradictory.

The report is a plain JSON-ready dict saved into the dataset's manifest (``manifest["quality"]``)
and printed by ``radlens dataset build``::

    unreadable          inputs that could not be read, with path, error and reason (scan and load)
    not_images          files skipped because they are not images (count and a few paths)
    duplicates          the same voxels under two names: the later copy is left out
    label_conflicts     the same series UID or identical voxels with different labels: all copies left out
    near_empty_slices   slices skipped because (almost) all their pixels sit at the floor
    geometry_warnings   the loader's geometry QA (irregular spacing, gaps, tilt…) per source
    skipped_sources     sources left out for another reason (not greyscale, mask grid mismatch…)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.io.paths import display_path

#: A slice is near-empty when more than this fraction of its pixels lies at its floor.
NEAR_EMPTY_FRACTION = 0.95
#: Grey levels (of 255) above the floor still counted as "at the floor" (noise in air).
NEAR_EMPTY_TOLERANCE = 4
#: How many paths of a long list are kept in the report.
MAX_LISTED = 50


def voxel_hash(voxels: npt.NDArray[Any]) -> str:
    """SHA-256 of the voxel bytes with their shape and type: equal for the same pixels under any name."""
    arr = np.ascontiguousarray(voxels)
    h = hashlib.sha256()
    h.update(f"{arr.dtype.str}{arr.shape}".encode())
    h.update(memoryview(arr).cast("B"))  # type: ignore[arg-type]
    return h.hexdigest()


def is_near_empty(
    windowed: npt.NDArray[np.uint8],
    *,
    fraction: float = NEAR_EMPTY_FRACTION,
    tolerance: int = NEAR_EMPTY_TOLERANCE,
) -> bool:
    """Whether more than ``fraction`` of a windowed slice's pixels sit at its floor.

    The floor is the window floor (0) or, for wide windows where air is not black (the lung
    window maps −1000 HU to grey 59), the slice's own minimum: a slice of air only is empty
    in any window.
    """
    if windowed.size == 0:
        return True
    floor = int(windowed.min())
    return float(np.count_nonzero(windowed <= floor + tolerance)) > fraction * windowed.size


@dataclass
class QualityReport:
    """Collects findings while a dataset is built; :meth:`to_dict` gives the manifest's ``quality``."""

    unreadable: list[dict[str, str]] = field(default_factory=list)
    not_images: list[str] = field(default_factory=list)
    duplicates: list[dict[str, str]] = field(default_factory=list)
    label_conflicts: list[dict[str, Any]] = field(default_factory=list)
    near_empty: dict[str, int] = field(default_factory=dict)
    geometry_warnings: list[dict[str, Any]] = field(default_factory=list)
    skipped_sources: list[dict[str, str]] = field(default_factory=list)

    def add_unreadable(self, path: str, error: str, reason: str) -> None:
        entry = {"path": display_path(path), "error": error, "reason": reason}
        if entry not in self.unreadable:
            self.unreadable.append(entry)

    def add_not_image(self, path: str) -> None:
        self.not_images.append(display_path(path))

    def add_duplicate(self, kept: str, duplicate: str, digest: str) -> None:
        self.duplicates.append({"kept": kept, "duplicate": duplicate, "sha256": digest})

    def add_label_conflict(self, key: str, value: str, sources: list[str], labels: list[int]) -> None:
        self.label_conflicts.append({"by": key, "value": value, "sources": sources, "labels": labels})

    def add_near_empty(self, source: str, count: int = 1) -> None:
        self.near_empty[source] = self.near_empty.get(source, 0) + count

    def add_geometry_warnings(self, source: str, warnings: list[str]) -> None:
        if warnings:
            self.geometry_warnings.append({"source": source, "warnings": list(warnings)})

    def add_skipped(self, source: str, reason: str) -> None:
        self.skipped_sources.append({"source": source, "reason": reason})

    @property
    def near_empty_total(self) -> int:
        return sum(self.near_empty.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "unreadable": self.unreadable,
            "not_images": {"count": len(self.not_images), "paths": self.not_images[:MAX_LISTED]},
            "duplicates": self.duplicates,
            "label_conflicts": self.label_conflicts,
            "near_empty_slices": {"total": self.near_empty_total, "per_source": dict(self.near_empty)},
            "geometry_warnings": self.geometry_warnings,
            "skipped_sources": self.skipped_sources,
        }


def find_label_conflicts(
    entries: list[tuple[str, str, str, int]],
) -> tuple[list[dict[str, Any]], set[str]]:
    """Conflicts among ``(source, series_uid, voxel_hash, label)``: the same UID or voxels, different labels.

    Returns the conflicts (``by``: ``series_uid`` or ``pixels``) and the names of every source
    involved in one.
    """
    conflicts: list[dict[str, Any]] = []
    involved: set[str] = set()
    for key, index in (("series_uid", 1), ("pixels", 2)):
        groups: dict[str, list[tuple[str, int]]] = {}
        for entry in entries:
            value = str(entry[index])
            if value:
                groups.setdefault(value, []).append((entry[0], int(entry[3])))
        for value, members in groups.items():
            labels = sorted({lab for _, lab in members})
            if len(labels) > 1:
                names = [name for name, _ in members]
                conflicts.append({"by": key, "value": value, "sources": names, "labels": [lab for _, lab in members]})
                involved.update(names)
    return conflicts, involved


def format_report(quality: dict[str, Any]) -> str:
    """Human-readable lines of a report made by :meth:`QualityReport.to_dict`."""
    lines = ["data quality:"]
    unreadable = quality.get("unreadable", [])
    lines.append(f"  unreadable inputs: {len(unreadable)}")
    lines.extend(f"    {u['path']}: {u['error']}: {u['reason']}" for u in unreadable)
    not_images = quality.get("not_images", {}).get("count", 0)
    if not_images:
        lines.append(f"  files that are not images (skipped): {not_images}")
    dups = quality.get("duplicates", [])
    lines.append(f"  duplicates (same voxels, left out): {len(dups)}")
    lines.extend(f"    {d['duplicate']} = {d['kept']}" for d in dups)
    conflicts = quality.get("label_conflicts", [])
    lines.append(f"  label conflicts (left out): {len(conflicts)}")
    for c in conflicts:
        pairs = zip(c["sources"], c["labels"], strict=False)
        lines.append(f"    same {c['by']}: " + ", ".join(f"{s} (label {lab})" for s, lab in pairs))
    near = quality.get("near_empty_slices", {})
    lines.append(f"  near-empty slices (skipped): {near.get('total', 0)}")
    lines.extend(f"    {name}: {count}" for name, count in near.get("per_source", {}).items())
    geo = quality.get("geometry_warnings", [])
    lines.append(f"  geometry warnings: {len(geo)}")
    lines.extend(f"    {g['source']}: {'; '.join(g['warnings'])}" for g in geo)
    skipped = quality.get("skipped_sources", [])
    if skipped:
        lines.append(f"  other sources left out: {len(skipped)}")
        lines.extend(f"    {s['source']}: {s['reason']}" for s in skipped)
    return "\n".join(lines)
