"""A short fuzz run in the test suite: a few hundred mutated files (fixed seed) beside a good series.

Each case runs the public loading API in an address-space-limited worker; no case may crash, hang,
allocate past the limit, raise an untyped exception or lose the good series. The long run is
``python -m tests.fuzz --minutes 60`` (see README).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz.mutations import FAMILIES
from tests.fuzz.runner import CLASSES, run

CASES = 400


@pytest.mark.slow
def test_short_fuzz_run_finds_nothing(tmp_path: Path) -> None:
    report = run(cases=CASES, seed=2024, workers=2, timeout=30.0, out=tmp_path / "findings")
    print(report.table())
    assert report.cases == CASES
    families = {f for kind in FAMILIES.values() for f in kind}
    assert families <= set(report.counts), f"families never drawn: {families - set(report.counts)}"
    totals = report.by_class()
    findings = [f"{f['class']} {f['family']}: {f['detail']} ({f['note']})" for f in report.findings]
    for cls in CLASSES[:-1]:
        assert totals[cls] == 0, "\n".join(findings)
