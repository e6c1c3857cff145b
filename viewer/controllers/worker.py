"""Running a callable on Qt's thread pool with its result or error delivered on the GUI thread.

(superqt's ``create_worker`` does the same, but importing superqt costs over a second of
start-up through qtpy, so the viewer keeps this small equivalent.)
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from typing import Any, ClassVar

from PySide6 import QtCore


class _Signals(QtCore.QObject):
    returned = QtCore.Signal(object)
    errored = QtCore.Signal(object)
    finished = QtCore.Signal()


class Worker(QtCore.QRunnable):
    """``Worker(func).start()``; connect to ``returned``, ``errored`` and ``finished`` first.

    A started worker keeps itself alive (in ``_live``) until it has finished.
    """

    _live: ClassVar[set[Worker]] = set()

    def __init__(self, func: Callable[[], Any]) -> None:
        super().__init__()
        self.func = func
        self.signals = _Signals()
        self.returned = self.signals.returned
        self.errored = self.signals.errored
        self.finished = self.signals.finished
        self.setAutoDelete(False)

    def run(self) -> None:
        try:
            result = self.func()
        except BaseException as exc:  # delivered to the GUI thread, never lost
            self.signals.errored.emit(exc)
        else:
            self.signals.returned.emit(result)
        finally:
            self.signals.finished.emit()

    def start(self) -> None:
        Worker._live.add(self)
        self.signals.finished.connect(self._release)  # connected last: runs after the caller's slots
        QtCore.QThreadPool.globalInstance().start(self)

    def _release(self) -> None:
        """Drop what the finished worker holds. Its signals' connections hold the caller's slots,
        and those slots (closures) often hold the worker and the volumes and results they were
        made for: a cycle through Qt that Python's collector cannot see, so without this every
        load and run would stay in memory."""
        Worker._live.discard(self)
        self.func = None  # type: ignore[assignment]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # PySide warns for a signal nothing is connected to
            for signal in (self.signals.returned, self.signals.errored, self.signals.finished):
                with contextlib.suppress(RuntimeError, TypeError):
                    signal.disconnect()


def create_worker(func: Callable[[], Any], _start_thread: bool = False) -> Worker:
    return Worker(func)


def run_in_background(
    func: Callable[[], Any],
    workers: set[Any],
    on_result: Callable[[Any], Any],
    on_error: Callable[[BaseException], Any],
) -> Worker:
    """Start ``func`` on the thread pool, its result or error delivered on the GUI thread; the
    worker sits in ``workers`` while it runs (what a controller's ``busy`` looks at)."""
    worker = create_worker(func)
    worker.returned.connect(on_result)
    worker.errored.connect(on_error)
    workers.add(worker)
    worker.finished.connect(lambda: workers.discard(worker))
    worker.start()
    return worker
