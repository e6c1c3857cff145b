"""The fuzzing loop: cases made from seeds and mutation families, run in a small pool of workers.

Each case is a folder holding one mutant (and its detached data file, if any) beside the two
good slices; a worker (:mod:`tests.fuzz.worker`) runs the public loading API on it under an
address-space limit, and the parent classifies the outcome:

* ``CRASH``: the worker died (a signal such as SIGABRT or SIGSEGV, or a non-zero exit);
* ``HANG``: no answer within the time-out (the worker is killed);
* ``MEMORY``: a ``MemoryError``: something tried to allocate past the limit;
* ``UNTYPED``: an exception that is not a ``RadLensError`` left the API;
* ``LOST-GOOD-SERIES``: the good pair was not found, or did not load with its own values;
* ``ok``.

Each finding's case folder is copied to ``<out>/<CLASS>/<family>-<case>/`` with ``finding.json``.
"""

from __future__ import annotations

import json
import os
import random
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tests.fuzz.mutations import FAMILIES, Mutant, companion_mutation
from tests.fuzz.seeds import GOOD_NAMES, Corpus, Seed, build_corpus

CLASSES = ("CRASH", "HANG", "MEMORY", "UNTYPED", "LOST-GOOD-SERIES", "ok")
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Report:
    counts: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    findings: list[dict[str, Any]] = field(default_factory=list)
    cases: int = 0
    seconds: float = 0.0

    def add(self, family: str, cls: str, finding: dict[str, Any] | None) -> None:
        self.counts[family][cls] += 1
        self.cases += 1
        if finding is not None:
            self.findings.append(finding)

    def by_class(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for c in self.counts.values():
            total.update(c)
        return total

    def table(self) -> str:
        rows = [f"{'family':<20}" + "".join(f"{c:>18}" for c in CLASSES)]
        for family in sorted(self.counts):
            rows.append(f"{family:<20}" + "".join(f"{self.counts[family][c]:>18}" for c in CLASSES))
        total = self.by_class()
        rows.append(f"{'all':<20}" + "".join(f"{total[c]:>18}" for c in CLASSES))
        rows.append(f"{self.cases} cases in {self.seconds:.0f} s")
        return "\n".join(rows)


class _Worker:
    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fuzz.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=REPO,
            env=env,
            text=True,
            bufsize=1,
        )
        assert self.proc.stdout is not None
        ready = self.proc.stdout.readline()
        if not ready:
            raise RuntimeError("a fuzz worker failed to start")
        self.case: dict[str, Any] | None = None
        self.deadline = 0.0

    def send(self, case: dict[str, Any], timeout: float) -> None:
        assert self.proc.stdin is not None
        self.case = case
        self.deadline = time.monotonic() + timeout
        request = {k: case[k] for k in ("id", "dir", "mutant", "no_simpleitk", "good")}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def make_case(corpus: Corpus, index: int, master: int, root: Path) -> dict[str, Any]:
    rng = random.Random(f"{master}-{index}")
    seed: Seed = rng.choice(corpus.seeds)
    data = seed.path.read_bytes()
    companions = {p.name: p.read_bytes() for p in seed.companions}
    if companions and rng.random() < 0.25:
        family = f"{seed.kind}-datafile"
        mutant: Mutant = companion_mutation(data, companions, rng)
    else:
        family, mutate = rng.choice(sorted(FAMILIES[seed.kind].items()))
        mutant = mutate(data, rng)
        mutant.companions = {**companions, **mutant.companions}
    folder = root / f"case-{index}"
    folder.mkdir()
    (folder / seed.name).write_bytes(mutant.data)
    for name, body in mutant.companions.items():
        if name not in mutant.specials:
            (folder / name).write_bytes(body)
    for name, what in mutant.specials.items():
        target = folder / name
        if target.exists():
            target.unlink()
        if what == "fifo":
            os.mkfifo(target)
        else:
            target.mkdir()
    for good in corpus.good_paths:
        shutil.copyfile(good, folder / good.name)
    return {
        "id": index,
        "dir": str(folder),
        "mutant": seed.name,
        "seed": seed.name,
        "family": family,
        "note": mutant.note,
        "no_simpleitk": rng.random() < 0.4,
        "good": list(GOOD_NAMES),
    }


