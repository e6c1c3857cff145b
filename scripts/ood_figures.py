"""Print the out-of-distribution scores of in-domain and foreign inputs under the shipped cards' statistics.

    PYTHONPATH=. python scripts/ood_figures.py [PYRADIOMICS_DATA_DIR]

Inputs: the sample chest phantom, the real CT head of Debian's invesalius-examples, Colin27's T1
(mricron-data) read as CT, diffusion-like volumes made from Colin27 (tests/inference/foreign_inputs.py),
chest-only statistics of 4 generated phantoms against 2 held-out phantoms and the CT head; with a
folder holding pyradiomics 3.1.0's ``data/`` (``pip download --no-deps --no-binary :all: pyradiomics==3.1.0``),
its two real chest CTs too. The README's table comes from this script.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

from inference.engine.input_statistics import model_input_quantiles, ood_score
from inference.io.image_file import read_image_file
from inference.io.invesalius import CRANIUM, read_inv3
from inference.models.card import ModelCard
from inference.models.domain import IntensityStats
from inference.models.registry import discover
from inference.sample_study import make_chest_phantom
from inference.training.build_dataset import add_phantoms
from inference.training.domain_statistics import statistics_from_volumes
from inference.volume import Volume, VolumeMetadata
from tests.inference.foreign_inputs import TEMPLATES, colin, dwi_like


def _score(card: ModelCard, volume: Volume, stats: IntensityStats | None = None) -> float:
    chosen = stats or card.domain.intensity
    assert chosen is not None
    return ood_score(model_input_quantiles(volume.voxels, card.input), chosen)


def _features(card: ModelCard, network: object, volume: Volume) -> float:
    from inference.engine.feature_statistics import feature_score, pooled_features

    assert card.domain.features is not None
    return feature_score(pooled_features(network, volume, card.input), card.domain.features)


def main(pyradiomics_data: str | None = None) -> int:
    warnings.simplefilter("ignore")
    registry = discover(include_user=False)
    ct, bet = registry.get("ct-nodule-demo"), registry.get("deepbet-brain")
    voxels, spacing = read_inv3(CRANIUM)
    head = Volume(voxels, spacing, (0.0, 0.0, 0.0), np.eye(3), VolumeMetadata(modality="CT"))
    chest, t1 = make_chest_phantom()[0], colin()
    rows = [
        ("ct-nodule-demo", "sample chest phantom", _score(ct, chest)),
        ("ct-nodule-demo", "real CT head (invesalius)", _score(ct, head)),
        ("ct-nodule-demo", "Colin27 T1 read as CT", _score(ct, t1)),
        ("ct-nodule-demo", "diffusion-like b0 read as CT", _score(ct, dwi_like(0))),
    ]
    if pyradiomics_data:
        for name in ("lung1_image.nrrd", "lung2_image.nrrd"):
            rows.append(
                ("ct-nodule-demo", f"real chest CT {name}", _score(ct, read_image_file(Path(pyradiomics_data) / name)))
            )
    from inference.engine.run import load_model

    network = load_model(ct, "cpu").network
    named = [("sample chest phantom", chest), ("real CT head (invesalius)", head), ("Colin27 T1 read as CT", t1),
             ("diffusion-like b0 read as CT", dwi_like(0))]  # fmt: skip
    if pyradiomics_data:
        named += [
            (f"real chest CT {n}", read_image_file(Path(pyradiomics_data) / n))
            for n in ("lung1_image.nrrd", "lung2_image.nrrd")
        ]
    rows += [("ct-nodule-demo network features", what, _features(ct, network, v)) for what, v in named]
    phantoms = [s.load() for s in add_phantoms(6, seed=1)]
    chest_only = statistics_from_volumes(phantoms[:4], ct.input, "4 phantoms")
    rows += [
        ("chest-only (4 phantoms)", f"held-out phantom {n}", _score(ct, v, chest_only))
        for n, v in enumerate(phantoms[4:], 5)
    ]
    rows.append(("chest-only (4 phantoms)", "real CT head", _score(ct, head, chest_only)))
    rows += [
        ("deepbet-brain", "Colin27 T1 1 mm", _score(bet, t1)),
        ("deepbet-brain", "natbrainlab T1 template", _score(bet, read_image_file(TEMPLATES / "natbrainlab.nii.gz"))),
        ("deepbet-brain", "diffusion-like b0", _score(bet, dwi_like(0))),
        ("deepbet-brain", "diffusion-like b1000", _score(bet, dwi_like(1000))),
    ]
    print(f"thresholds: ct-nodule-demo {ct.domain.intensity.threshold:.2f}, chest-only {chest_only.threshold:.2f}, "  # type: ignore[union-attr]
          f"deepbet {bet.domain.intensity.threshold:.2f}")  # type: ignore[union-attr]  # fmt: skip
    for model, what, score in rows:
        print(f"{model:26s} {what:40s} {score:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None))
