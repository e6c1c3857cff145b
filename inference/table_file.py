"""A TOML (or JSON) file read as a table, every failure a typed error that names the file.

Model cards and training configs are both read this way; each passes its own error class.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["read_table"]


def read_table(
    path: str | Path, what: str, error: Callable[[Path, str], Exception], *, json_too: bool = False
) -> dict[str, Any]:
    """The file's top-level table. ``what`` names the file in messages ("the card"); an unreadable
    file or invalid TOML raises ``error(path, reason)``. With ``json_too``, a ``.json`` file is
    read as JSON."""
    p = Path(path)
    try:
        text = p.read_bytes()
    except OSError as exc:
        raise error(p, f"cannot read {what} ({exc.strerror or exc})") from exc
    as_json = json_too and p.suffix == ".json"
    try:
        data: dict[str, Any] = json.loads(text) if as_json else tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(p, f"not valid {'JSON' if as_json else 'TOML'}: {exc}") from exc
    return data
