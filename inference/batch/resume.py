"""Resuming a batch run: which stacks are already done, judged by a manifest written last.

Every output is written under a temporary name and renamed; a stack's manifest
(``radlens-done.json``) is renamed into place only after all its outputs. A run killed at
any moment therefore leaves each stack either complete (manifest present, every listed file
with its recorded size) or redone from scratch on the next run.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from inference.io.stacks import Stack
from inference.models.card import ModelCard

MANIFEST = "radlens-done.json"
MANIFEST_VERSION = 1


def input_fingerprint(stack: Stack) -> str:
    """Changes when any input file of the stack is replaced, edited, added or removed."""
    h = hashlib.sha256()
    for path in sorted(stack.paths):
        try:
            st = os.stat(path)
            h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
        except OSError:
            h.update(f"{path}\0missing\n".encode("utf-8", "surrogateescape"))
    h.update(f"{stack.kind}|{stack.dimensions}|{len(stack.slices)}".encode())
    return h.hexdigest()


def model_fingerprint(card: ModelCard) -> str:
    """The model's name, version and weights: a retrained model with the same version still differs."""
    return f"{card.key}:{card.sha256}"


def stack_key(stack: Stack) -> str:
    """What identifies a stack across runs (not its scan order)."""
    if stack.kind == "file":
        return "file:" + os.path.abspath(stack.file_path)
    first = stack.headers[stack.slices[0].header_index].sop_instance_uid if stack.slices else ""
    last = stack.headers[stack.slices[-1].header_index].sop_instance_uid if stack.slices else ""
    return f"dicom:{stack.study_uid}|{stack.series_uid}|{first}|{last}|{stack.n_slices}"


def read_manifest(stack_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((stack_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("version") == MANIFEST_VERSION else None


def is_complete(stack_dir: Path, expected: dict[str, str]) -> dict[str, Any] | None:
    """The stored manifest when it matches ``expected`` and every listed output is intact."""
    manifest = read_manifest(stack_dir)
    if manifest is None:
        return None
    if any(manifest.get(k) != v for k, v in expected.items()):
        return None
    files = manifest.get("files", {})
    if not isinstance(files, dict):
        return None
    for name, size in files.items():
        try:
            if (stack_dir / name).stat().st_size != size:
                return None
        except OSError:
            return None
    return manifest


def manifest_payload(expected: dict[str, str], stack_dir: Path, files: list[str], row: dict[str, Any]) -> str:
    sizes = {name: (stack_dir / name).stat().st_size for name in files}
    return json.dumps({"version": MANIFEST_VERSION, **expected, "files": sizes, "row": row}, indent=1)


def remove_stale_temporaries(folder: Path) -> int:
    """Temporary files a killed run left behind (``.name.tmp-…``); they are never outputs."""
    n = 0
    if not folder.is_dir():
        return 0
    for root, _dirs, names in os.walk(folder):
        for name in names:
            if name.startswith(".") and ".tmp" in name:
                try:
                    os.unlink(os.path.join(root, name))
                    n += 1
                except OSError:
                    pass
    return n
