"""Scanning and loading off the GUI thread.

Header parsing is pure Python and would stall the GUI from a thread, so scans run in a worker
process; reading pixel data is I/O and numpy, which release the GIL, so it runs in a thread.
A request carries a generation number: results of a superseded request are dropped.
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from PySide6 import QtCore

from inference.errors import OperationCancelled

# Imported here, at start-up: importing it in the loader thread on first use holds the GIL
# for tens of milliseconds, which the GUI would feel as a stall.
from inference.io.dicom_loader import load_stack
from inference.io.scan import ScanResult
from inference.io.stacks import Stack
from inference.io.thumbnails import scan_with_thumbnails, warm_up
from inference.progress import CancelToken
from inference.volume import Volume
from viewer.controllers.worker import create_worker


class LoadController(QtCore.QObject):
    """Scan a folder, then load stacks; one request at a time, newest wins."""

    scanned = QtCore.Signal(object)  # ScanResult
    thumbnails = QtCore.Signal(object)  # {stack id: uint8 image}
    loaded = QtCore.Signal(object, object)  # Stack, Volume
    failed = QtCore.Signal(str, str)  # what, message
    progress = QtCore.Signal(float, str)
    busy_changed = QtCore.Signal(bool)

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._generation = 0
        self._cancel = CancelToken()
        self._executor: ProcessPoolExecutor | None = None
        self._workers: set[Any] = set()
        self._last_emit = 0.0
        self.busy = False

    # --- public ---------------------------------------------------------------------------
    def scan(self, path: str | Path) -> int:
        """Scan ``path`` in a worker process; emits ``scanned`` or ``failed``."""
        generation = self._begin()
        self.progress.emit(0.0, f"scanning {Path(path).name}…")
        future = self._pool().submit(scan_with_thumbnails, str(path))
        self._run(generation, lambda: self._wait(future, generation), self._on_scanned)
        return generation

    def load(self, stack: Stack) -> int:
        """Load ``stack`` in a thread; emits ``loaded`` or ``failed``. Cancels any earlier request."""
        generation = self._begin()
        cancel = self._cancel

        def work() -> tuple[Stack, Volume]:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # QA is shown from the stack, not as warnings
                volume = load_stack_for_viewer(stack, cancel, lambda f, m: self._report(generation, f, m))
            return stack, volume

        self._run(generation, work, lambda result: self.loaded.emit(*result))
        return generation

    def cancel(self) -> None:
        self._cancel.cancel()
        self._generation += 1
        self._set_busy(False)
        self.progress.emit(0.0, "cancelled")

    def shutdown(self) -> None:
        """Cancel everything and wait for workers; call before the window closes."""
        self._cancel.cancel()
        self._generation += 1
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        QtCore.QThreadPool.globalInstance().waitForDone(10_000)

    # --- internals ------------------------------------------------------------------------
    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        return self._executor

    def warm_up(self) -> None:
        """Start the scan process now, so the first open does not wait for its imports."""
        self._pool().submit(warm_up)

    def _begin(self) -> int:
        self._cancel.cancel()  # the previous request stops at its next check
        self._cancel = CancelToken()
        self._generation += 1
        self._set_busy(True)
        return self._generation

    def _set_busy(self, busy: bool) -> None:
        if busy != self.busy:
            self.busy = busy
            self.busy_changed.emit(busy)

    def _wait(self, future: Future[Any], generation: int) -> Any:
        while True:
            if generation != self._generation:
                future.cancel()
                raise OperationCancelled("superseded")
            try:
                return future.result(timeout=0.05)
            except TimeoutError:
                continue

    def _report(self, generation: int, fraction: float, message: str) -> None:
        now = time.monotonic()
        if generation == self._generation and (now - self._last_emit > 0.05 or fraction >= 1.0):
            self._last_emit = now
            self.progress.emit(fraction, message)

    def _run(self, generation: int, func: Any, on_result: Any) -> None:
        worker = create_worker(func, _start_thread=False)

        def returned(result: Any) -> None:
            if generation == self._generation:
                self._set_busy(False)
                on_result(result)

        def errored(exc: BaseException) -> None:
            if generation != self._generation or isinstance(exc, OperationCancelled):
                return
            self._set_busy(False)
            self.failed.emit(type(exc).__name__, str(exc))

        worker.returned.connect(returned)
        worker.errored.connect(errored)
        self._workers.add(worker)
        worker.finished.connect(lambda: self._workers.discard(worker))
        worker.start()

    def _on_scanned(self, found: tuple[ScanResult, dict[str, Any]]) -> None:
        result, thumbs = found
        self.progress.emit(1.0, f"{len(result.stacks())} stack(s) found")
        self.scanned.emit(result)
        self.thumbnails.emit(thumbs)


def load_stack_for_viewer(stack: Stack, cancel: CancelToken, on_progress: Any) -> Volume:
    """The stack as the viewer opens it (a 4-D acquisition whole: the model shows one volume at a time)."""
    return load_stack(stack, on_progress=on_progress, cancel=cancel)
