"""One fuzzing worker: a long-lived child process that runs cases sent by :mod:`tests.fuzz.runner`.

It reads one JSON request a line on stdin and answers one JSON line on the descriptor that was
its stdout (fd 1 is pointed at stderr, so that whatever a native library prints cannot garble
the answers). Its address space is limited (``RLIMIT_AS``) so that an allocation past the bound
fails here as a ``MemoryError`` instead of swapping the machine; the parent kills it on time-out
and starts another after a crash.

A case: ``scan`` of a folder holding the mutant and two good slices of one series, every stack
loaded with ``load_stack``, the mutant opened alone with ``open_volume``; the good pair must
still be found and load with its own values.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys
import traceback
import warnings
from pathlib import Path
from typing import Any

import numpy as np


def _where(exc: BaseException) -> str:
    """``Type @ file:line`` of the innermost frame in RadLens' own code (else the innermost one)."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/inference/" in f.filename] or frames
    if not ours:
        return type(exc).__name__
    f = ours[-1]
    return f"{type(exc).__module__}.{type(exc).__name__} @ {Path(f.filename).name}:{f.lineno}"


def run_case(request: dict[str, Any], good_values: list[np.ndarray]) -> dict[str, Any]:
    from inference.errors import RadLensError
    from inference.io.dicom_loader import load_stack
    from inference.io.open_path import open_volume
    from inference.io.scan import scan

    if request["no_simpleitk"]:
        os.environ["RADLENS_NO_SIMPLEITK"] = "1"
    else:
        os.environ.pop("RADLENS_NO_SIMPLEITK", None)
    folder = Path(request["dir"])
    good = [str(folder / name) for name in request["good"]]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = scan(folder)
            good_loaded = False
            for stack in result.stacks():
                try:
                    volume = load_stack(stack)
                except RadLensError:
                    continue
                if all(p in stack.paths for p in good):
                    good_loaded = _holds(volume, stack, good, good_values)
            with contextlib.suppress(RadLensError):
                open_volume(folder / request["mutant"])
        if not good_loaded:
            problems = [f"{Path(p.path).name}: {p.error}: {p.reason}" for p in result.errors]
            return {"class": "LOST-GOOD-SERIES", "detail": "; ".join(problems)[:500] or "good pair not found"}
        return {"class": "ok"}
    except MemoryError as exc:
        return {"class": "MEMORY", "detail": _where(exc)}
    except RadLensError as exc:
        return {"class": "LOST-GOOD-SERIES", "detail": f"scan raised {type(exc).__name__}: {exc}"[:500]}
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # the point: anything untyped is a finding
        text = str(exc).splitlines()[0][:200] if str(exc) else ""
        return {"class": "UNTYPED", "detail": f"{_where(exc)}: {text}"}


def _holds(volume: Any, stack: Any, good: list[str], good_values: list[np.ndarray]) -> bool:
    """Whether the good slices are in the volume, each with its own values."""
    voxels = np.asarray(volume.voxels)
    order = [stack.headers[r.header_index].path for r in stack.slices]
    for path, expected in zip(good, good_values, strict=True):
        k = order.index(path)
        if voxels.shape[1:3] != expected.shape or not np.allclose(voxels[k], expected):
            return False
    return True


def main() -> None:
    limit = int(os.environ.get("RADLENS_FUZZ_AS_BYTES", str(3 << 30)))
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    # Everything the cases need, imported before the limit (as a viewer would have them loaded).
    import nibabel  # noqa: F401
    import nrrd  # noqa: F401
    import pydicom  # noqa: F401

    import inference.io.dicom_loader
    import inference.io.image_file
    import inference.io.open_path  # noqa: F401

    with contextlib.suppress(ImportError):
        import SimpleITK  # noqa: F401
    good_values = [np.load(p) for p in json.loads(os.environ["RADLENS_FUZZ_GOOD_VALUES"])]
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    answers.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        answer = run_case(request, good_values)
        answer["id"] = request["id"]
        answers.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
