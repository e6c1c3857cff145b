"""Grouping DICOM headers into studies → series → stacks, sorted along the slice normal."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np

from inference import errors
from inference.io.acquisition_keys import FrameKeys, component_of, read_frame_keys
from inference.io.dicom_record import DicomHeader, FrameGeometry
from inference.io.geometry_qa import QACode, QAIssue, check_stack_geometry, median, slice_normal
from inference.io.mosaic import is_mosaic, mosaic_layout, tile_geometries
from inference.io.volume_grouping import SeparateAcquisitions, group_volumes, has_shared_positions
from inference.volume import VolumeFrame


@dataclass(frozen=True)
class SliceRef:
    """One 2-D slice of a stack: which file, which frame in it, and where it lies."""

    header_index: int
    frame_index: int
    geometry: FrameGeometry
    tile: int | None = None  # the Siemens mosaic tile this slice is cut from


@dataclass(frozen=True)
class Stack:
    """A set of slices forming one image grid; the unit a viewer opens.

    A 4-D acquisition is one stack: ``slices`` hold volume 0's slices sorted along the normal,
    then volume 1's at the same positions, and so on; ``volume_frames`` says what each volume is.
    A stack that cannot be loaded as it is (slices at one position with nothing to tell them
    apart, an incomplete 4-D series, a mosaic without its slice count) is still listed, with
    ``refusal`` saying why; :meth:`raise_if_refused` raises the typed error.
    """

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
    #: What each volume of a 4-D acquisition is; empty for a 3-D stack.
    volume_frames: tuple[VolumeFrame, ...] = ()
    #: Tiles per side when the slices are cut from Siemens mosaics; 0 otherwise.
    mosaic_side: int = 0
    #: ``(LoadError subclass name, reason)`` when the stack cannot be loaded as it is.
    refusal: tuple[str, str] | None = None

    @property
    def n_volumes(self) -> int:
        """Volumes along the fourth axis (1 for a 3-D stack)."""
        return max(len(self.volume_frames), 1)

    @property
    def is_4d(self) -> bool:
        return len(self.volume_frames) > 1

    @property
    def fourth_axis(self) -> str | None:
        """``"time"``, ``"diffusion"``, ``"echo"`` or ``"dimension"`` for a 4-D stack, else ``None``."""
        return self.volume_frames[0].axis.value if self.volume_frames else None

    @property
    def is_mosaic(self) -> bool:
        """Whether the slices come from Siemens mosaic images (de-mosaiced at load)."""
        return self.mosaic_side > 0

    def raise_if_refused(self) -> None:
        """Raise the typed :class:`~inference.errors.LoadError` this stack was refused with, if any."""
        if self.refusal is None:
            return
        name, reason = self.refusal
        from inference.io import mosaic

        found = getattr(errors, name, None) or getattr(mosaic, name, None)
        cls: type[errors.LoadError] = (
            found if isinstance(found, type) and issubclass(found, errors.LoadError) else errors.LoadError
        )
        path = self.headers[0].path if self.headers else None
        raise cls(path, f"stack {self.id}: {reason}")

    @property
    def n_slices(self) -> int:
        """Slices of one volume."""
        if self.kind == "file":
            return self.file_shape[0] if self.file_shape else 0
        return len(self.slices) // self.n_volumes

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
        pos = np.array([s.geometry.position for s in self.slices[: self.n_slices]], dtype=np.float64)
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
            "volumes": self.n_volumes,
            "fourth_axis": self.fourth_axis,
            "mosaic": self.is_mosaic,
            "refused": None if self.refusal is None else f"{self.refusal[0]}: {self.refusal[1]}",
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
    # Magnitude and phase (real, imaginary) images of one series lie at the same positions:
    # never one stack (dcm2niix splits them too), wherever the vendor puts the letter.
    component = component_of(h.image_type)
    mosaic = is_mosaic(h)
    # A slice without a usable position (absent, NaN, absurd) cannot share a stack with placed ones.
    placed = g.position is not None
    return (
        orient, spacing, h.rows, h.columns, image_type, component, mosaic,
        h.echo_number, h.samples_per_pixel, h.photometric, placed,
    )  # fmt: skip


def _sort_refs(headers: Sequence[DicomHeader], refs: list[SliceRef]) -> list[SliceRef]:
    geo = [r.geometry for r in refs]
    if all(g.position is not None and g.orientation is not None for g in geo):
        normal = slice_normal(geo[0].orientation)  # type: ignore[arg-type]
        keys = [float(np.dot(g.position, normal)) for g in geo]  # type: ignore[arg-type]
        order = sorted(
            range(len(refs)), key=lambda n: (keys[n], headers[refs[n].header_index].path, refs[n].frame_index)
        )
        return [refs[n] for n in order]
    # No geometry: file order by instance number is the only information left.
    return sorted(
        refs, key=lambda r: (headers[r.header_index].instance_number, headers[r.header_index].path, r.frame_index)
    )


def _sorted_slices(headers: list[DicomHeader]) -> tuple[list[DicomHeader], list[SliceRef]]:
    refs = [SliceRef(hi, f.frame_index, f) for hi, h in enumerate(headers) for f in h.frames]
    return headers, _sort_refs(headers, refs)


def _qa(headers: Sequence[DicomHeader], refs: Sequence[SliceRef]) -> list[QAIssue]:
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


@dataclass
class _Candidate:
    """Slices that may form one stack (3-D or 4-D), before the 4-D check."""

    headers: list[DicomHeader]
    refs: list[SliceRef]
    keys: list[FrameKeys] | None = None  # per ref, when already read (multi-frame objects)
    notes: list[QAIssue] = field(default_factory=list)
    refusal: tuple[str, str] | None = None
    per_file: bool = False  # multi-frame files that each hold one whole volume


def _merge_volume_files(candidates: list[_Candidate]) -> list[_Candidate]:
    """Enhanced objects of one series that each hold one whole volume at the same positions (Siemens
    XA writes a file per volume of an fMRI or diffusion run) become one candidate, one file a volume."""
    groups: dict[tuple[object, ...], list[_Candidate]] = defaultdict(list)
    out: list[_Candidate] = []
    for c in candidates:
        along = _along(c.refs)
        if along is None or len(c.headers) != 1 or has_shared_positions(along):
            out.append(c)
            continue
        h, g = c.headers[0], c.refs[0].geometry
        orient, spacing, _ = _rounded(g.orientation, g.pixel_spacing, ())
        component = c.keys[0].component if c.keys else component_of(h.image_type)
        te = c.keys[0].echo_time if c.keys else None
        positions = tuple(np.round(np.sort(along), 2).tolist())
        groups[(orient, spacing, h.rows, h.columns, component, te, positions)].append(c)
    for members in groups.values():
        paths = {m.headers[0].path for m in members}
        if len(members) == 1 or len(paths) != len(members):
            out.extend(members)
            continue
        headers = [m.headers[0] for m in members]
        refs = [replace(r, header_index=hi) for hi, m in enumerate(members) for r in m.refs]
        keys = [k for m in members for k in (m.keys or [])] if all(m.keys for m in members) else None
        out.append(_Candidate(headers, refs, keys, per_file=True))
    return out


def _keys_of(c: _Candidate) -> list[FrameKeys]:
    """Each ref's acquisition keys, reading each file once."""
    if c.keys is not None:
        return c.keys
    read: dict[int, tuple[FrameKeys, ...]] = {}
    out = []
    for r in c.refs:
        if r.header_index not in read:
            read[r.header_index] = read_frame_keys(c.headers[r.header_index])
        out.append(read[r.header_index][r.frame_index])
    return out


