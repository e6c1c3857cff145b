"""``python -m tests.fuzz --minutes 60``: fuzz RadLens' loaders and print the findings per family.

Reproducers are copied to ``--out`` (default ``$TMPDIR/radlens-fuzz-findings``), one folder per
finding with ``finding.json`` (family, mutation, class, where). Open one again with
``python -m inference.cli.main scan FOLDER`` or ``RADLENS_NO_SIMPLEITK=1`` when the finding says so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tests.fuzz.runner import run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, help="run for this long")
    parser.add_argument("--cases", type=int, help="run this many cases (default with no --minutes: 1000)")
    parser.add_argument("--seed", type=int, default=0, help="master seed: the same seed gives the same cases")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds a case may take before it is a HANG")
    parser.add_argument("--memory-gib", type=float, default=3.0, help="address-space limit of each worker")
    parser.add_argument("--out", type=Path, help="where reproducers go")
    parser.add_argument("--verbose", action="store_true", help="print every finding as it happens")
    args = parser.parse_args(argv)
    cases = args.cases if args.cases is not None or args.minutes is not None else 1000

    def show(case: dict[str, object], cls: str, detail: str) -> None:
        if args.verbose and cls != "ok":
            print(f"{cls:<17} {case['family']:<18} case {case['id']}: {detail}  [{case['note']}]", flush=True)

    report = run(
        cases=cases,
        minutes=args.minutes,
        seed=args.seed,
        workers=args.workers,
        timeout=args.timeout,
        memory_bytes=int(args.memory_gib * (1 << 30)),
        out=args.out,
        on_result=show,
    )
    print(report.table())
    for finding in report.findings[:50]:
        print(f"{finding['class']:<17} {finding['family']:<18} {finding['detail']}  -> {finding['reproducer']}")
    return 1 if report.findings else 0


if __name__ == "__main__":
    sys.exit(main())
