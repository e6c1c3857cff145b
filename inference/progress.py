"""Progress callbacks and cooperative cancellation shared by every long operation."""

from __future__ import annotations

import threading
from collections.abc import Callable

from inference.errors import OperationCancelled

#: ``on_progress(fraction, message)`` with fraction in [0, 1].
ProgressCallback = Callable[[float, str], None]


def no_progress(fraction: float, message: str) -> None:
    """A progress callback that ignores everything."""


class CancelToken:
    """Set from any thread; checked by the worker between chunks of work."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise OperationCancelled("cancelled by the user")
