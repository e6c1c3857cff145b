"""A minimal synchronous event: models emit, controllers and views listen. No Qt."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from typing import Any, Generic, ParamSpec

P = ParamSpec("P")


class Event(Generic[P]):
    """Call every connected callback with the emitted arguments, in connection order."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[P, Any]] = []
        self._blocked = 0

    def connect(self, callback: Callable[P, Any]) -> Callable[P, Any]:
        self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable[P, Any]) -> None:
        self._callbacks.remove(callback)

    def emit(self, *args: P.args, **kwargs: P.kwargs) -> None:
        if self._blocked:
            return
        for cb in list(self._callbacks):
            cb(*args, **kwargs)

    @contextmanager
    def blocked(self) -> Any:
        self._blocked += 1
        try:
            yield
        finally:
            self._blocked -= 1