def _dedupe(headers: list[DicomHeader]) -> _Candidate:
    """One candidate of single-frame files; copies of one instance (same SOP Instance UID) kept once."""
    seen: set[str] = set()
    kept: list[DicomHeader] = []
    for h in headers:
        if h.sop_instance_uid and h.sop_instance_uid in seen:
            continue
        seen.add(h.sop_instance_uid)
        kept.append(h)
    notes = []
    if len(kept) < len(headers):
        notes.append(
            QAIssue(
                QACode.DUPLICATE_FILES, f"{len(headers) - len(kept)} file(s) repeat an instance already read: ignored"
            )
        )
    refs = [SliceRef(hi, f.frame_index, f) for hi, h in enumerate(kept) for f in h.frames]
    return _Candidate(kept, refs, None, notes)


def _split_multiframe(h: DicomHeader) -> list[_Candidate]:
    """An enhanced multi-frame object split by frame type (magnitude, phase…), stack, echo and plane."""
    refs = [SliceRef(0, f.frame_index, f) for f in h.frames]
    along = _along(refs)
    planes = {_rounded(f.orientation, f.pixel_spacing, ())[:2] for f in h.frames}
    if along is not None and len(planes) == 1 and not has_shared_positions(along):
        return [_Candidate([h], refs)]  # one plain volume: its frames need no telling apart
    try:
        keys = list(read_frame_keys(h))
    except errors.LoadError:
        return [_Candidate([h], refs)]
    groups: dict[tuple[object, ...], list[int]] = defaultdict(list)
    for n, (ref, k) in enumerate(zip(refs, keys, strict=True)):
        orient, spacing, _ = _rounded(ref.geometry.orientation, ref.geometry.pixel_spacing, ())
        te = None if k.echo_time is None else round(k.echo_time, 3)
        groups[(orient, spacing, k.component, k.stack_id or "", te)].append(n)
    if len(groups) == 1:
        return [_Candidate([h], refs, keys)]
    return [_Candidate([h], [refs[n] for n in m], [keys[n] for n in m]) for m in groups.values()]