def _save(case: dict[str, Any], cls: str, detail: str, out: Path) -> dict[str, Any]:
    finding = {**{k: case[k] for k in ("id", "seed", "family", "note", "no_simpleitk")}, "class": cls, "detail": detail}
    target = out / cls / f"{case['family']}-{case['id']}"
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for entry in Path(case["dir"]).iterdir():
        if entry.is_file() and not entry.is_symlink():
            shutil.copyfile(entry, target / entry.name)
    finding["reproducer"] = str(target)
    (target / "finding.json").write_text(json.dumps(finding, indent=2) + "\n")
    return finding


def run(
    *,
    cases: int | None = None,
    minutes: float | None = None,
    seed: int = 0,
    workers: int = 2,
    timeout: float = 20.0,
    memory_bytes: int = 3 << 30,
    out: Path | None = None,
    on_result: Any = None,
) -> Report:
    """Run ``cases`` cases (or as many as fit in ``minutes``) and return the counts and findings."""
    if cases is None and minutes is None:
        raise ValueError("give cases or minutes")
    report = Report()
    started = time.monotonic()
    stop_at = started + 60 * minutes if minutes is not None else float("inf")
    with tempfile.TemporaryDirectory(prefix="radlens-fuzz-") as tmp:
        root = Path(tmp)
        corpus = build_corpus(root / "seeds")
        values_files = []
        for n, values in enumerate(corpus.good_values):
            f = root / f"good_values_{n}.npy"
            np.save(f, values)
            values_files.append(str(f))
        out = out if out is not None else Path(tempfile.gettempdir()) / "radlens-fuzz-findings"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env["RADLENS_FUZZ_AS_BYTES"] = str(memory_bytes)
        env["RADLENS_FUZZ_GOOD_VALUES"] = json.dumps(values_files)
        cases_dir = root / "cases"
        cases_dir.mkdir()
        pool = [_Worker(env) for _ in range(workers)]
        selector = selectors.DefaultSelector()
        for w in pool:
            assert w.proc.stdout is not None
            selector.register(w.proc.stdout, selectors.EVENT_READ, w)
        next_index = 0

        def more() -> bool:
            return (cases is None or next_index < cases) and time.monotonic() < stop_at

        def finish(w: _Worker, cls: str, detail: str) -> None:
            case = w.case
            assert case is not None
            finding = _save(case, cls, detail, out) if cls != "ok" else None
            report.add(case["family"], cls, finding)
            if on_result is not None:
                on_result(case, cls, detail)
            shutil.rmtree(case["dir"], ignore_errors=True)
            w.case = None

        def restart(w: _Worker) -> _Worker:
            assert w.proc.stdout is not None
            selector.unregister(w.proc.stdout)
            w.kill()
            fresh = _Worker(env)
            assert fresh.proc.stdout is not None
            selector.register(fresh.proc.stdout, selectors.EVENT_READ, fresh)
            pool[pool.index(w)] = fresh
            return fresh

        try:
            while True:
                for w in pool:
                    if w.case is None and more():
                        w.send(make_case(corpus, next_index, seed, cases_dir), timeout)
                        next_index += 1
                busy = [w for w in pool if w.case is not None]
                if not busy:
                    break
                wait = max(0.0, min(w.deadline for w in busy) - time.monotonic())
                for key, _ in selector.select(timeout=wait):
                    w = key.data
                    line = key.fileobj.readline()  # type: ignore[union-attr]
                    if w.case is None:
                        continue
                    if not line:  # the worker died
                        code = w.proc.wait()
                        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
                        finish(w, "CRASH", how)
                        restart(w)
                        continue
                    answer = json.loads(line)
                    finish(w, answer["class"], answer.get("detail", ""))
                now = time.monotonic()
                for w in list(pool):
                    if w.case is not None and now > w.deadline:
                        finish(w, "HANG", f"no answer in {timeout:.0f} s")
                        restart(w)
        finally:
            for w in pool:
                w.kill()
    report.seconds = time.monotonic() - started
    return report
