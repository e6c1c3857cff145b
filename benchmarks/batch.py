"""Benchmark: ``radlens analyze`` throughput against its two stages, and its peak memory.

Run from the repository root::

    .venv/bin/python benchmarks/batch.py [--stacks 20] [--slices 96] [--size 512] [--formats all]

``--stacks`` CT chest phantoms (``--slices`` × ``--size``², int16, each its own study and series)
are written as DICOM into a temporary folder (not timed) and read once so the page cache is warm.
Then, in this one run:

1. **Stages**, one stack at a time in this process, nothing overlapped: (a) load — the batch
   loader's own function on each scanned stack; (b) inference — ``run`` of the default CT model
   (weights loaded beforehand) on each loaded volume; (c) writing the chosen outputs, for context.
   Sums over all stacks.
2. **analyze** — ``inference.batch.pipeline.analyze`` on the folder, into an empty output folder
   (the loader and the writer in worker processes), timed end to end including the
   scan, as stacks/s.
   Stages and analyze alternate ``--repeats`` times (medians), so a change in the machine's
   load hits both. The bound is set by the slowest of the three stages, each given the cores the
   pipeline gives it: stacks / max(Σload / loaders, Σinference, Σwrite / writers), the inference
   timed with the torch threads the pipeline leaves it (on the CPU one core per writer process is
   left free). Sequential: stacks / (Σload + Σinference + Σwrite). **Target: analyze ≥ 0.9 × the
   bound.** (The old bound, max(Σload, Σinference), ignored the writer and could not be met on 2 cores.)
3. **Peak memory** — ``radlens analyze`` in a fresh interpreter on half of the stacks and on all
   of them: VmHWM of the main process and of the largest loader child. It must not grow with the
   number of stacks (ratio ≈ 1.0).

``--device cuda`` runs the model on the GPU. Exit status is 0 whatever the PASS/FAIL lines say.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

from _timing import HWM_SNIPPET, child_hwm_kib, median, run_python

from inference.batch.identity import Identity
from inference.batch.pipeline import BatchOptions, analyze, default_jobs, default_writers, load_for_batch
from inference.batch.stack_outputs import DEFAULT_FORMATS, FORMATS, write_stack_outputs
from inference.engine.run import load_model, run
from inference.io.dicom_writer import write_dicom_series
from inference.io.scan import scan
from inference.models.registry import discover
from inference.sample_study import make_chest_phantom


@contextlib.contextmanager
def pipeline_threads(device: str, writers: int) -> Iterator[None]:
    """The torch threads ``analyze`` gives the model on the CPU (a core left to each writer)."""
    import torch

    from inference.engine.device import configure_cpu_threads

    before = torch.get_num_threads()
    if device == "cpu":
        configure_cpu_threads(leave_free=writers)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def write_stacks(root: Path, n: int, slices: int, size: int) -> None:
    volume, _ = make_chest_phantom(shape=(slices, size, size), spacing=(1.8, 1.8, 4.0))
    for s in range(n):
        write_dicom_series(
            volume.voxels,
            root / f"study{s:03d}",
            spacing=volume.spacing,
            origin=volume.origin,
            modality="CT",
            uid_seed=f"bench-batch-{s}",
            series_number=s + 1,
        )
    for p in root.rglob("*"):  # warm the page cache
        if p.is_file():
            p.read_bytes()


_PEAK_CHILD = """
import resource, sys
from pathlib import Path
from inference.batch.pipeline import BatchOptions, analyze
formats = tuple(sys.argv[3].split(","))
options = BatchOptions(out=Path(sys.argv[1]), device=sys.argv[2], formats=formats)
report = analyze([Path(p) for p in sys.argv[4:]], options)
assert report.succeeded, report.rows
children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print("CHILD", children)
"""


def peak_memory(inputs: list[Path], out: Path, device: str, formats: tuple[str, ...]) -> tuple[int, int]:
    """(main process VmHWM, largest child's maxrss) in bytes for one analyze run."""
    program = HWM_SNIPPET + _PEAK_CHILD + "print('HWM', _hwm_kib())\n"
    stdout = run_python(program, str(out), device, ",".join(formats), *map(str, inputs))
    children = [line for line in stdout.splitlines() if line.startswith("CHILD ")][-1]
    return child_hwm_kib(stdout) * 1024, int(children.split()[1]) * 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stacks", type=int, default=20)
    ap.add_argument("--slices", type=int, default=96)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument(
        "--formats", default="default", help=f"comma-separated from {','.join(FORMATS)}, or all, or default"
    )
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    named = {"all": FORMATS, "default": DEFAULT_FORMATS}
    formats = named.get(args.formats) or tuple(args.formats.split(","))
    work = Path(tempfile.mkdtemp(prefix="radlens-bench-batch-", dir=args.workdir))
    try:
        data = work / "in"
        t0 = time.perf_counter()
        write_stacks(data, args.stacks, args.slices, args.size)
        mb = args.stacks * args.slices * args.size * args.size * 2 / 1e6
        took = time.perf_counter() - t0
        print(f"{args.stacks} stacks of {args.slices}×{args.size}² int16 ({mb:.0f} MB) written in {took:.1f} s")

        registry = discover()
        card = registry.default_for("CT")
        assert card is not None
        lm = load_model(card, args.device)
        stacks = scan(data).stacks()
        identity = Identity()
        n = len(stacks)
        sums: dict[str, list[float]] = {"load": [], "inference": [], "write": []}
        walls: list[float] = []
        jobs = default_jobs()
        writers = default_writers(lm.device, jobs)
        with warnings.catch_warnings(), pipeline_threads(lm.device, writers):
            warnings.simplefilter("ignore")
            vol, _, _ = load_for_batch(stacks[0])  # untimed warm-up of each stage
            assert vol is not None
            run(lm, vol)
            # Stages and analyze alternate, so that a change in the machine's load hits both.
            for rep in range(args.repeats):
                load_s = infer_s = write_s = 0.0
                for k, st in enumerate(stacks):
                    vol, t, err = load_for_batch(st)
                    assert vol is not None, err
                    load_s += t
                    t1 = time.perf_counter()
                    result = run(lm, vol)
                    infer_s += time.perf_counter() - t1
                    t2 = time.perf_counter()
                    write_stack_outputs(
                        work / f"stages{rep}" / f"s{k}", stack=st, volume=vol, result=result, card=card,
                        identity=identity, formats=formats,
                    )  # fmt: skip
                    write_s += time.perf_counter() - t2
                for key, v in zip(sums, (load_s, infer_s, write_s), strict=True):
                    sums[key].append(v)
                t3 = time.perf_counter()
                report = analyze([data], BatchOptions(out=work / f"out{rep}", device=args.device, formats=formats))
                walls.append(time.perf_counter() - t3)
                assert report.succeeded and report.count("ok") == n, report.rows
        sl, si, sw = (median(sums[k]) for k in ("load", "inference", "write"))
        print(f"\nStages, one stack at a time (device {lm.device}; sums over {n} stacks, median of {args.repeats}):")
        print(f"  load       {sl:7.2f} s   ({sl / n * 1e3:6.0f} ms/stack)")
        print(f"  inference  {si:7.2f} s   ({si / n * 1e3:6.0f} ms/stack)")
        print(f"  write      {sw:7.2f} s   ({sw / n * 1e3:6.0f} ms/stack; formats: {','.join(formats)})")
        bound = n / max(sl / jobs, si, sw / writers)
        slowest = max((sl / jobs, "load"), (si, "inference"), (sw / writers, "write"))[1]
        sequential = n / (sl + si + sw)
        wall = median(walls)
        rate = n / wall
        stages = f"{jobs} loader, {writers} writer process(es)"
        print(f"\nanalyze ({stages}): {wall:.2f} s = {rate:.3f} stacks/s "
              f"(runs: {', '.join(f'{w:.1f}' for w in walls)} s)")  # fmt: skip
        print(f"  bound (slowest stage: {slowest}) {bound:.3f} stacks/s   ratio {rate / bound:.2f}")
        print(f"  sequential (sum)       {sequential:.3f} stacks/s   ratio {rate / sequential:.2f}")
        print(f"  {'PASS' if rate >= 0.9 * bound else 'FAIL'}: target analyze ≥ 0.9 × bound")
        old = n / max(sl, si)
        print(f"  context: the old bound, load and inference only {old:.3f} stacks/s (ratio {rate / old:.2f})")

        half = [p for p in sorted(data.iterdir())[: max(1, n // 2)]]
        main_half, child_half = peak_memory(half, work / "mem_half", args.device, formats)
        main_all, child_all = peak_memory([data], work / "mem_all", args.device, formats)
        print(f"\nPeak memory (VmHWM main / largest loader child), {len(half)} vs {n} stacks:")
        print(f"  {len(half):3d} stacks: {main_half / 1e6:7.0f} MB / {child_half / 1e6:5.0f} MB")
        print(f"  {n:3d} stacks: {main_all / 1e6:7.0f} MB / {child_all / 1e6:5.0f} MB")
        growth = main_all / main_half
        print(f"  ratio {growth:.2f} — {'PASS' if growth <= 1.1 else 'FAIL'}: must not grow with the number of stacks")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
