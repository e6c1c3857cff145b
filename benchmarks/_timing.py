"""Small helpers shared by the benchmark scripts: median timing, child-process peak memory."""

from __future__ import annotations

import gc
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


def median_time(fn: Callable[[], Any], repeats: int, *, setup: Callable[[], Any] | None = None) -> list[float]:
    """Run ``fn`` ``repeats`` times; return the wall times in seconds (``setup`` runs untimed before each)."""
    times = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def median(times: Sequence[float]) -> float:
    return statistics.median(times)


def spread(times: Sequence[float]) -> str:
    """``min–max`` in ms, for the report."""
    return f"{min(times) * 1e3:.0f}–{max(times) * 1e3:.0f}"


def child_env() -> dict[str, str]:
    """Environment for child interpreters: the repository importable, no stray threads from BLAS."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


# Printed by the child as its last line: the high-water mark of its resident set, in KiB.
HWM_SNIPPET = """
def _hwm_kib():
    with open("/proc/self/status") as fp:
        for line in fp:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
"""


def run_python(code: str, *args: str) -> str:
    """Run ``code`` in a fresh interpreter (the repository importable, ``sys.argv[1:]`` = ``args``);
    its standard output. A failure raises RuntimeError with the end of its standard error."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO_ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"child failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done.stdout


def child_hwm_kib(stdout: str) -> int:
    """The peak RSS (VmHWM, KiB) a child printed as ``HWM n`` (see :data:`HWM_SNIPPET`)."""
    return int([line for line in stdout.splitlines() if line.startswith("HWM ")][-1].split()[1])


def child_peak_rss(code: str, *args: str) -> int:
    """Run ``code`` in a fresh interpreter and return its peak RSS (VmHWM) in bytes.

    ``code`` runs after the helper is defined; ``sys.argv[1:]`` holds ``args``.
    """
    return child_hwm_kib(run_python(HWM_SNIPPET + code + "\nprint('HWM', _hwm_kib())\n", *args)) * 1024
