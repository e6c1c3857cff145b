"""The packaged app, built and run as a user gets it: ``packaging/smoke_test.sh``.

It builds the PyInstaller bundle (about 2 minutes here), unpacks the archive into a temporary
folder and runs every command from there with no Python on PATH (about 1 minute). It is part of
the default run; ``-m "not packaging"`` leaves it out.
"""

from __future__ import annotations

import faulthandler
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 1500


@pytest.fixture
def long_faulthandler_timeout() -> Iterator[None]:
    """The suite dumps tracebacks after 300 s (faulthandler_timeout); the build takes longer."""
    faulthandler.cancel_dump_traceback_later()
    faulthandler.dump_traceback_later(TIMEOUT_S + 60, exit=False)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.mark.packaging
@pytest.mark.slow
@pytest.mark.usefixtures("long_faulthandler_timeout")
def test_bundle_smoke() -> None:
    if not sys.platform.startswith("linux"):
        pytest.fail("the packaging smoke test runs on Linux (macOS/Windows: see README, Packaging)")
    done = subprocess.run(
        ["bash", str(REPO / "packaging" / "smoke_test.sh")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    report = done.stdout[-12000:] + ("\nstderr:\n" + done.stderr[-4000:] if done.returncode else "")
    assert done.returncode == 0, report
    assert "0 failed" in done.stdout.splitlines()[-1], report
    # The build prints the budget; keep it in the test log (pytest -rA or -s shows it).
    budget = done.stdout[done.stdout.find("== Budget") :].split("\n\n")[0]
    print(budget)
