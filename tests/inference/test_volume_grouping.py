"""Properties of the 4-D grouping on any layout of keys: never two slices of one position in a
volume, every volume at the same positions, the same answer in any order, or a typed refusal."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from inference.errors import AmbiguousVolumesError, IncompleteVolumesError
from inference.io.acquisition_keys import FrameKeys
from inference.io.volume_grouping import SeparateAcquisitions, group_volumes, has_shared_positions
from inference.volume import FourthAxis

KEY_STYLES = ["acquisition", "temporal", "diffusion", "echo", "time-only", "instance-only"]


def _keys(style: str, v: int, k: int, n_k: int) -> FrameKeys:
    instance = v * n_k + k + 1
    time = 8 * 3600 + 2.0 * v + 0.1 * k
    if style == "acquisition":
        return FrameKeys(acquisition_number=v + 1, acquisition_time=time, instance_number=instance)
    if style == "temporal":
        return FrameKeys(temporal_position=v + 1, acquisition_number=1, instance_number=instance)
    if style == "diffusion":
        b = 0.0 if v % 3 == 0 else 1000.0
        g = (0.0, 0.0, 0.0) if b == 0 else (float(np.cos(v)), float(np.sin(v)), 0.0)
        return FrameKeys(b_value=b, gradient=g, acquisition_number=1, instance_number=instance)
    if style == "echo":
        return FrameKeys(echo_time=10.0 * (v + 1), acquisition_number=1, instance_number=instance)
    if style == "time-only":
        return FrameKeys(acquisition_time=time, instance_number=instance)
    return FrameKeys(instance_number=instance)


@settings(max_examples=150, deadline=None)
@given(
    style=st.sampled_from(KEY_STYLES),
    n_vol=st.integers(2, 6),
    n_k=st.integers(2, 6),
    missing=st.sets(st.tuples(st.integers(0, 5), st.integers(0, 5)), max_size=3),
    seed=st.integers(0, 2**16),
)
def test_grouping_is_sound_on_any_layout(style: str, n_vol: int, n_k: int, missing: set, seed: int) -> None:
    items = [(v, k) for v in range(n_vol) for k in range(n_k) if (v, k) not in missing]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(items))
    items = [items[n] for n in order]
    keys = [_keys(style, v, k, n_k) for v, k in items]
    along = np.array([4.0 * k for _, k in items])
    assume(has_shared_positions(along))  # the scan asks for volumes only where slices share positions
    counts = np.bincount([k for _, k in items])
    # Known limit: with times or instance numbers alone, two volumes that each lack a different
    # slice leave every position with as many slices as volumes: nothing in the headers tells that
    # layout from complete volumes, so it is not asked of the grouping here.
    assume(not (style in ("time-only", "instance-only") and missing and len(set(counts.tolist())) == 1))
    try:
        got = group_volumes(keys, along)
    except (AmbiguousVolumesError, IncompleteVolumesError):
        assert style == "instance-only" or missing
        return
    except SeparateAcquisitions as split:
        assert missing and all(len({int(along[n]) for n in g}) == len(g) for g in split.groups)
        return
    positions = [tuple(sorted(along[n] for n in m)) for m in got.volumes]
    for m, p in zip(got.volumes, positions, strict=True):
        assert len(set(p)) == len(m)  # never two slices of one position in a volume
        assert p == positions[0]  # every volume at the same positions
    # Each volume holds slices of one acquired volume, in acquisition order.
    sources = [sorted({items[n][0] for n in m}) for m in got.volumes]
    assert all(len(s) == 1 for s in sources)
    assert [s[0] for s in sources] == sorted(s[0] for s in sources)
    assert style != "instance-only"
    expected_axis = {"diffusion": FourthAxis.DIFFUSION, "echo": FourthAxis.ECHO}.get(style, FourthAxis.TIME)
    assert all(f.axis is expected_axis for f in got.frames)
    # The same answer whatever order the slices came in.
    back = np.argsort(order)
    again = group_volumes([keys[n] for n in back], along[back])
    assert [sorted(items[back[n]] for n in m) for m in again.volumes] == [
        sorted(items[n] for n in m) for m in got.volumes
    ]


def test_a_missing_slice_leaves_its_volume_out_and_says_which() -> None:
    items = [(v, k) for v in range(4) for k in range(3) if (v, k) != (2, 1)]
    keys = [_keys("acquisition", v, k, 3) for v, k in items]
    got = group_volumes(keys, np.array([4.0 * k for _, k in items]))
    assert len(got.volumes) == 3 and "volume(s) 3 of 4" in got.notes[0].message


def test_slices_that_nothing_tells_apart_are_refused() -> None:
    keys = [FrameKeys(instance_number=n + 1) for n in range(6)]
    with pytest.raises(AmbiguousVolumesError, match="not stacked"):
        group_volumes(keys, np.array([0.0, 0.0, 4.0, 4.0, 8.0, 8.0]))
