"""``python -m tests.fuzz.replay FOLDER…``: run saved reproducers again (each in a fresh, limited process).

Each FOLDER is a reproducer the fuzzer saved (it holds ``finding.json``) or a folder of them;
prints the class each case gets now. Exit status 1 when any is not ``ok``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from tests.fuzz.seeds import GOOD_NAMES, build_corpus

_CHILD = """
import json, os, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
import numpy as np
from tests.fuzz.worker import run_case
request = json.loads(sys.argv[1])
values = [np.load(p) for p in json.loads(os.environ["RADLENS_FUZZ_GOOD_VALUES"])]
print(json.dumps(run_case(request, values)))
"""


def replay(folders: list[Path], timeout: float = 20.0) -> dict[str, str]:
    cases = [
        f
        for folder in folders
        for f in (
            [folder] if (folder / "finding.json").exists() else sorted(p.parent for p in folder.rglob("finding.json"))
        )
    ]
    out: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = build_corpus(Path(tmp) / "seeds")
        files = []
        for n, v in enumerate(corpus.good_values):
            np.save(Path(tmp) / f"g{n}.npy", v)
            files.append(str(Path(tmp) / f"g{n}.npy"))
        env = dict(os.environ, RADLENS_FUZZ_GOOD_VALUES=json.dumps(files))
        for case in cases:
            finding = json.loads((case / "finding.json").read_text())
            work = Path(tmp) / "case"
            subprocess.run(["rm", "-rf", str(work)], check=True)
            subprocess.run(["cp", "-r", str(case), str(work)], check=True)
            (work / "finding.json").unlink()
            note = finding.get("note", "")
            if "fifo" in note and not (work / "fifo.raw").exists():
                if "data file detached.raw: fifo" in note:
                    os.mkfifo(work / "detached.raw")
                elif "split.raw: fifo" in note:
                    os.mkfifo(work / "split.raw")
                else:
                    os.mkfifo(work / "fifo.raw")
            if "dir.raw" in note or ": dir" in note:
                for name in ("dir.raw", "detached.raw", "split.raw"):
                    if not (work / name).exists():
                        (work / name).mkdir()
            request = {
                "id": 0,
                "dir": str(work),
                "mutant": finding["seed"],
                "no_simpleitk": finding["no_simpleitk"],
                "good": list(GOOD_NAMES),
            }
            try:
                done = subprocess.run(
                    [sys.executable, "-c", _CHILD, json.dumps(request)],
                    env=env,
                    timeout=timeout,
                    capture_output=True,
                    text=True,
                )
                if done.returncode != 0:
                    result = f"CRASH (status {done.returncode}) {done.stderr.strip().splitlines()[-1:]}"
                else:
                    answer = json.loads(done.stdout.strip().splitlines()[-1])
                    result = answer["class"] + (f": {answer['detail']}" if answer.get("detail") else "")
            except subprocess.TimeoutExpired:
                result = "HANG"
            out[str(case)] = result
            print(f"{case.name:<28} was {finding['class']:<17} now {result}", flush=True)
    return out


if __name__ == "__main__":
    results = replay([Path(a) for a in sys.argv[1:]])
    sys.exit(0 if all(r == "ok" for r in results.values()) else 1)
