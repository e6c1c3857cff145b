"""The "did you mean" hint for a name a user typed: one wording for cards, configs, models and registries."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["did_you_mean", "unknown_keys"]


def did_you_mean(value: object, known: Iterable[str], *, cutoff: float = 0.6) -> str:
    """``"; did you mean 'cnn'?"`` for the closest known name, or ``""`` when none is close."""
    close = difflib.get_close_matches(str(value), list(known), n=1, cutoff=cutoff)
    return f"; did you mean {close[0]!r}?" if close else ""


def unknown_keys(keys: Iterable[str], allowed: Iterable[str]) -> str:
    """``"'nmae' (did you mean 'name'?), 'x'"`` for the keys not in ``allowed`` (sorted); ``""`` when none."""
    allowed = list(allowed)
    hints = []
    for key in sorted(set(keys) - set(allowed)):
        close = difflib.get_close_matches(key, allowed, n=1)
        hints.append(f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key))
    return ", ".join(hints)
