"""Benchmark: does the viewer's GUI thread keep ticking while a CT series is opened?

Run from the repository root (offscreen is forced unless QT_QPA_PLATFORM is set)::

    .venv/bin/python benchmarks/gui_responsiveness.py [--slices 300] [--interval 10]

A ``--slices`` × 512 × 512 CT series is written (``write_dicom_series``, untimed) to a temporary
folder. In a shown 1500 × 900 main window (settings in the temporary folder) a ``QTimer`` fires
every ``--interval`` ms; ``controller.open_path(folder)`` is called (header scan in a worker
process, pixel load in a thread, then the first render on the GUI thread) and the delay of every
tick (actual interval − nominal) is recorded until ``volume_shown``. Target: p99 tick delay
≤ 20 ms (no visible stall).

Baseline, in the same run: the tick delays of the same window with an idle event loop for the
same duration. The load time (``open_path`` to ``volume_shown``) is printed too, and the longest
stalls with the time at which they happened.

Exit status is 0 whatever the PASS/FAIL lines say (this is a measurement, not a test).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

import itertools

import numpy as np
from _phantom import phantom

from inference.io.dicom_writer import write_dicom_series

SPACING = (0.7, 0.7, 1.0)
WINDOW_SIZE = (1500, 900)
P99_TARGET_MS = 20.0


def tick_delays(app: object, interval_ms: int, run: object, timeout_s: float) -> tuple[list[float], list[float], float]:
    """Run the event loop with a ``interval_ms`` timer until ``run(stop)`` calls ``stop()``.

    Returns (delays in ms, tick times in s from the start, duration in s).
    """
    from PySide6 import QtCore

    loop = QtCore.QEventLoop()
    timer = QtCore.QTimer()
    timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
    timer.setInterval(interval_ms)
    stamps: list[float] = []
    timer.timeout.connect(lambda: stamps.append(time.perf_counter()))
    guard = QtCore.QTimer()
    guard.setSingleShot(True)
    guard.timeout.connect(loop.quit)
    guard.start(int(timeout_s * 1000))
    end: list[float] = []

    def stop() -> None:
        end.append(time.perf_counter())
        loop.quit()

    timer.start()
    t0 = time.perf_counter()
    stamps.append(t0)
    QtCore.QTimer.singleShot(0, lambda: run(stop))  # type: ignore[operator]
    loop.exec()
    timer.stop()
    guard.stop()
    t1 = end[0] if end else time.perf_counter()
    stamps.append(t1)  # the gap up to the end counts (a stall that the last tick never saw)
    delays = [max((b - a) * 1e3 - interval_ms, 0.0) for a, b in itertools.pairwise(stamps)]
    return delays, [s - t0 for s in stamps[1:]], t1 - t0


def summary(delays: list[float]) -> tuple[float, float, float]:
    a = np.asarray(delays)
    return float(np.percentile(a, 50)), float(np.percentile(a, 99)), float(a.max())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=300, help="slices of 512×512 in the CT series")
    parser.add_argument("--interval", type=int, default=10, help="timer interval in ms")
    parser.add_argument("--workdir", type=Path, default=None, help="where to make the temporary folder")
    args = parser.parse_args()

    import pyqtgraph as pg
    import PySide6
    from PySide6 import QtCore

    from viewer.app import application
    from viewer.controllers.settings import Settings
    from viewer.controllers.viewer_controller import ViewerController

    app = application()
    print("RadLens GUI-responsiveness benchmark")
    print(
        f"  python {platform.python_version()}, PySide6 {PySide6.__version__}, pyqtgraph {pg.__version__}, "
        f"Qt platform {app.platformName()}, {os.cpu_count()} CPUs"
    )
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="radlens-bench-gui-", dir=args.workdir))
    try:
        t0 = time.perf_counter()
        series = work / "series"
        write_dicom_series(phantom(args.slices), series, spacing=SPACING, series_description="bench", uid_seed="gui")
        for p in series.iterdir():  # warm page cache, as in load_series.py
            p.read_bytes()
        print(
            f"  {args.slices} slices × 512×512 written in {time.perf_counter() - t0:.1f} s (not timed); "
            f"timer {args.interval} ms, PreciseTimer"
        )

        controller = ViewerController(settings=Settings(work / "viewer.ini"), interactive=False)
        window = controller.window
        window.resize(*WINDOW_SIZE)
        window.show()
        for _ in range(5):
            app.processEvents()

        shown: list[float] = []
        marks: list[tuple[str, float]] = []

        def open_series(stop: object) -> None:
            start = time.perf_counter()

            def done(_volume: object) -> None:
                shown.append(time.perf_counter() - start)
                stop()  # type: ignore[operator]

            controller.volume_shown.connect(done)
            for name in ("scanned", "thumbnails", "loaded"):
                getattr(controller.loader, name).connect(
                    lambda *_a, n=name: marks.append((n, time.perf_counter() - start))
                )

            def failed(message: str) -> None:
                print(f"  error: {message}")
                stop()  # type: ignore[operator]

            controller.error_shown.connect(failed)
            controller.open_path(series)

        load_d, load_t, load_s = tick_delays(app, args.interval, open_series, timeout_s=110)
        if not shown:
            print(f"  the volume was not shown within {load_s:.0f} s: {controller.last_error or 'timeout'}")
        # Let the deferred paints of the first frame finish, then the idle baseline, same length.
        for _ in range(10):
            app.processEvents()

        def stay_idle(stop: object) -> None:
            QtCore.QTimer.singleShot(int(load_s * 1000), stop)  # type: ignore[arg-type]

        idle_d, _, _ = tick_delays(app, args.interval, stay_idle, timeout_s=load_s + 5)

        print(f"\n  load time, open_path → volume_shown: {shown[0] * 1e3 if shown else float('nan'):.0f} ms")
        print(f"  {'tick delay (actual interval − nominal)':<44} {'p50':>7} {'p99':>7} {'max':>7}  ticks")
        i50, i99, imax = summary(idle_d)
        l50, l99, lmax = summary(load_d)
        print(f"  {'baseline: idle event loop, same duration':<44} {i50:7.2f} {i99:7.2f} {imax:7.2f}  {len(idle_d)}")
        verdict = "PASS" if l99 <= P99_TARGET_MS else "FAIL"
        print(
            f"  {'while opening the series':<44} {l50:7.2f} {l99:7.2f} {lmax:7.2f}  {len(load_d)}"
            f"  target p99 ≤ {P99_TARGET_MS:g} ms  {verdict}"
        )
        print(
            f"  ratio to idle: p50 {l50 / max(i50, 1e-3):.1f}×, p99 {l99 / max(i99, 1e-3):.1f}×, "
            f"max {lmax / max(imax, 1e-3):.1f}×; expected ticks {load_s * 1e3 / args.interval:.0f}, "
            f"got {len(load_d)}"
        )
        worst = sorted(range(len(load_d)), key=lambda n: load_d[n], reverse=True)[:5]
        stalls = ", ".join(f"{load_d[n]:.0f} ms ending at {load_t[n] * 1e3:.0f} ms" for n in sorted(worst))
        events = ", ".join(f"{n} {t * 1e3:.0f}" for n, t in marks)
        print(f"  loader signals (ms from open_path): {events}, volume_shown {shown[0] * 1e3 if shown else 0:.0f}")
        print(f"  longest stalls (time from open_path): {stalls}")
        window.close()
        controller.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
