"""Soak: does one viewer process stay the same size over a day's use?

Run from the repository root (offscreen is forced unless QT_QPA_PLATFORM is set)::

    .venv/bin/python benchmarks/soak.py [--studies 20] [--changes 10000] [--runs 50] [--slices 60]

``--studies`` CT series of ``--slices`` × 256² (the benchmarks' chest phantom, each its own
series, written untimed) are opened one after the other in one shown main window; across them the
cursor moves ``--changes`` times (slice steps and clicks, each painted) and the default CT model
runs ``--runs`` times (waited for). After the first study (the warm-up: imports, caches, the first
model load) and after every study, the process's resident memory (VmRSS), its thread count and its
open file descriptors are read from ``/proc/self``. The warm-up is the first ``--warmup`` studies
(imports, caches, the first model load, the allocator's pools reaching their size). Target: RSS at
the end within 5 % of the figure after the warm-up; no more threads and no more file descriptors.

Exit status is 0 whatever the PASS/FAIL lines say (this is a measurement, not a test).
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

import numpy as np
from _phantom import phantom
from _timing import REPO_ROOT

if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

RSS_GROWTH_TARGET = 0.05


def process_state() -> dict[str, int]:
    """Resident memory (KiB), threads and open file descriptors of this process (Linux /proc)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "Threads"):
            fields[key] = int(value.split()[0])
    fields["fds"] = len(os.listdir("/proc/self/fd"))
    return fields


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=20)
    parser.add_argument("--changes", type=int, default=10_000, help="cursor moves over all studies")
    parser.add_argument("--runs", type=int, default=50, help="model runs over all studies")
    parser.add_argument("--slices", type=int, default=60, help="slices of 256² per study")
    parser.add_argument("--warmup", type=int, default=3, help="studies before the reference figures are read")
    args = parser.parse_args()
    if not sys.platform.startswith("linux"):
        print("soak: reads /proc/self: Linux only")
        return 0

    from inference.io.dicom_writer import write_dicom_series
    from viewer.app import application
    from viewer.controllers.settings import Settings
    from viewer.controllers.viewer_controller import ViewerController
    from viewer.models.measurements import Plane

    work = Path(tempfile.mkdtemp(prefix="radlens-soak-"))
    t0 = time.perf_counter()
    folders = []
    for n in range(args.studies):
        folder = work / f"study{n:02d}"
        voxels = phantom(args.slices, 256, 256, seed=n)
        write_dicom_series(voxels, folder, spacing=(1.2, 1.2, 2.5), uid_seed=f"soak-{n}", series_description="soak")
        folders.append(folder)
    print(f"RadLens soak: {args.studies} studies of {args.slices}×256² written in {time.perf_counter() - t0:.1f} s")

    app = application()
    controller = ViewerController(settings=Settings(work / "settings" / "viewer.ini"), interactive=False)
    controller.window.resize(1500, 900)
    controller.window.show()
    views = controller.window.mpr.views
    changes_per = max(1, args.changes // args.studies)
    runs = [args.runs // args.studies + (1 if n < args.runs % args.studies else 0) for n in range(args.studies)]
    rng = np.random.default_rng(0)
    states = []
    t_start = time.perf_counter()
    for n, folder in enumerate(folders):
        controller.open_path(folder)
        controller.wait_idle(timeout_s=300)
        cur = controller.model.current
        assert cur is not None, controller.last_error
        nx, ny, nz = cur.shape_xyz
        for m in range(changes_per):
            if m % 3:
                controller.model.step_slice(Plane.AXIAL, 1 if (m // nz) % 2 == 0 else -1)
            else:
                controller.model.set_cursor(
                    (int(rng.integers(0, nx)), int(rng.integers(0, ny)), int(rng.integers(0, nz)))
                )
            for view in views.values():
                view.viewport().repaint()
            if m % 50 == 0:
                app.processEvents()
        for _ in range(runs[n]):
            controller.run_model("ct-nodule-demo")
            controller.wait_idle(timeout_s=300)
        gc.collect()
        app.processEvents()
        states.append(process_state())
        s = states[-1]
        print(
            f"  study {n + 1:2d}: RSS {s['VmRSS'] / 1024:7.1f} MiB, {s['Threads']:3d} threads, {s['fds']:3d} fds"
            f"  ({time.perf_counter() - t_start:6.1f} s)"
        )
    controller.window.close()
    controller.shutdown()
    warm, end = states[min(args.warmup, len(states)) - 1], states[-1]
    growth = (end["VmRSS"] - warm["VmRSS"]) / warm["VmRSS"]
    print(
        f"\n  after warm-up (study {min(args.warmup, len(states))}): RSS {warm['VmRSS'] / 1024:.1f} MiB, "
        f"{warm['Threads']} threads, {warm['fds']} fds"
    )
    last = f"RSS {end['VmRSS'] / 1024:.1f} MiB, {end['Threads']} threads, {end['fds']} fds"
    print(f"  at the end (study {len(states)}):  {last}")
    print(f"  RSS growth after warm-up: {growth * 100:+.1f} % (target ≤ {RSS_GROWTH_TARGET * 100:.0f} %)")
    ok = growth <= RSS_GROWTH_TARGET and end["Threads"] <= warm["Threads"] and end["fds"] <= warm["fds"]
    print(f"  {'PASS' if ok else 'FAIL'}: memory, threads and file descriptors after {args.studies} studies")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
