"""Choosing where inference runs: CUDA, then Apple MPS, then the CPU."""

from __future__ import annotations

import os

from inference.errors import DeviceError

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


def autocast_dtype(device: str) -> object | None:
    """bf16 where the GPU supports it, else fp16; None on CPU (full precision)."""
    import torch

    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()