def _along(refs: Sequence[SliceRef]) -> np.ndarray | None:  # type: ignore[type-arg]
    geo = [r.geometry for r in refs]
    if not geo or any(g.position is None or g.orientation is None for g in geo):
        return None
    normal = slice_normal(geo[0].orientation)  # type: ignore[arg-type]
    return np.array([g.position for g in geo], dtype=np.float64) @ normal


@dataclass(frozen=True)
class _Shape:
    """What :func:`_four_d` decided: slices in order, volumes, the mosaic grid, notes or a refusal."""

    slices: list[SliceRef]
    frames: tuple[VolumeFrame, ...] = ()
    mosaic_side: int = 0
    rows: int = 0
    columns: int = 0
    notes: tuple[QAIssue, ...] = ()
    refusal: tuple[str, str] | None = None


def _demosaic(c: _Candidate) -> _Shape:
    keys = [read_frame_keys(h)[0] for h in c.headers]
    layouts = {mosaic_layout(h, k) for h, k in zip(c.headers, keys, strict=True)}
    if len(layouts) > 1:
        raise errors.InconsistentStackError(c.headers[0].path, "mosaics of one series hold different tile grids")
    (_, side, rows, columns) = layouts.pop()
    refs: list[SliceRef] = []
    files: list[int] = []
    tile_keys: list[FrameKeys] = []
    for hi, (h, k) in enumerate(zip(c.headers, keys, strict=True)):
        for t, g in enumerate(tile_geometries(h, k)):
            refs.append(SliceRef(hi, 0, g, t))
            files.append(hi)
            tile_keys.append(k)
    along = _along(refs)
    assert along is not None  # tile_geometries places every tile
    grouping = group_volumes(tile_keys, along, files=files, where=c.headers[0].path)
    slices = [refs[n] for m in grouping.volumes for n in m]
    frames = grouping.frames if len(grouping.volumes) > 1 else ()
    return _Shape(slices, frames, side, rows, columns, tuple(grouping.notes))


def _four_d(c: _Candidate) -> list[_Shape]:
    """The candidate as a 3-D stack, a 4-D stack, a refusal, or (acquisitions over different
    ranges) several 3-D stacks; see :mod:`inference.io.volume_grouping`."""
    h0 = c.headers[0]
    try:
        if not h0.is_multiframe and is_mosaic(h0):
            return [_demosaic(c)]
        along = _along(c.refs)
        if along is None or not has_shared_positions(along):
            return [_Shape(_sort_refs(c.headers, c.refs), rows=h0.rows, columns=h0.columns)]
        keys = _keys_of(c)
        components = sorted({k.component for k in keys})
        if len(components) > 1:  # magnitude and phase told apart only by a private tag (GE)
            parts = [[n for n, k in enumerate(keys) if k.component == part] for part in components]
            return [
                shape
                for part in parts
                for shape in _four_d(_Candidate(c.headers, [c.refs[n] for n in part], [keys[n] for n in part]))
            ]
        files = [r.header_index for r in c.refs] if c.per_file else None
        grouping = group_volumes(keys, along, files=files, where=h0.path)
    except SeparateAcquisitions as split:
        note = QAIssue(
            QACode.SEPARATE_ACQUISITIONS,
            f"one of {len(split.groups)} acquisitions (by {split.key_name} number) over partly different "
            "positions: a stack of its own",
        )
        return [
            _Shape(_sort_refs(c.headers, [c.refs[n] for n in group]), rows=h0.rows, columns=h0.columns, notes=(note,))
            for group in sorted(split.groups, key=lambda g: min(c.refs[n].header_index for n in g))
        ]
    except errors.LoadError as exc:
        refusal = (type(exc).__name__, exc.reason)
        return [_Shape(_sort_refs(c.headers, c.refs), rows=h0.rows, columns=h0.columns, refusal=refusal)]
    slices = [c.refs[n] for m in grouping.volumes for n in m]
    frames = grouping.frames if len(grouping.volumes) > 1 else ()
    return [_Shape(slices, frames, 0, h0.rows, h0.columns, tuple(grouping.notes))]


