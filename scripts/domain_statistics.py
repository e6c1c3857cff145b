"""Print the ``[domain.intensity]`` table of a shipped card, from the data it was trained on (or its proxy).

    PYTHONPATH=. python scripts/domain_statistics.py ct-nodule-demo   # phantoms + pseudo-CT heads; + network features
    PYTHONPATH=. python scripts/domain_statistics.py deepbet           # Colin27 T1 with intensity variations

``ct-nodule-demo`` was trained on generated chest phantoms and pseudo-CT heads from Colin27
(``train.toml`` beside its card): the same generators, with the same options, give its inputs
again (without the lesions, which change a few hundred voxels of millions). deepbet was trained on
T1 MRI we do not have; the documented proxy is Colin27's T1 at 1 mm and 0.5 mm under the intensity
variations of real T1 scans (gamma 0.7–1.4, a smooth multiplicative bias field of ±20 %, noise of
1–3 % of the range): what a model trained on many T1 scanners has seen at least.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from inference.models.card import load_card
from inference.training.config import dumps_toml
from inference.training.domain_statistics import statistics_from_volumes
from inference.volume import Volume

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = Path("/usr/share/mricron/templates")


def ct_demo_inputs() -> Iterator[Volume]:
    from inference.training.build_dataset import add_phantoms
    from inference.training.pseudo_ct import add_pseudo_ct

    for source in add_phantoms(12, seed=0, vessels=True):
        yield source.load()
    heads = add_pseudo_ct(
        TEMPLATES / "ch2.nii.gz", TEMPLATES / "ch2bet.nii.gz", 12, seed=0, deform_mm=4.0, atrophy_mm=2.0, calcify=True
    )
    for source in heads:
        yield source.load()


def t1_variations(seed: int = 0) -> Iterator[Volume]:
    from scipy import ndimage

    from inference.io.image_file import read_image_file

    rng = np.random.default_rng(seed)
    for name in ("ch2.nii.gz", "ch2better.nii.gz"):
        base = read_image_file(TEMPLATES / name)
        vox = np.asarray(base.voxels, dtype=np.float32)
        top = float(np.percentile(vox, 99.5))
        for _ in range(8):
            gamma = float(rng.uniform(0.7, 1.4))
            coarse = rng.normal(0.0, 1.0, size=(4, 4, 4)).astype(np.float32)
            zoomed = ndimage.zoom(coarse, np.array(vox.shape) / 4.0, order=3)
            bias = zoomed[: vox.shape[0], : vox.shape[1], : vox.shape[2]]
            bias = 1.0 + 0.2 * bias / max(1e-6, float(np.abs(bias).max()))
            noisy = np.clip(vox / top, 0, None) ** gamma * bias
            noisy += rng.normal(0.0, rng.uniform(0.01, 0.03), size=vox.shape).astype(np.float32)
            yield replace(base, voxels=np.clip(noisy, 0, None).astype(np.float32) * 1000.0)


SOURCES = {
    "ct-nodule-demo": (ct_demo_inputs, "12 generated chest phantoms with vessels and 12 pseudo-CT heads from Colin27 "
                       "(the generators of its training data, scripts/domain_statistics.py)"),
    "deepbet": (t1_variations, "proxy: Colin27 T1 at 1 mm and 0.5 mm, 8 intensity variations each "
                "(gamma, bias field, noise; scripts/domain_statistics.py)"),
}  # fmt: skip


def main(name: str) -> int:
    make, source = SOURCES[name]
    card = load_card(REPO / "resources" / "models" / name / "card.toml")
    volumes = list(make())
    domain: dict[str, object] = {"intensity": statistics_from_volumes(volumes, card.input, source).table()}
    if not card.pipeline:  # a network RadLens builds: its pooled features too
        from inference.engine.feature_statistics import pooled_features, training_features
        from inference.engine.run import load_model

        network = load_model(card, "cpu").network
        features = training_features((pooled_features(network, v, card.input) for v in volumes), source)
        domain["features"] = features.table()
    print(dumps_toml({"domain": domain}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
