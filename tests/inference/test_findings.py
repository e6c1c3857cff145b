"""Findings from a label map: connected components against scipy's whole-volume measurements."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage

from inference.engine.findings import find_components, label_values, occupied_box
from inference.volume import Volume


def _volume(shape: tuple[int, int, int]) -> Volume:
    return Volume(
        voxels=np.zeros(shape, dtype=np.int16),
        spacing=(0.8, 0.9, 2.5),
        origin=(-10.0, 20.0, 30.0),
        direction=np.eye(3),
    )


def test_components_agree_with_scipy_on_the_whole_volume() -> None:
    rng = np.random.default_rng(7)
    shape = (40, 64, 72)
    labels = np.zeros(shape, dtype=np.uint8)
    for value, n in ((1, 6), (3, 3)):
        for _ in range(n):
            k, j, i = rng.integers(2, 38), rng.integers(3, 60), rng.integers(3, 68)
            labels[k - 1 : k + 2, j - 2 : j + rng.integers(1, 4), i - 3 : i + 2] = value
    probability = rng.random(shape).astype(np.float32)
    volume = _volume(shape)
    found = find_components(volume, labels, probability, {1: "nodule", 3: "mass"})

    want = []
    for value in (1, 3):
        comp, n = ndimage.label(labels == value, structure=np.ones((3, 3, 3)))
        index = np.arange(1, n + 1)
        counts = ndimage.sum_labels(np.ones(shape), comp, index)
        centres = ndimage.center_of_mass(np.ones(shape), comp, index)
        peaks = ndimage.maximum(probability, comp, index)
        want += [
            (value, int(c), tuple(reversed(ctr)), float(p)) for c, ctr, p in zip(counts, centres, peaks, strict=True)
        ]
    assert len(found) == len(want) and len(found) >= 5
    assert [f.voxel_count for f in found] == sorted((w[1] for w in want), reverse=True)
    for f in found:
        match = [w for w in want if w[0] == f.label and w[1] == f.voxel_count and np.allclose(w[2], f.centroid_ijk)]
        assert match, f
        assert f.max_probability == np.float32(match[0][3])
        assert f.name == {1: "nodule", 3: "mass"}[f.label]
        assert np.allclose(f.centroid_lps, volume.index_to_lps(list(f.centroid_ijk)))
        assert np.isclose(f.volume_ml, f.voxel_count * 0.8 * 0.9 * 2.5 / 1000)


def test_an_empty_map_has_no_findings() -> None:
    labels = np.zeros((5, 6, 7), dtype=np.uint8)
    assert find_components(_volume(labels.shape), labels, None, {}) == []
    assert label_values(labels) == [] and occupied_box(labels) is None


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        np.uint8,
        st.tuples(st.integers(1, 6), st.integers(1, 7), st.integers(1, 8)),
        elements=st.sampled_from([0, 0, 0, 1, 2, 7]),
    )
)
def test_label_values_and_the_occupied_box_match_brute_force(labels: np.ndarray) -> None:
    assert label_values(labels) == [int(v) for v in np.unique(labels) if v != 0]
    box = occupied_box(labels)
    nz = np.argwhere(labels)
    if nz.size == 0:
        assert box is None
        return
    assert box is not None
    lo, hi = nz.min(axis=0), nz.max(axis=0) + 1
    assert [(s.start, s.stop) for s in box] == list(zip(lo.tolist(), hi.tolist(), strict=True))