def _own_headers(
    headers: Sequence[DicomHeader], slices: Sequence[SliceRef]
) -> tuple[list[DicomHeader], list[SliceRef]]:
    """Only the headers ``slices`` use (a candidate split in several stacks), the slices re-pointed."""
    used = sorted({r.header_index for r in slices})
    if len(used) == len(headers):
        return list(headers), list(slices)
    new_index = {old: new for new, old in enumerate(used)}
    return [headers[i] for i in used], [replace(r, header_index=new_index[r.header_index]) for r in slices]


def build_studies(headers: list[DicomHeader]) -> list[Study]:
    """Group image headers into studies, series and stacks; stack ids are 1, 2, … in display order.

    A series is one SeriesInstanceUID *and* SeriesNumber (files sharing a UID but not a number are
    split, as dcm2niix splits them). Within it, slices of one grid (orientation, spacing, size,
    image kind, magnitude/phase, echo) form a stack; an enhanced multi-frame object is split by
    frame type, stack and echo. Slices sharing positions form a 4-D stack or a refused one.
    """
    by_series: dict[tuple[str, str, int], list[DicomHeader]] = defaultdict(list)
    for h in headers:
        by_series[(h.study_uid, h.series_uid, h.series_number)].append(h)
    studies: dict[str, Study] = {}
    ordered = sorted(
        by_series.items(),
        key=lambda kv: (kv[1][0].study_date, kv[0][0], kv[0][2], kv[0][1]),
    )
    next_id = 1
    for (study_uid, series_uid, _), members in ordered:
        first = _typical(members)
        study = studies.get(study_uid)
        if study is None:
            study = Study(study_uid, first.study_description, first.study_date, first.patient_name, first.patient_id)
            studies[study_uid] = study
        series = Series(series_uid, first.series_number, first.modality, first.series_description)
        groups: dict[tuple[object, ...], list[DicomHeader]] = defaultdict(list)
        multiframe: list[_Candidate] = []
        for h in sorted(members, key=lambda h: h.path):
            if h.is_multiframe:
                multiframe.extend(_split_multiframe(h))
            else:
                groups[_stack_key(h)].append(h)
        candidates = _merge_volume_files(multiframe)
        candidates.extend(_dedupe(g) for g in groups.values())
        candidates.sort(key=lambda c: (-len(c.refs), c.headers[0].path, c.refs[0].frame_index))
        shapes = [(c, shape) for c in candidates for shape in _four_d(c)]
        for cand, shape in shapes:
            own_headers, own_slices = _own_headers(cand.headers, shape.slices)
            n_per_volume = len(own_slices) // max(len(shape.frames), 1)
            qa = [*cand.notes, *shape.notes, *_qa(own_headers, own_slices[:n_per_volume])]
            if shape.refusal is not None:
                qa = [issue for issue in qa if issue.code is not QACode.DUPLICATE_POSITIONS]
                qa.insert(0, QAIssue(QACode.REFUSED, shape.refusal[1]))
            g0 = own_slices[0].geometry
            series.stacks.append(
                Stack(
                    id=str(next_id),
                    kind="dicom",
                    modality=_typical(own_headers).modality,
                    study_uid=study_uid,
                    series_uid=series_uid,
                    series_number=first.series_number,
                    description=first.series_description,
                    rows=shape.rows,
                    columns=shape.columns,
                    headers=tuple(own_headers),
                    slices=tuple(own_slices),
                    qa=tuple(qa),
                    pixel_spacing=g0.pixel_spacing,
                    volume_frames=shape.frames,
                    mosaic_side=shape.mosaic_side,
                    refusal=shape.refusal,
                )
            )
            next_id += 1
        study.series.append(series)
    return list(studies.values())
