"""Running a decoder that can abort the process (GDCM) in a short-lived worker process.

The worker reads the file, decodes its pixel data with the one named pydicom plugin and sends
the array back; it runs under an address-space limit, and is killed after a time-out that grows
with the size of the image. A crash there (GDCM throws C++ exceptions nobody catches: SIGABRT)
becomes a :class:`~inference.errors.LoadError` here.

The worker is ``python -m inference.io.isolated_decode`` started with :mod:`subprocess`, so that it
never re-imports the caller's main module (multiprocessing's ``spawn`` would); a frozen app (which
has no ``-m``) uses multiprocessing, whose entry point calls ``freeze_support``.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.errors import LoadError

#: Seconds a worker may take: this much, plus a second per 50 MB decoded.
BASE_TIMEOUT_S = 15.0
BYTES_PER_SECOND = 50e6
#: Exit status of a worker whose decoder raised (its message is the last line of stderr).
DECODER_FAILED = 3


def _timeout(expected_bytes: int) -> float:
    return BASE_TIMEOUT_S + expected_bytes / BYTES_PER_SECOND


def _memory_limit(expected_bytes: int) -> int:
    return max(2 << 30, 3 * expected_bytes + (1 << 30))


def decode_isolated(path: str, transfer_syntax: str, plugin: str, expected_bytes: int) -> npt.NDArray[Any]:
    """``ds.pixel_array`` of ``path`` through ``plugin``, computed in a worker process."""
    if getattr(sys, "frozen", False):
        return _decode_multiprocessing(path, transfer_syntax, plugin, expected_bytes)
    root = str(Path(__file__).resolve().parents[2])  # where the inference package lies
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p))
    args = [path, transfer_syntax, plugin, str(_memory_limit(expected_bytes))]
    timeout = _timeout(expected_bytes)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "inference.io.isolated_decode", *args],
            capture_output=True,
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise LoadError(path, f"the {plugin} decoder took longer than {timeout:.0f} s; stopped") from None
    except OSError as exc:
        raise LoadError(path, f"the {plugin} decoder could not be started ({exc})") from None
    if done.returncode == 0:
        try:
            result: npt.NDArray[Any] = np.load(io.BytesIO(done.stdout), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise LoadError(path, f"the {plugin} decoder sent back no image ({exc})") from None
        return result
    if done.returncode == DECODER_FAILED:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise LoadError(path, f"compressed pixel data is corrupt: {plugin}: {lines[-1] if lines else '?'}")
    raise LoadError(path, f"the {plugin} decoder crashed on this file's pixel data ({death(done.returncode)})")


def death(code: int | None) -> str:
    """How a worker process ended, in words (``killed by SIGABRT``, ``exit status 1``)."""
    import signal

    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _decode(path: str, transfer_syntax: str, plugin: str, limit: int) -> npt.NDArray[Any]:
    """In the worker: limit the address space, read the file, decode with ``plugin`` alone."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):
        pass  # no address-space limit here (Windows, or a lower hard limit): the time-out still holds
    import pydicom

    from inference.io.bounded_file import SizeBoundedReader

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with SizeBoundedReader(path) as fp:
            ds = pydicom.dcmread(fp, force=True)
        if not getattr(ds.file_meta, "TransferSyntaxUID", None):
            ds.file_meta.TransferSyntaxUID = transfer_syntax
        ds.pixel_array_options(decoding_plugin=plugin)
        return np.asarray(ds.pixel_array)


def _decode_multiprocessing(path: str, transfer_syntax: str, plugin: str, expected_bytes: int) -> npt.NDArray[Any]:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    args = (path, transfer_syntax, plugin, _memory_limit(expected_bytes), send)
    proc = ctx.Process(target=_child, args=args, daemon=True)
    proc.start()
    send.close()
    timeout = _timeout(expected_bytes)
    try:
        if not receive.poll(timeout):
            raise LoadError(path, f"the {plugin} decoder took longer than {timeout:.0f} s; stopped")
        try:
            ok, payload = receive.recv()
        except EOFError:
            proc.join(5)
            how = death(proc.exitcode)
            raise LoadError(path, f"the {plugin} decoder crashed on this file's pixel data ({how})") from None
    finally:
        receive.close()
        if proc.is_alive():
            proc.kill()
        proc.join(5)
    if not ok:
        raise LoadError(path, f"compressed pixel data is corrupt: {plugin}: {payload}")
    result: npt.NDArray[Any] = payload
    return result


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


_BROADCAST = re.compile(r"could not broadcast input array from shape \((\d+),?\) into shape \((\d+),?\)")
_UNPACK = re.compile(r"unpack requires a buffer of (\d+) bytes")


def decoder_reason(exc: BaseException) -> str:
    """A decoder's failure in terms of the file where it is a known case (sizes that disagree, a stream cut short)."""
    text = _first_line(exc)
    if m := _BROADCAST.search(text):
        return f"it decodes to {m.group(1)} values where Rows × Columns × SamplesPerPixel need {m.group(2)}"
    if m := _UNPACK.search(text):
        return f"the code stream ends inside a marker segment (one claims {m.group(1)} bytes)"
    return text


def _child(path: str, transfer_syntax: str, plugin: str, limit: int, send: Any) -> None:
    try:
        send.send((True, _decode(path, transfer_syntax, plugin, limit)))
    except BaseException as exc:
        send.send((False, decoder_reason(exc)))
    finally:
        send.close()
        os._exit(0)


def main(argv: list[str]) -> int:
    path, transfer_syntax, plugin, limit = argv
    try:
        arr = _decode(path, transfer_syntax, plugin, int(limit))
    except BaseException as exc:
        print(decoder_reason(exc), file=sys.stderr)
        return DECODER_FAILED
    out = io.BytesIO()
    np.save(out, np.ascontiguousarray(arr), allow_pickle=False)
    sys.stdout.buffer.write(out.getvalue())
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
