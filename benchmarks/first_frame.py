"""Benchmark: ``radlens view PATH --screenshot out.png`` from process start to the first frame and to exit.

Run from the repository root::

    .venv/bin/python benchmarks/first_frame.py [--slices 300] [--repeats 3]

Two studies, written untimed to a temporary folder: the sample study
(``inference.sample_study.write_sample_study``) and a ``--slices`` × 512 × 512 CT series. For
each, ``python -m inference.cli.main view PATH --screenshot out.png`` runs as a subprocess
(``QT_QPA_PLATFORM=offscreen``, config and cache under the temporary folder) ``--repeats``
times; printed are the medians of the CLI's own "first frame after N ms" (measured from just
before the window is shown) and of the wall time from process start to exit.

Baseline, in the same run: the wall time of ``python -c "import PySide6.QtWidgets, pyqtgraph"``.
Also: ``python -X importtime`` of the same view command, to report whether ``torch`` was
imported (it must not be) and the slowest top-level imports.

Exit status is 0 whatever the PASS/FAIL lines say (this is a measurement, not a test).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _phantom import phantom
from _timing import REPO_ROOT, child_env

from inference.io.dicom_writer import write_dicom_series
from inference.sample_study import write_sample_study


def env_for(work: Path) -> dict[str, str]:
    env = child_env()
    env["QT_QPA_PLATFORM"] = "offscreen"
    env["XDG_CONFIG_HOME"] = str(work / "config")
    env["XDG_CACHE_HOME"] = str(work / "cache")
    return env


def run_view(path: Path, out: Path, env: dict[str, str]) -> tuple[float, float]:
    """(first frame ms as printed by the CLI, wall ms from start to exit)."""
    cmd = [sys.executable, "-m", "inference.cli.main", "view", str(path), "--screenshot", str(out)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False, timeout=110)
    wall = (time.perf_counter() - t0) * 1e3
    found = re.search(r"first frame after (\d+) ms", done.stdout)
    if done.returncode != 0 or found is None or not out.is_file():
        raise RuntimeError(f"view failed ({done.returncode}):\n{done.stdout[-1000:]}\n{done.stderr[-1500:]}")
    return float(found.group(1)), wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300, help="slices of 512×512 in the large CT series")
    parser.add_argument("--repeats", type=int, default=3, help="runs per study (median reported)")
    args = parser.parse_args()

    print("RadLens first-frame benchmark")
    print(f"  python {sys.version.split()[0]}, {os.cpu_count()} CPUs, median of {args.repeats} runs, offscreen")
    work = Path(tempfile.mkdtemp(prefix="radlens-bench-first-"))
    try:
        env = env_for(work)
        t0 = time.perf_counter()
        sample = write_sample_study(work / "sample")
        series = work / "series"
        write_dicom_series(phantom(args.slices), series, spacing=(0.7, 0.7, 1.0), uid_seed="first-frame")
        for folder in (sample, series):
            for p in folder.iterdir():
                p.read_bytes()  # warm page cache
        n_sample = sum(1 for p in sample.iterdir() if p.suffix == ".dcm")
        print(f"  data written in {time.perf_counter() - t0:.1f} s (not timed)")

        base = []
        for _ in range(args.repeats):
            s = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import PySide6.QtWidgets, pyqtgraph"], env=env, check=True)
            base.append((time.perf_counter() - s) * 1e3)
        b = statistics.median(base)
        print(f"\n  {'':<46} {'first frame':>12} {'wall to exit':>13}   wall / baseline")
        print(f"  {'baseline: python -c import PySide6.QtWidgets, pyqtgraph':<46} {'':>12} {b:10.0f} ms")
        for label, folder in (
            (f"sample study ({n_sample} files)", sample),
            (f"CT series {args.slices}×512×512", series),
        ):
            runs = [run_view(folder, work / f"shot-{n}.png", env) for n in range(args.repeats)]
            ff = statistics.median(r[0] for r in runs)
            wall = statistics.median(r[1] for r in runs)
            spread_ff = f"{min(r[0] for r in runs):.0f}–{max(r[0] for r in runs):.0f}"
            print(
                f"  {'radlens view --screenshot, ' + label:<46} {ff:9.0f} ms {wall:10.0f} ms   {wall / b:5.1f}×"
                f"   (first frame range {spread_ff} ms)"
            )

        # Which modules the view command imports, and whether torch is among them.
        cmd = [sys.executable, "-X", "importtime", "-m", "inference.cli.main", "view", str(sample), "--screenshot"]
        done = subprocess.run(
            [*cmd, str(work / "importtime.png")], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False
        )
        rows = []
        for line in done.stderr.splitlines():
            m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
            if m:
                rows.append((int(m.group(2)), len(m.group(3)), m.group(4)))
        names = {name for _, _, name in rows}
        torch = sorted(n for n in names if n == "torch" or n.startswith("torch."))
        verdict = "FAIL" if torch else "PASS"
        print(f"\n  -X importtime: {len(names)} modules; torch imported: {'YES' if torch else 'no'}  {verdict}")
        top = sorted((r for r in rows if r[1] == 1), reverse=True)[:8]
        slowest = ", ".join(f"{n} {us / 1e3:.0f} ms" for us, _, n in top)
        print(f"  slowest top-level imports (cumulative; GUI process and spawned scan worker together): {slowest}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
