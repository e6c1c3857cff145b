"""Pseudo-CT heads from Colin27 (Debian mricron-data): tissue HU, grid, variation, dataset sources."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from inference.training.build_dataset import build_dataset
from inference.training.dataset_format import DatasetError, read_dataset
from inference.training.dataset_spec import DatasetSpec, PseudoCtHeads
from inference.training.pseudo_ct import (
    MATRIX,
    PseudoCtParams,
    Strand,
    add_cradle,
    add_strands,
    brain_displacement,
    deform,
    make_pseudo_ct,
    smooth_displacement,
    tissue_hu,
    widen_csf,
)

from .colin27 import BRAIN, T1, read_colin27


@pytest.fixture(scope="module")
def colin() -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    t1, brain, _, spacing = read_colin27()
    return t1, brain, spacing


def test_tissues_get_ct_attenuation(colin) -> None:
    t1, brain, spacing = colin
    p = PseudoCtParams.draw(np.random.default_rng(0))
    hu = tissue_hu(t1, brain, spacing, p)
    inside = hu[brain]
    # Brain is soft tissue between CSF and grey matter; CT reverses T1's grey/white order.
    assert p.csf - 1 <= inside.min() and inside.max() <= p.grey + 1
    white = brain & (t1 >= np.percentile(t1[brain], 90))
    grey = brain & (t1 >= np.percentile(t1[brain], 35)) & (t1 <= np.percentile(t1[brain], 45))
    assert hu[grey].mean() > hu[white].mean()
    assert (hu > 600).sum() > 50_000  # a skull
    assert (hu == -1000).mean() > 0.2  # air around the head


def test_variants_differ_and_are_reproducible(colin) -> None:
    t1, brain, spacing = colin
    a, pa = make_pseudo_ct(t1, brain, spacing, np.random.default_rng(1))
    b, _ = make_pseudo_ct(t1, brain, spacing, np.random.default_rng(1))
    c, pc = make_pseudo_ct(t1, brain, spacing, np.random.default_rng(2))
    assert not np.array_equal(a.voxels[:8], c.voxels[:8])
    assert np.array_equal(a.voxels, b.voxels)
    assert a.voxels.dtype == np.int16 and a.voxels.shape[1:] == (MATRIX, MATRIX)
    assert a.metadata.modality == "CT" and pa != pc
    assert np.isclose(a.spacing[2], pa.slice_mm / pa.scale) and np.isclose(a.spacing[0], pa.fov_mm / MATRIX / pa.scale)
    # The head sits in the field of view: soft tissue in the middle slice's centre, air in its corners.
    mid = a.voxels[a.voxels.shape[0] // 2].astype(np.float32)
    assert mid[0, 0] < -900 and -50 < np.median(mid[112:144, 112:144]) < 80


def test_a_smooth_displacement_has_the_size_asked_for_and_bends_gently() -> None:
    spacing = (2.0, 1.0, 1.0)
    field = smooth_displacement((40, 90, 80), spacing, 3.0, np.random.default_rng(4))
    again = smooth_displacement((40, 90, 80), spacing, 3.0, np.random.default_rng(4))
    assert field.shape == (3, 40, 90, 80) and field.dtype == np.float32 and np.array_equal(field, again)
    mm = field * np.asarray(spacing, np.float32)[:, None, None, None]  # voxels → mm, per component
    assert np.allclose(mm.std(axis=(1, 2, 3)), 3.0, rtol=1e-3) and np.abs(mm.mean(axis=(1, 2, 3))).max() < 1e-3
    # Smooth: from one voxel to the next it changes by a fraction of a millimetre, so nothing tears or folds.
    steps = [np.abs(np.diff(mm[a], axis=a)) / spacing[a] for a in range(3)]
    assert max(float(np.percentile(s, 99)) for s in steps) < 0.8
    # Not a constant shift: it varies over the head.
    assert float(np.abs(mm[1, :, :45].mean() - mm[1, :, 45:].mean())) + float(mm[1].std()) > 1.0


def test_a_bent_brain_keeps_skull_and_scalp_and_its_tissues(colin) -> None:
    t1, brain, spacing = colin
    p = PseudoCtParams.draw(np.random.default_rng(3))
    hu = tissue_hu(t1, brain, spacing, p)
    assert np.array_equal(deform(hu, np.zeros((3, *hu.shape), np.float32), -1000.0), hu)
    shift = brain_displacement(brain, spacing, 4.0, np.random.default_rng(5))
    assert not shift[:, ~brain].any()  # nothing moves outside the brain ...
    bent = deform(hu, shift, -1000.0)
    assert np.array_equal(bent[~brain], hu[~brain])  # ... so skull, scalp and air are untouched
    csf = brain & (hu < (p.csf + p.white) / 2)
    moved = brain & (bent < (p.csf + p.white) / 2)
    dice = 2 * (csf & moved).sum() / (csf.sum() + moved.sum())
    assert dice < 0.8  # the ventricles and sulci moved ...
    assert 0.8 < moved.sum() / csf.sum() < 1.25  # ... and still hold about as much CSF
    brain_hu = bent[brain]
    foreign = (brain_hu < p.csf - 1) | (brain_hu > p.grey + 1)
    assert foreign.mean() < 1e-3  # brain stays brain: hardly a voxel draws on the skull or the scalp


def test_bending_the_anatomy_changes_nothing_else(colin) -> None:
    t1, brain, spacing = colin
    plain, p0 = make_pseudo_ct(t1, brain, spacing, np.random.default_rng(8))
    bent, p1 = make_pseudo_ct(t1, brain, spacing, np.random.default_rng(8), deform_mm=4.0)
    again, _ = make_pseudo_ct(t1, brain, spacing, np.random.default_rng(8), deform_mm=4.0)
    assert p0.deform_mm == 0.0 and 2.0 <= p1.deform_mm <= 4.0
    assert dataclasses.replace(p1, deform_mm=0.0) == p0  # the scanner, the holder and the noise are the same
    assert np.array_equal(bent.voxels, again.voxels) and bent.shape == plain.shape
    differ = np.abs(bent.voxels.astype(np.int32) - plain.voxels) > 0
    assert 0.005 < differ.mean() < 0.3  # the brain's interior changed, the rest of the head did not
    outside = plain.voxels < -500
    assert differ[outside].mean() < 0.001


def test_widened_csf_spaces_grow_by_the_distance_asked_for_and_only_in_the_brain(colin) -> None:
    t1, brain, spacing = colin
    p = PseudoCtParams.draw(np.random.default_rng(3))
    hu = tissue_hu(t1, brain, spacing, p)
    below = (p.csf + p.white) / 2
    assert np.array_equal(widen_csf(hu, brain, spacing, 0.0, p.csf, below), hu)
    wide = widen_csf(hu, brain, spacing, 2.0, p.csf, below)
    assert np.array_equal(wide[~brain], hu[~brain])  # skull, scalp and air untouched
    csf = brain & (hu < below)
    grown = brain & (wide < below)
    assert (grown >= csf).all()  # CSF stays CSF ...
    assert 1.4 < grown.sum() / csf.sum() < 4.0  # ... and takes more of the brain
    from scipy import ndimage

    dist = ndimage.distance_transform_edt(~csf, sampling=spacing)
    assert (dist[grown & ~csf] <= 2.5).all()  # no farther than asked (1 mm voxels, the soft edge)
    near = brain & (dist > 0) & (dist <= 1.5)
    assert (wide[near] <= p.csf + 1e-3).mean() > 0.95  # brain within the distance became CSF
    assert wide[brain].min() >= min(p.csf, float(hu[brain].min())) - 1e-3  # nothing below CSF appears


def test_widening_the_csf_spaces_changes_nothing_else(colin) -> None:
    t1, brain, spacing = colin
    bent, p0 = make_pseudo_ct(t1, brain, spacing, np.random.default_rng(8), deform_mm=4.0)
    aged, p1 = make_pseudo_ct(t1, brain, spacing, np.random.default_rng(8), deform_mm=4.0, atrophy_mm=3.0)
    assert p0.atrophy_mm == 0.0 and 0.75 <= p1.atrophy_mm <= 3.0
    assert dataclasses.replace(p1, atrophy_mm=0.0) == p0  # the bend, the scanner and the noise are the same
    darker = (aged.voxels.astype(np.int32) - bent.voxels) < -5
    assert 0.002 < darker.mean() < 0.2  # brain turned CSF ...
    assert darker[bent.voxels < -500].mean() < 0.001  # ... never the air around the head
    assert ((aged.voxels.astype(np.int32) - bent.voxels) > 5).mean() < 0.001  # nothing got denser


def _elliptic_head(centre_row: int, semi_rows: float, semi_cols: float, slices: int) -> tuple[np.ndarray, np.ndarray]:
    """An elliptic soft-tissue head (40 HU) in air, centred on column 128: its footprint and HU volume."""
    yy, xx = np.mgrid[:MATRIX, :MATRIX]
    head = ((yy - centre_row) / semi_rows) ** 2 + ((xx - 128) / semi_cols) ** 2 <= 1
    return head, np.where(head, 40.0, -1000.0).astype(np.float32)[None].repeat(slices, axis=0)


def test_a_head_holder_is_a_thin_dense_arc_in_the_air_beside_the_head() -> None:
    from scipy import ndimage

    head, before = _elliptic_head(120, 80.0, 65.0, slices=6)
    hu = before.copy()
    pixel_mm = 0.9
    p = dataclasses.replace(
        PseudoCtParams.draw(np.random.default_rng(0)),
        cradle=True, cradle_gap_mm=12.0, cradle_arc_deg=180.0, cradle_angle_deg=90.0, cradle_mm=2.0, cradle_hu=600.0,
    )  # fmt: skip
    footprint = add_cradle(hu, pixel_mm, p)
    changed = hu != before
    # Only air changed, on every slice alike, and only inside the footprint.
    assert changed.any() and (before[changed] < -500).all()
    assert not (changed & ~footprint[None]).any() and (hu == hu[:1]).all()
    # Dense at its core, about 2 mm thick: half an ellipse below the head (90 degrees: rows grow downwards).
    core = hu[0] > 500
    assert core.sum() > 0 and np.nonzero(core)[0].min() >= 119 and np.nonzero(core)[0].max() > 200
    length_px = np.pi * (72.5 + 12.0 / pixel_mm)
    thickness_mm = footprint.sum() / length_px * pixel_mm
    assert 1.0 < thickness_mm < 4.0
    # The gap: no cradle pixel within 10 mm of the head.
    gap_mm = ndimage.distance_transform_edt(~head) * pixel_mm
    assert gap_mm[footprint].min() > 10.0
    # It follows the head around: no part of the cradle is more than 20 mm from it.
    assert gap_mm[core].max() < 20.0


def test_strands_are_short_thin_arcs_near_the_scalp_over_their_slab() -> None:
    from scipy import ndimage

    head, before = _elliptic_head(128, 70.0, 60.0, slices=20)
    hu = before.copy()
    pixel_mm = 0.8
    strands = (
        Strand(direction_deg=0.0, offset_mm=4.0, radius_mm=10.0, arc_deg=120.0, facing_deg=180.0,
               thickness_mm=1.5, hu=300.0, slab=(0.25, 0.5)),
        Strand(direction_deg=225.0, offset_mm=0.0, radius_mm=6.0, arc_deg=90.0, facing_deg=45.0,
               thickness_mm=1.0, hu=20.0, slab=(0.0, 1.0)),
    )  # fmt: skip
    footprints = add_strands(hu, pixel_mm, strands)
    changed = hu != before
    assert (before[changed] < -500).all()  # only air
    # The first: only on slices 5..9, right of the head (direction 0 = along the columns).
    only_first = footprints[0] & ~footprints[1]
    assert changed[:5, only_first].sum() == 0 and changed[10:, only_first].sum() == 0
    assert changed[5:10].any() and np.nonzero(footprints[0])[1].min() > 128 + 60
    gap_mm = ndimage.distance_transform_edt(~head) * pixel_mm
    near = gap_mm[footprints[0]].min()
    assert 4.0 - 1.5 <= near <= 4.0 + 1.5  # its circle keeps offset_mm from the outline
    # Short and thin: about (arc/360) of the circumference times the thickness.
    expected = np.pi * 2 * 10.0 * 120 / 360 * 1.5 / pixel_mm**2
    assert 0.5 * expected < footprints[0].sum() < 2.0 * expected
    # The second touches the scalp (offset 0) up and to the left, on every slice.
    assert changed[:, footprints[1]].any(axis=1).all()
    assert gap_mm[footprints[1]].min() <= 1.0
    assert np.nonzero(footprints[1])[0].mean() < 128 and np.nonzero(footprints[1])[1].mean() < 128


def test_pseudo_ct_parameters_are_recorded_as_plain_data() -> None:
    import json

    p = PseudoCtParams.draw(np.random.default_rng(11))
    record = json.loads(json.dumps(p.to_dict()))
    assert record["cradle"] == p.cradle and len(record["strands"]) == len(p.strands)
    assert all(set(s) >= {"direction_deg", "hu", "slab"} for s in record["strands"])


def test_pseudo_ct_sources_build_a_dataset_with_lesions(tmp_path: Path) -> None:
    out = build_dataset(
        DatasetSpec(
            [],
            size=(32, 32),
            split=(0.5, 0.5, 0.0),
            seed=3,
            lesion_insertion={"kind": "solid,hyperdense", "per_volume": 2},
            positives_per_source=6,
            negatives_per_source=6,
            pseudo_ct=PseudoCtHeads(str(T1), str(BRAIN), 2),
        ),
        tmp_path / "ds",
    )
    ds = read_dataset(out)
    assert [s["name"] for s in ds.manifest["sources"]] == ["pseudo-ct-000", "pseudo-ct-001"]
    # No lungs in a head: only the soft-tissue kind is inserted.
    assert {les["kind"] for s in ds.manifest["sources"] for les in s["lesions"]} == {"hyperdense"}
    assert ds.labels.sum() > 0 and (ds.labels == 0).sum() > 0
    assert "pseudo-CT head" in " ".join(ds.manifest["inputs"])
    with pytest.raises(DatasetError, match="pseudo-ct-deform"):
        build_dataset(
            DatasetSpec([], pseudo_ct=PseudoCtHeads(str(T1), str(BRAIN), 1, deform_mm=-1.0)), tmp_path / "bad"
        )
    with pytest.raises(DatasetError, match="pseudo-ct-atrophy"):
        build_dataset(
            DatasetSpec([], pseudo_ct=PseudoCtHeads(str(T1), str(BRAIN), 1, atrophy_mm=9.0)), tmp_path / "bad"
        )


def test_the_cli_bends_ages_and_calcifies_heads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from inference.cli.main import main

    out = tmp_path / "aged"
    args = ["dataset", "build", "--pseudo-ct", str(T1), str(BRAIN), "1", "--pseudo-ct-deform", "3"]
    args += ["--pseudo-ct-atrophy", "2", "--pseudo-ct-calcifications", "--insert-lesions", "hyperdense"]
    args += ["--size", "32", "--split", "1", "0", "0"]
    assert main([*args, "--positives-per-source", "2", "--negatives-per-source", "2", "--out", str(out)]) == 0
    manifest = read_dataset(out).manifest
    recorded = manifest["sources"][0]["pseudo_ct"]
    assert recorded["deform_mm"] == 3.0 and recorded["atrophy_mm"] == 2.0 and recorded["calcifications"] is True
    assert "CSF spaces widened by up to 2 mm, physiological calcifications" in " ".join(manifest["inputs"])
    assert main(["dataset", "build", "--pseudo-ct", str(T1), str(BRAIN), "1", "--pseudo-ct-atrophy", "-1",
                 "--out", str(tmp_path / "bad")]) != 0  # fmt: skip
    assert "pseudo-ct-atrophy" in capsys.readouterr().err
