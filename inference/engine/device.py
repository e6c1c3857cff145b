"""Choosing where inference runs: CUDA, then Apple MPS, then the CPU."""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
from typing import Any

from inference.errors import DeviceError

__all__ = [
    "DEVICE_CHOICES",
    "autocast",
    "autocast_dtype",
    "configure_cpu_threads",
    "is_out_of_memory",
    "keep_freed_memory",
    "select_device",
]

#: glibc ``mallopt`` parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_heap_kept = False

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")


def select_device(preference: str = "auto") -> str:
    """The device to use; an explicit request for a missing device is an error, never a silent fallback."""
    import torch

    pref = preference.lower()
    if pref not in DEVICE_CHOICES and not pref.startswith("cuda:"):
        raise DeviceError(f"unknown device {preference!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if pref == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if pref.startswith("cuda") and not cuda:
        raise DeviceError("CUDA was requested but no CUDA device is available (CPU-only torch or no GPU)")
    if pref == "mps" and not mps:
        raise DeviceError("MPS was requested but is not available on this machine")
    return pref


def configure_cpu_threads(leave_free: int = 1) -> int:
    """Use all cores but ``leave_free`` (one for the GUI); returns the thread count set."""
    import torch

    n = max(1, (os.cpu_count() or 1) - leave_free)
    torch.set_num_threads(n)
    return n


def keep_freed_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 64 << 20) -> bool:
    """Linux (glibc): serve blocks below ``mmap_threshold`` from the heap and keep up to
    ``trim_threshold`` of freed memory mapped, once per process; True if set.

    A batch loop allocates the same tensors every batch (a layer's output of 10 MB for a batch of
    224² slices). glibc's default raises its mmap threshold to the largest block freed so far, so
    that block and any at least as large get a fresh mapping on every allocation: tens of
    thousands of page faults per run, each a zeroed 4 KiB page, which cost the slice classifier
    about as much as its preprocessing. Blocks of 32 MiB and more (volumes) are still mapped and
    given back when freed; what the heap keeps is reused by the next batch or run.
    """
    global _heap_kept
    if _heap_kept or not sys.platform.startswith("linux"):
        return _heap_kept
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _heap_kept = bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_threshold))
    return _heap_kept


def autocast_dtype(device: str) -> object | None:
    """bf16 where the GPU supports it, else fp16; None on CPU (full precision)."""
    import torch

    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None


def autocast(device: str, enabled: bool = True) -> contextlib.AbstractContextManager[Any]:
    """Mixed precision at :func:`autocast_dtype` on CUDA when ``enabled``; nothing otherwise.
    Inference and training (``train.amp``) both run under it."""
    dtype = autocast_dtype(device) if enabled else None
    if dtype is None:
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type="cuda", dtype=dtype)  # type: ignore[arg-type]


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()
