"""Splitting slices that share positions into the volumes of a 4-D acquisition, and naming the 4th axis.

Two slices at one position never go into one 3-D volume. The volume each slice belongs to is
found from the first of these that fits (each value a whole volume):

1. for mosaics, the file (one file = one volume);
2. an exact per-volume key: the enhanced object's DimensionIndexValues (its non-spatial part),
   TemporalPositionIdentifier, the diffusion (b-value, gradient) pair, AcquisitionNumber, EchoTime.
   A key fits when it has a value on every slice, no two slices with the same value share a
   position, and it has as many values as the most crowded position has slices;
3. a per-slice time, ranked at each position: TriggerTime, AcquisitionTime, then InstanceNumber.
   It fits when the values at each position are distinct and every position has the same count.

Then the fourth axis is named from what differs between the volumes (and is the same within
each): diffusion (b-value or gradient), echo (EchoTime), time (a temporal key or times), or the
dimension index. Nothing found: :class:`AmbiguousVolumesError`.

A volume that lacks slices the others have (a file missing or unreadable) is **dropped, with a
QA note** that names it, when the key says which volume each slice belongs to (2.); with a
ranked key (3.) the volume cannot be told, and the stack is refused with
:class:`IncompleteVolumesError`, as it is when half the volumes or more are incomplete, except
that acquisitions (AcquisitionNumber, TemporalPositionIdentifier) covering partly different
positions (multi-phase CT over different ranges) become separate 3-D stacks
(:class:`SeparateAcquisitions`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from inference.errors import AmbiguousVolumesError, IncompleteVolumesError
from inference.io.acquisition_keys import FrameKeys
from inference.io.geometry_qa import QACode, QAIssue
from inference.volume import FourthAxis, VolumeFrame

#: Slices closer than this along the normal (mm) are at one position.
POSITION_TOLERANCE = 0.01


class SeparateAcquisitions(Exception):
    """Acquisitions of one series at partly different positions (multi-phase CT over different
    ranges): each is a 3-D stack of its own, not a volume of one 4-D series."""

    def __init__(self, groups: list[list[int]], key_name: str) -> None:
        super().__init__(f"{len(groups)} acquisitions by {key_name}")
        self.groups = groups
        self.key_name = key_name


@dataclass(frozen=True)
class Grouping:
    """The slices of each volume (lists of indices into the input, sorted along the normal) and each volume's frame."""

    volumes: list[list[int]]
    frames: tuple[VolumeFrame, ...]
    notes: list[QAIssue]
    key: str


