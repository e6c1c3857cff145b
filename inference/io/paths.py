"""Path helpers: printable names for any path, including non-UTF-8 ones."""

from __future__ import annotations

import os
from pathlib import Path


def display_path(path: str | os.PathLike[str]) -> str:
    """A printable, JSON-safe form of ``path``; undecodable bytes become U+FFFD."""
    raw = os.fsencode(os.fspath(path))
    return raw.decode("utf-8", errors="replace")


def is_within(path: Path, folder: Path) -> bool:
    """Whether ``path`` lies inside ``folder`` once both are resolved."""
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True
