"""Benchmark: the shipped demo model against the Keras-style baseline, slices/s on the CPU, side by side.

Run from the repository root::

    .venv/bin/python benchmarks/demo_model.py [--slices 300] [--repeats 5] [--device cpu] [--card CARD.toml]

The demo model (``resources/models/ct-nodule-demo``, its shipped weights and card) and the classic
Keras-style baseline (conv 32/64/128 + 2×2 max-pooling, dense 512; seeded random weights: speed
does not depend on the weights' values) classify every slice of the same ``--slices`` × 512 × 512
CT phantom through the engine's ``run`` (preprocessing, batching), alternately, after an
untimed warm-up; figures are medians of ``--repeats``.

The baseline is timed at two input sizes: the demo model's own (the same data, as it was
trained for the accuracy comparison in the demo model's README) and 224 × 224, the literature's.
All are timed classifying (``explain=False``); the demo model is also timed with its attention
map, mapped back to the source grid, and the findings, for context.
Target (the demo-model issue): demo ≥ 3× the baseline's slices/s at the same input size.
Exit status is 0 whatever the PASS/FAIL lines say.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from _phantom import phantom
from _timing import REPO_ROOT, median, spread

from inference.engine.run import LoadedModel, load_model, run
from inference.models.card import ModelCard, load_card
from inference.volume import Volume, VolumeMetadata

DEMO_CARD = REPO_ROOT / "resources" / "models" / "ct-nodule-demo" / "card.toml"
TARGET = 3.0


def baseline_card(demo: ModelCard, folder: Path, size: int) -> ModelCard:
    """A Keras-style baseline card with the demo's input spec (window, context) at ``size``², seeded weights."""
    import torch

    from inference.models.architectures import build_model

    torch.manual_seed(0)
    net = build_model("keras-baseline", in_channels=demo.input.channels, input_size=size)
    buf = io.BytesIO()
    torch.save(net.state_dict(), buf)
    weights = folder / f"keras{size}.pt"
    weights.write_bytes(buf.getvalue())
    window = demo.input.window or (40.0, 400.0)
    path = folder / f"keras{size}.toml"
    path.write_text(
        f"""name = "keras-baseline-{size}"
version = "1.0"
task = "slice-classification"
modality = ["CT"]
architecture = "keras-baseline"
weights = "{weights.name}"
sha256 = "{hashlib.sha256(buf.getvalue()).hexdigest()}"
licence = "benchmark"
intended_use = "benchmark only (random weights)"
explanation = "none"
[architecture_args]
in_channels = {demo.input.channels}
input_size = {size}
[input]
size = [{size}, {size}]
window = [{window[0]}, {window[1]}]
context_slices = {demo.input.context_slices}
batch_size = {demo.input.batch_size}
"""
    )
    return load_card(path)


def network_rate(lm: LoadedModel, size: int, repeats: int, batch: int = 32) -> float:
    """Slices/s of the network alone: forward passes on a ready (batch, C, size, size) tensor."""
    import torch

    x = torch.rand(batch, lm.card.input.channels, size, size, device=lm.device)
    times = []
    with torch.inference_mode():
        lm.network(x)
        for _ in range(repeats):
            t0 = time.perf_counter()
            lm.network(x)
            times.append(time.perf_counter() - t0)
    return batch / median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--slices", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    ap.add_argument("--card", type=Path, default=DEMO_CARD, help="the demo model's card (default: the shipped one)")
    args = ap.parse_args()

    import torch

    demo = load_card(args.card)
    size = (demo.input.size or (128, 128))[0]
    vox = phantom(args.slices, 512, 512, seed=0)
    volume = Volume(vox, (0.7, 0.7, 1.0), (0.0, 0.0, 0.0), np.eye(3), VolumeMetadata(modality="CT"))
    with tempfile.TemporaryDirectory() as tmp:
        models: dict[str, LoadedModel] = {"demo": load_model(demo, args.device)}
        for s in sorted({size, 224}):
            models[f"keras@{s}"] = load_model(baseline_card(demo, Path(tmp), s), args.device)
        # (model, explain): classification alone for all, and the demo with its attention map.
        runs = [(name, False) for name in models] + [("demo", True)]
        times: dict[str, list[float]] = {}
        for name, explain in runs:  # warm-up
            run(models[name], replace(volume, voxels=vox[:40]), explain=explain)
        for _ in range(args.repeats):
            for name, explain in runs:
                t0 = time.perf_counter()
                run(models[name], volume, explain=explain)
                times.setdefault(name + (" + map" if explain else ""), []).append(time.perf_counter() - t0)

    print(f"demo model vs Keras-style baseline: {args.slices} slices of 512², device {models['demo'].device}, ")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, medians of {args.repeats}")
    print(f"demo: {demo.name} {demo.version} ({demo.architecture}, {size}², {demo.input.channels} channels)")
    rate = {k: args.slices / median(v) for k, v in times.items()}
    for name, t in times.items():
        print(f"  {name:<12} {rate[name]:8.1f} slices/s   ({spread(t)} ms per stack)")
    print("  (classification alone; 'demo + map' adds the attention map on the source grid and findings)")
    same = rate["demo"] / rate[f"keras@{size}"]
    lit = rate["demo"] / rate["keras@224"]
    verdict = "PASS" if same >= TARGET else "FAIL"
    print(f"demo / baseline at the same input ({size}²): {same:.2f}×  target ≥ {TARGET:.0f}×  {verdict}")
    print(f"demo / baseline at the literature's 224²: {lit:.2f}×")
    net = {name: network_rate(lm, (lm.card.input.size or (size, size))[0], args.repeats) for name, lm in models.items()}
    print("network alone (batches of 32 ready-made slices, no preprocessing):")
    for name, r in net.items():
        print(f"  {name:<12} {r:8.1f} slices/s")
    same_net, lit_net = net["demo"] / net[f"keras@{size}"], net["demo"] / net["keras@224"]
    print(f"  demo / baseline: {same_net:.2f}× at {size}², {lit_net:.2f}× at 224²")
    return 0


if __name__ == "__main__":
    sys.exit(main())
