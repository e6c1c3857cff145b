"""``import inference`` (and every module of it that says so) stays free of the heavy libraries:
torch, Qt, pyqtgraph, SimpleITK and nibabel load inside the functions that need them."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import inference

HEAVY = ("torch", "PySide6", "pyqtgraph", "SimpleITK", "nibabel")
#: Modules that import torch at the top on purpose; only ever imported lazily (ruff's TID253 noqa).
TORCH_AT_TOP = {"inference.models.nets", "inference.engine._fast_nets"}


def _heavy_after_importing(modules: list[str]) -> list[str]:
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(json.dumps(sorted(h for h in {HEAVY!r} if h in sys.modules)))\n"
    )
    root = Path(inference.__file__).parent.parent
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True)
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def test_import_inference_loads_no_heavy_library() -> None:
    assert _heavy_after_importing(["inference"]) == []


def test_no_module_of_inference_loads_a_heavy_library_at_import() -> None:
    names = [m.name for m in pkgutil.walk_packages(inference.__path__, "inference.") if m.name not in TORCH_AT_TOP]
    assert len(names) > 100
    assert _heavy_after_importing(names) == []
    # The check can fail: a module that does import torch at the top is seen.
    assert _heavy_after_importing(sorted(TORCH_AT_TOP)) == ["torch"]