def position_ids(along: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """Cluster positions along the normal: the same id for slices within :data:`POSITION_TOLERANCE`."""
    order = np.argsort(along, kind="stable")
    ids = np.empty(len(along), dtype=np.int64)
    current = 0
    for rank, n in enumerate(order):
        if rank and along[n] - along[order[rank - 1]] > POSITION_TOLERANCE:
            current += 1
        ids[n] = current
    return ids


def has_shared_positions(along: npt.NDArray[np.float64]) -> bool:
    if len(along) < 2:
        return False
    s = np.sort(along)
    return bool(np.any(np.diff(s) <= POSITION_TOLERANCE))


def _diffusion_key(k: FrameKeys) -> Hashable | None:
    if k.b_value is None:
        return None
    g = tuple(round(v, 4) for v in k.gradient) if k.gradient else None
    return (round(k.b_value, 2), g)


EXACT_KEYS: list[tuple[str, Callable[[FrameKeys], Hashable | None]]] = [
    ("dimension", lambda k: k.dimension_index or None),
    ("temporal", lambda k: k.temporal_position),
    ("diffusion", _diffusion_key),
    ("acquisition", lambda k: k.acquisition_number),
    ("echo", lambda k: None if k.echo_time is None else round(k.echo_time, 3)),
]
RANKED_KEYS: list[tuple[str, Callable[[FrameKeys], float | None]]] = [
    ("trigger", lambda k: k.trigger_time),
    ("acquisition-time", lambda k: k.acquisition_time),
    ("instance", lambda k: float(k.instance_number) if k.instance_number else None),
]
#: Keys whose order is the order of acquisition in time.
TEMPORAL = {"temporal", "acquisition", "trigger", "acquisition-time", "file"}


def _by_exact(
    values: Sequence[Hashable | None], pos: npt.NDArray[np.int64], crowd: int
) -> dict[Hashable, list[int]] | None:
    """Volumes by a per-volume key, or None when the key does not say which volume a slice is of.

    More key values than slices at the most crowded position means volumes lacking slices (two
    volumes that each miss a different position leave every position with one slice fewer than
    there are volumes); that is this key's answer only if some volume is complete, else the key
    is one of each slice, not of each volume.
    """
    if any(v is None for v in values):
        return None
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for n, v in enumerate(values):
        groups[v].append(n)
    if len(groups) < crowd:
        return None
    for members in groups.values():
        if len({int(pos[n]) for n in members}) != len(members):
            return None
    n_positions = int(pos.max()) + 1
    if len(groups) > crowd and not any(len(m) == n_positions for m in groups.values()):
        return None
    return groups


def _by_rank(values: Sequence[float | None], pos: npt.NDArray[np.int64], crowd: int) -> list[list[int]] | str | None:
    """Volumes by rank at each position; a reason string when counts differ; None when it does not fit."""
    if any(v is None for v in values):
        return None
    at: dict[int, list[int]] = defaultdict(list)
    for n, p in enumerate(pos):
        at[int(p)].append(n)
    for members in at.values():
        vals = [values[n] for n in members]
        if len(set(vals)) != len(vals):
            return None
    counts = {len(m) for m in at.values()}
    if counts != {crowd}:
        short = sum(1 for m in at.values() if len(m) < crowd)
        return (
            f"{short} of {len(at)} position(s) have fewer than {crowd} slices, "
            "and no per-volume key says which volume lacks them"
        )
    volumes: list[list[int]] = [[] for _ in range(crowd)]
    for members in at.values():
        for rank, n in enumerate(sorted(members, key=lambda n: values[n])):  # type: ignore[arg-type,return-value]
            volumes[rank].append(n)
    return volumes


def _sort_key(k: FrameKeys) -> tuple[float, int]:
    return (k.acquisition_time if k.acquisition_time is not None else math.inf, k.instance_number)


def group_volumes(
    keys: Sequence[FrameKeys],
    along: npt.NDArray[np.float64],
    *,
    files: Sequence[int] | None = None,
    where: str | None = None,
) -> Grouping:
    """Split slices (their keys and positions along the normal) into volumes; see the module docstring.

    ``files``: for mosaics, the file of each slice (one file holds one volume). ``where``: a path
    for the errors. Raises :class:`AmbiguousVolumesError` or :class:`IncompleteVolumesError`.
    """
    pos = position_ids(along)
    counts = np.bincount(pos)
    crowd = int(counts.max())
    n_positions = int(pos.max()) + 1
    single = int(np.sum(counts == 1))
    key_name = ""
    exact: dict[Hashable, list[int]] | None = None
    ranked: list[list[int]] | None = None
    if files is not None:
        exact = _by_exact(list(files), pos, len(set(files)))
        key_name = "file"
        if exact is None:
            raise AmbiguousVolumesError(
                where, "the slices of these mosaics do not lie at the same positions in each file"
            )
    else:
        for name, get in EXACT_KEYS:
            exact = _by_exact([get(k) for k in keys], pos, crowd)
            if exact is not None:
                key_name = name
                break
    incomplete_reason = ""
    if exact is None and single * 2 > n_positions:
        raise AmbiguousVolumesError(
            where,
            f"{n_positions - single} of {n_positions} positions hold more than one slice (repeated or extra "
            "images) while the others hold one: neither one 3-D volume nor a 4-D series; not stacked",
        )
    if exact is None:
        for name, rank_get in RANKED_KEYS:
            got = _by_rank([rank_get(k) for k in keys], pos, crowd)
            if isinstance(got, str):
                incomplete_reason = incomplete_reason or got
                continue
            if got is not None:
                ranked, key_name = got, name
                break
    if exact is None and ranked is None:
        if incomplete_reason:
            raise IncompleteVolumesError(where, f"several slices per position, but {incomplete_reason}")
        raise AmbiguousVolumesError(
            where,
            f"{crowd} slices share a position and no header attribute (temporal position, acquisition number or "
            "time, b-value, echo time, dimension index) tells their volumes apart: not stacked, neither 3-D nor 4-D",
        )
    notes: list[QAIssue] = []
    if exact is not None:
        volumes = list(exact.values())
        ordinal = key_name in ("dimension", "temporal", "acquisition", "echo")
        if ordinal:
            volumes.sort(key=lambda m: exact_value(keys[m[0]], key_name))
        else:
            volumes.sort(key=lambda m: min(_sort_key(keys[n]) for n in m))
        complete = [m for m in volumes if len(m) == n_positions]
        dropped = [v for v, m in enumerate(volumes) if len(m) != n_positions]
        if dropped:
            if len(dropped) * 2 >= len(volumes):
                if key_name in ("acquisition", "temporal") and all(len(m) >= 2 for m in volumes):
                    raise SeparateAcquisitions(volumes, key_name)
                sizes = sorted({len(m) for m in volumes})
                raise IncompleteVolumesError(
                    where,
                    f"grouped by {key_name}, {len(dropped)} of {len(volumes)} volumes cover only part of the "
                    f"{n_positions} positions ({', '.join(map(str, sizes))} slices): not one 4-D series",
                )
            shown = ", ".join(str(v + 1) for v in dropped[:8])
            notes.append(
                QAIssue(
                    QACode.INCOMPLETE_VOLUMES,
                    f"volume(s) {shown} of {len(volumes)} lack slices (a file missing or unreadable): left out",
                )
            )
        volumes = complete
    else:
        assert ranked is not None
        volumes = ranked
    volumes, derived = _without_trace_volumes(volumes, keys)
    notes.extend(derived)
    for m in volumes:
        m.sort(key=lambda n: along[n])
    frames = _frames(volumes, keys, key_name, where)
    return Grouping(volumes, frames, notes, key_name)


def _without_trace_volumes(
    volumes: list[list[int]], keys: Sequence[FrameKeys]
) -> tuple[list[list[int]], list[QAIssue]]:
    """Leave out derived trace (isotropic) images that Philips puts in a diffusion series: b > 0 with
    no gradient direction beside volumes that have one (dcm2niix leaves them out too)."""
    b = [keys[m[0]].b_value for m in volumes]
    g = [keys[m[0]].gradient for m in volumes]
    if any(v is None for v in b):
        return volumes, []

    def directed(v: int) -> bool:
        return g[v] is not None and any(abs(x) > 1e-6 for x in g[v])  # type: ignore[union-attr]

    trace = [v for v in range(len(volumes)) if (b[v] or 0) > 0 and not directed(v)]
    if not trace or not any(directed(v) for v in range(len(volumes))) or len(trace) * 2 >= len(volumes):
        return volumes, []
    shown = ", ".join(str(v + 1) for v in trace[:8])
    note = QAIssue(
        QACode.DERIVED_VOLUMES,
        f"volume(s) {shown}: b > 0 without a gradient direction (a derived trace image): left out",
    )
    return [m for v, m in enumerate(volumes) if v not in trace], [note]


def exact_value(k: FrameKeys, name: str) -> tuple[float, ...]:
    value = dict(EXACT_KEYS)[name](k)
    if isinstance(value, tuple):
        return tuple(float(v) for v in value)
    return (float(value),) if isinstance(value, int | float) else (0.0,)


def _same(values: list[object]) -> bool:
    return all(v == values[0] for v in values)


def _frames(
    volumes: list[list[int]], keys: Sequence[FrameKeys], key_name: str, where: str | None
) -> tuple[VolumeFrame, ...]:
    first = [keys[m[0]] for m in volumes]
    has_b = all(keys[n].b_value is not None for m in volumes for n in m)
    if has_b:
        diffusion = [_diffusion_key(keys[n]) for m in volumes for n in m]
        varies = len(set(diffusion)) > 1
        if varies:
            for v, m in enumerate(volumes):
                if not _same([_diffusion_key(keys[n]) for n in m]):
                    raise AmbiguousVolumesError(
                        where, f"volume {v + 1}, grouped by {key_name}, holds slices of several b-values or gradients"
                    )
            return tuple(
                VolumeFrame(
                    FourthAxis.DIFFUSION, v, float(k.b_value or 0.0), k.b_value, k.gradient, k.echo_time,
                    k.acquisition_time, k.trigger_time,
                )
                for v, k in enumerate(first)
            )  # fmt: skip
    tes = [k.echo_time for k in first]
    if all(t is not None for t in tes) and len(set(tes)) > 1:
        for v, m in enumerate(volumes):
            if not _same([keys[n].echo_time for n in m]):
                raise AmbiguousVolumesError(where, f"volume {v + 1}, grouped by {key_name}, mixes echo times")
        return tuple(
            VolumeFrame(
                FourthAxis.ECHO, v, float(k.echo_time or 0.0), k.b_value, k.gradient, k.echo_time, k.acquisition_time
            )
            for v, k in enumerate(first)
        )
    temporal = [k.temporal_position for k in first]
    if key_name in TEMPORAL or (None not in temporal and len(set(temporal)) == len(temporal)):
        times: list[float | None] = [
            min((t for n in m if (t := keys[n].acquisition_time) is not None), default=None) for m in volumes
        ]
        triggers = [keys[m[0]].trigger_time for m in volumes]
        if key_name == "trigger" and all(t is not None for t in triggers):
            values = [float(t) / 1000.0 for t in triggers]  # type: ignore[arg-type]
        elif all(t is not None for t in times):
            values = [float(t) - float(times[0]) for t in times]  # type: ignore[arg-type]
        else:
            values = [float(v) for v in range(len(volumes))]
        return tuple(
            VolumeFrame(FourthAxis.TIME, v, values[v], k.b_value, k.gradient, k.echo_time, times[v], k.trigger_time)
            for v, k in enumerate(first)
        )
    if key_name == "dimension":
        return tuple(
            VolumeFrame(FourthAxis.DIMENSION, v, float(v), k.b_value, k.gradient, k.echo_time, k.acquisition_time)
            for v, k in enumerate(first)
        )
    raise AmbiguousVolumesError(
        where,
        f"several slices share a position; they differ only by {key_name} number, which says nothing of what "
        "the volumes are (time, diffusion, echo): not stacked",
    )
