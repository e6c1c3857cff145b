"""Grouping DICOM headers into studies → series → stacks, sorted along the slice normal."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from inference.io.dicom_record import DicomHeader, FrameGeometry
from inference.io.geometry_qa import QACode, QAIssue, check_stack_geometry, median, slice_normal


@dataclass(frozen=True)
class SliceRef:
    """One 2-D slice of a stack: which file, which frame in it, and where it lies."""

    header_index: int
    frame_index: int
    geometry: FrameGeometry


@dataclass(frozen=True)
class Stack:
    """A set of slices forming one image grid; the unit a viewer opens."""

    id: str
    kind: str  # "dicom" or "file"
    modality: str
    study_uid: str
    series_uid: str
    series_number: int
    description: str
    rows: int
    columns: int
    headers: tuple[DicomHeader, ...] = ()
    slices: tuple[SliceRef, ...] = ()
    qa: tuple[QAIssue, ...] = ()
    file_path: str = ""
    file_shape: tuple[int, ...] = ()
    pixel_spacing: tuple[float, float] | None = None

    @property
    def n_slices(self) -> int:
        if self.kind == "file":
            return self.file_shape[0] if self.file_shape else 0
        return len(self.slices)

    @property
    def dimensions(self) -> tuple[int, int, int]:
        """``(slices, rows, columns)``."""
        if self.kind == "file":
            k, j, i = (*self.file_shape, 1, 1, 1)[:3]
            return (k, j, i)
        return (self.n_slices, self.rows, self.columns)

    @property
    def slice_spacing(self) -> float | None:
        if len(self.slices) < 2 or any(s.geometry.position is None for s in self.slices):
            return None
        pos = np.array([s.geometry.position for s in self.slices], dtype=np.float64)
        orient = self.slices[0].geometry.orientation
        if orient is None:
            return None
        along = np.diff(pos @ slice_normal(orient))
        along = along[np.abs(along) > 1e-3]
        return float(median(along)) if len(along) else None

    @property
    def paths(self) -> list[str]:
        if self.kind == "file":
            return [self.file_path]
        return [h.path for h in self.headers]

    def summary(self) -> dict[str, object]:
        """A JSON-ready description without patient identifiers."""
        return {
            "id": self.id,
            "kind": self.kind,
            "modality": self.modality,
            "series_number": self.series_number,
            "series_uid": self.series_uid,
            "description": self.description,
            "slices": self.n_slices,
            "dimensions": list(self.dimensions),
            "pixel_spacing": list(self.pixel_spacing) if self.pixel_spacing else None,
            "slice_spacing": self.slice_spacing,
            "qa": [str(q) for q in self.qa],
        }


@dataclass
class Series:
    uid: str
    number: int
    modality: str
    description: str
    stacks: list[Stack] = field(default_factory=list)


@dataclass
class Study:
    uid: str
    description: str
    date: str
    patient_name: str
    patient_id: str
    series: list[Series] = field(default_factory=list)


@lru_cache(maxsize=256)
def _rounded(
    orientation: tuple[float, ...] | None, spacing: tuple[float, float] | None, image_type: tuple[str, ...]
) -> tuple[object, ...]:
    orient = tuple(round(v, 2) for v in orientation) if orientation else None
    rounded_spacing = tuple(round(v, 3) for v in spacing) if spacing else None
    return orient, rounded_spacing, tuple(t.upper() for t in image_type[2:3])  # AXIAL / LOCALIZER / REFORMATTED ...


def _stack_key(h: DicomHeader) -> tuple[object, ...]:
    g = h.frames[0]
    orient, spacing, image_type = _rounded(g.orientation, g.pixel_spacing, h.image_type)
    # A slice without a usable position (absent, NaN, absurd) cannot share a stack with placed ones.
    placed = g.position is not None
    return (orient, spacing, h.rows, h.columns, image_type, h.echo_number, h.samples_per_pixel, h.photometric, placed)


def _sorted_slices(headers: list[DicomHeader]) -> tuple[list[DicomHeader], list[SliceRef]]:
    refs = [SliceRef(hi, f.frame_index, f) for hi, h in enumerate(headers) for f in h.frames]
    geo = [r.geometry for r in refs]
    if all(g.position is not None and g.orientation is not None for g in geo):
        normal = slice_normal(geo[0].orientation)  # type: ignore[arg-type]
        keys = [float(np.dot(g.position, normal)) for g in geo]  # type: ignore[arg-type]
        order = sorted(
            range(len(refs)), key=lambda n: (keys[n], headers[refs[n].header_index].path, refs[n].frame_index)
        )
        refs = [refs[n] for n in order]
    else:
        # No geometry: file order by instance number is the only information left.
        refs.sort(key=lambda r: (headers[r.header_index].instance_number, headers[r.header_index].path, r.frame_index))
    return headers, refs


def _qa(headers: list[DicomHeader], refs: list[SliceRef]) -> list[QAIssue]:
    geo = [r.geometry for r in refs]
    if any(g.position is None or g.orientation is None for g in geo):
        return [QAIssue(QACode.NO_GEOMETRY, "position or orientation missing: the slices cannot be placed in space")]
    positions = np.array([g.position for g in geo], dtype=np.float64)
    orientations = [g.orientation for g in geo if g.orientation is not None]
    rescales = [(g.slope, g.intercept) for g in geo]
    issues = check_stack_geometry(positions, orientations, rescales)
    if len(refs) == 1:
        issues.append(QAIssue(QACode.SINGLE_SLICE, "a single slice: no slice spacing"))
    return issues


def _typical(members: list[DicomHeader]) -> DicomHeader:
    """The first header with the most common modality: one odd file does not decide a series' modality."""
    counts = Counter(h.modality for h in members)
    top = max(counts.values())
    return next(h for h in members if counts[h.modality] == top)


