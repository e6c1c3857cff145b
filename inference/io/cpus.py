"""Whether a helper thread would have a CPU of its own now."""

from __future__ import annotations

import os


def usable_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def spare_cpu() -> bool:
    """Whether a CPU is free for a helper thread at this moment.

    Helpers that overlap kernel work (page faults, writes) with the calling thread pay only when
    they run at the same time; on a machine whose CPUs are all busy they only add switches. On
    Linux the count of tasks running right now (``/proc/loadavg``, this one included) must leave a
    CPU over; elsewhere two CPUs are taken to be enough.
    """
    cpus = usable_cpus()
    if cpus < 2:
        return False
    try:
        with open("/proc/loadavg", encoding="ascii") as fh:
            running = int(fh.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return True
    return running < cpus
