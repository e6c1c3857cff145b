"""Relative lesion kinds (contrast against local tissue), mixtures of kinds, variants of one source."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from inference.io.nifti_writer import write_nifti
from inference.sample_study import make_chest_phantom
from inference.training.build_dataset import build_dataset
from inference.training.dataset_format import DatasetError, read_dataset
from inference.training.dataset_spec import DatasetSpec
from inference.training.insertion import insert_mixed, parse_kinds
from inference.training.lesions import insert_lesions, soft_tissue_region
from inference.volume import Volume


@pytest.fixture(scope="module")
def head(ct_head: tuple[np.ndarray, tuple[float, float, float]]) -> Volume:
    voxels, spacing = ct_head
    return Volume(voxels, spacing, (0.0, 0.0, 0.0), np.eye(3))


@pytest.mark.parametrize(("kind", "low", "high"), [("hyperdense", 25.0, 60.0), ("hypodense", -40.0, -20.0)])
def test_relative_kinds_keep_their_contrast_against_the_tissue_around(
    head: Volume, kind: str, low: float, high: float
) -> None:
    region = soft_tissue_region(head)
    out, mask, specs = insert_lesions(head, np.random.default_rng(3), 3, kind, region)
    before = ndimage.median_filter(head.voxels.astype(np.float32), size=5)
    for spec in specs:
        lesion = mask == spec.label
        ring = ndimage.binary_dilation(lesion, iterations=4) & ~ndimage.binary_dilation(lesion, iterations=2)
        tissue = float(np.median(before[ring & region]))
        core = ndimage.binary_erosion(lesion, iterations=1)
        inside = float(out.voxels[core if core.any() else lesion].mean())
        # Texture and noise blur the figure by a few HU; a wrong sign or an absolute HU would not.
        assert low - 12 <= inside - tissue <= high + 12, (kind, inside, tissue)
        assert spec.kind == kind


def test_mixture_puts_lung_kinds_in_the_lungs_and_relative_kinds_in_soft_tissue() -> None:
    from inference.sample_study import lung_mask

    phantom, _ = make_chest_phantom(shape=(40, 112, 112), spacing=(2.8, 2.8, 2.8))
    lungs = lung_mask(phantom)
    out, mask, specs, regions = insert_mixed(
        phantom, np.random.default_rng(5), ["solid", "hyperdense"], 6, own_region=lung_mask
    )
    assert sorted(np.unique(mask[mask > 0]).tolist()) == list(range(1, len(specs) + 1)) and len(specs) == 6
    kinds = {s["kind"] for s in specs}
    assert kinds == {"solid", "hyperdense"}, kinds  # 6 draws of two kinds: this seed draws both
    for s in specs:
        i, j, k = (round(c) for c in s["centre_ijk"])
        assert lungs[k, j, i] == (s["kind"] == "solid"), s
    assert set(regions.split(",")) == {"lungs", "soft-tissue"}
    assert out.metadata.extra["simulated_lesions"] == specs


def test_a_head_gets_only_the_soft_tissue_kinds_of_a_mixture(head: Volume) -> None:
    _out, _mask, specs, regions = insert_mixed(head, np.random.default_rng(2), ["solid", "hypodense"], 4)
    assert {s["kind"] for s in specs} == {"hypodense"} and regions == "soft-tissue"


def test_parse_kinds() -> None:
    assert parse_kinds("solid, hyperdense,solid") == ["solid", "hyperdense"]
    with pytest.raises(ValueError, match="unknown lesion kind 'cyst'"):
        parse_kinds("solid,cyst")


def test_variants_reuse_a_source_with_other_lesions_in_one_split(tmp_path: Path) -> None:
    phantom, _ = make_chest_phantom(shape=(24, 64, 64), spacing=(5.0, 5.0, 5.0))
    inputs = []
    for n in range(3):
        vox = phantom.voxels.astype(np.int32)
        vox[vox > -950] += np.random.default_rng(n).integers(-10, 11, size=int((vox > -950).sum()))
        path = tmp_path / "in" / f"case{n}.nii.gz"
        path.parent.mkdir(exist_ok=True)
        write_nifti(phantom.with_voxels(vox.astype(np.int16)), path)
        inputs.append(path)
    ds = read_dataset(
        build_dataset(
            DatasetSpec(
                [tmp_path / "in"],
                size=(32, 32),
                split=(0.34, 0.33, 0.33),
                seed=4,
                lesion_insertion={"kind": "solid,hypodense", "per_volume": 2, "variants": 3},
            ),
            tmp_path / "ds",
        )
    )
    sources = ds.manifest["sources"]
    assert len(sources) == 9 and ds.manifest["lesion_insertion"]["variants"] == 3
    by_group: dict[str, set[str]] = {}
    for s in sources:
        by_group.setdefault(s["group"], set()).add(s["split"])
        assert s["name"].endswith(f"#v{s['variant']}")
    assert len(by_group) == 3 and all(len(splits) == 1 for splits in by_group.values())
    centres = [tuple(tuple(les["centre_ijk"]) for les in s["lesions"]) for s in sources]
    assert len(set(centres)) == 9  # every variant has lesions of its own
    with pytest.raises(DatasetError, match="variants must be at least 1"):
        build_dataset(DatasetSpec(inputs, lesion_insertion={"kind": "solid", "variants": 0}), tmp_path / "bad")
