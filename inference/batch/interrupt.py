"""Stopping a batch run cleanly on SIGTERM (``timeout``, systemd, cluster schedulers) or Ctrl+C.

The first signal cancels the run cooperatively: no new stack starts, the stack being inferred
is rolled back (its maps freed, nothing of it written), the stacks already handed to a writer
are finished with their manifests, the worker processes exit, and the summary is written. A
second signal interrupts at once (the run's ``finally`` blocks still free what they hold). The
exit status is ``128 + signal`` as a shell reports it, and the message says how to resume.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType

from inference.progress import CancelToken


@dataclass
class Stopped:
    """Which signal stopped the run (``signum`` 0: none)."""

    signum: int = 0

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


@contextmanager
def stop_on_signals(cancel: CancelToken) -> Iterator[Stopped]:
    """While inside, SIGTERM and SIGINT cancel ``cancel`` (the second one raises KeyboardInterrupt).
    Outside the main thread (where Python cannot install handlers) it does nothing."""
    stopped = Stopped()
    if threading.current_thread() is not threading.main_thread():
        yield stopped
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if stopped.signum:
            raise KeyboardInterrupt
        stopped.signum = signum
        cancel.cancel()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stopped
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
