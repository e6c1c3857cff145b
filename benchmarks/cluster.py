"""Benchmark: ``radlens analyze`` locally against ``--cluster`` (Ray Data), in one run.

Run from the repository root (needs ``pip install 'radlens[cluster]'``)::

    .venv/bin/python benchmarks/cluster.py [--stacks 12] [--slices 48] [--size 256] [--device auto]

``--stacks`` CT phantoms are written as DICOM (not timed). Then, each timed end to end including
the scan, into an empty output folder:

1. **local** — the embedded pipeline (``analyze`` without ``--cluster``);
2. **ray, 1 node** — ``--cluster`` on a Ray started here with all the machine's CPUs (its start-up
   is not timed: a cluster is started once and serves many runs);
3. **ray, 1 and 2 worker nodes** — a local multi-node cluster (``ray.cluster_utils.Cluster``): a
   head with no CPUs for work and 1 or 2 worker nodes of ``--cpus-per-node`` CPUs, i.e. 1 and 2
   worker processes' worth of slots for the load, inference and write stages.

Stacks/s of each, and the ratio to local. **Target: ray on one node ≥ 0.8 × local** on the same
cores; the 2-node figure against the 1-node one shows whether the design scales with workers (on
a 2-core machine both nodes share the same two cores, so expect little gain there).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from batch import write_stacks

from inference.batch.pipeline import BatchOptions, analyze

FORMATS = ("mask", "heatmap", "findings")


def timed(inputs: Path, out: Path, device: str, cluster: str) -> float:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    report = analyze([inputs], BatchOptions(out=out, device=device, formats=FORMATS, cluster=cluster))
    took = time.perf_counter() - t0
    assert report.succeeded and report.count("ok", resumed=False) > 0, report.rows
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stacks", type=int, default=12)
    ap.add_argument("--slices", type=int, default=48)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--cpus-per-node", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()

    import ray
    from ray.cluster_utils import Cluster

    work = Path(tempfile.mkdtemp(prefix="radlens-bench-cluster-", dir=args.workdir))
    results: list[tuple[str, float]] = []
    try:
        data = work / "in"
        write_stacks(data, args.stacks, args.slices, args.size)
        print(f"{args.stacks} stacks of {args.slices}×{args.size}² int16; formats {','.join(FORMATS)}")
        timed(data, work / "warm", args.device, "")  # imports, weights and page cache warm for everyone
        results.append(("local pipeline", timed(data, work / "out", args.device, "")))
        ray.init(address="local", include_dashboard=False, log_to_driver=False, object_store_memory=512 * 1024**2)
        try:
            timed(data, work / "warm-ray", args.device, "local")  # the workers import torch once
            results.append(("ray, 1 node", timed(data, work / "out", args.device, "local")))
        finally:
            ray.shutdown()
        for nodes in (1, 2):
            cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
            for _ in range(nodes):
                cluster.add_node(num_cpus=args.cpus_per_node, object_store_memory=256 * 1024**2)
            try:
                ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
                cluster.wait_for_nodes()
                timed(data, work / "warm-nodes", args.device, "local")
                label = f"ray, {nodes} worker node{'s' if nodes > 1 else ''} × {args.cpus_per_node} CPU"
                results.append((label, timed(data, work / "out", args.device, "local")))
            finally:
                ray.shutdown()
                cluster.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    local = results[0][1]
    print(f"\n  {'run':<34} {'seconds':>8} {'stacks/s':>9} {'× local':>8}")
    for name, took in results:
        print(f"  {name:<34} {took:8.2f} {args.stacks / took:9.2f} {local / took:8.2f}")
    ratio = local / results[1][1]
    print(f"\n  ray on one node: {ratio:.2f}× local (target ≥ 0.8): {'PASS' if ratio >= 0.8 else 'FAIL'}")
    if len(results) >= 4:
        print(f"  2 worker nodes vs 1: {results[2][1] / results[3][1]:.2f}× the stacks/s")


if __name__ == "__main__":
    main()
