"""Worker processes that never outlive the batch run that started them.

A ``ProcessPoolExecutor`` worker whose parent is killed (SIGKILL, the OOM killer, a crash)
would otherwise wait forever on its call queue, holding its imports (~90-240 MB) and keeping
``multiprocessing``'s resource tracker alive, which then never frees the run's shared memory.
:func:`init_worker` is the pools' initialiser:

* on Linux the kernel kills the worker when its parent dies (``prctl(PR_SET_PDEATHSIG)``), even
  while it is busy inside C code; elsewhere a daemon thread waits on the parent's sentinel and
  ends the process when it fires;
* the worker ignores SIGINT: Ctrl+C in a terminal reaches the whole process group, and it is the
  parent that decides how the run stops (a worker killed by KeyboardInterrupt mid-stack would
  break the pool and leave half a write behind).

The resource tracker exits once its last client (the parent and every worker) is gone, and
unlinks the shared-memory blocks they left registered.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading

_PR_SET_PDEATHSIG = 1


def _die_with_parent_linux(parent_pid: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    # The parent may have died between fork and prctl: then we were already reparented.
    if os.getppid() != parent_pid:
        os._exit(1)
    return True


def _watch_parent() -> None:
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def wait() -> None:
        parent.join()  # returns when the parent's sentinel closes, i.e. when it has exited
        os._exit(1)

    threading.Thread(target=wait, name="radlens-parent-watch", daemon=True).start()


def init_worker(parent_pid: int) -> None:
    """Initialiser of the batch run's loader and writer processes (``initargs=(os.getpid(),)``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not (sys.platform.startswith("linux") and _die_with_parent_linux(parent_pid)):
        _watch_parent()