def build_studies(headers: list[DicomHeader]) -> list[Study]:
    """Group image headers into studies, series and stacks; stack ids are 1, 2, … in display order."""
    by_series: dict[tuple[str, str], list[DicomHeader]] = defaultdict(list)
    for h in headers:
        by_series[(h.study_uid, h.series_uid)].append(h)
    studies: dict[str, Study] = {}
    ordered = sorted(
        by_series.items(),
        key=lambda kv: (kv[1][0].study_date, kv[0][0], kv[1][0].series_number, kv[0][1]),
    )
    next_id = 1
    for (study_uid, series_uid), members in ordered:
        first = _typical(members)
        study = studies.get(study_uid)
        if study is None:
            study = Study(study_uid, first.study_description, first.study_date, first.patient_name, first.patient_id)
            studies[study_uid] = study
        series = Series(series_uid, first.series_number, first.modality, first.series_description)
        groups: dict[tuple[object, ...], list[DicomHeader]] = defaultdict(list)
        for h in sorted(members, key=lambda h: h.path):
            # A multi-frame object is a stack of its own.
            key = ("multiframe", h.path) if h.is_multiframe else _stack_key(h)
            groups[key].append(h)
        for group in sorted(groups.values(), key=lambda g: (-len(g), g[0].path)):
            hs, refs = _sorted_slices(group)
            g0 = refs[0].geometry
            series.stacks.append(
                Stack(
                    id=str(next_id),
                    kind="dicom",
                    modality=_typical(hs).modality,
                    study_uid=study_uid,
                    series_uid=series_uid,
                    series_number=first.series_number,
                    description=first.series_description,
                    rows=hs[0].rows,
                    columns=hs[0].columns,
                    headers=tuple(hs),
                    slices=tuple(refs),
                    qa=tuple(_qa(hs, refs)),
                    pixel_spacing=g0.pixel_spacing,
                )
            )
            next_id += 1
        study.series.append(series)
    return list(studies.values())
