"""The last line of defence of the public loading API: whatever escapes the specific checks leaves
as a :class:`~inference.errors.LoadError` naming the file, never as a bare Python exception.

The common failures have their own checks and messages where they happen (see
:mod:`inference.io.dicom_record`, :mod:`inference.io.pixel_decode`, :mod:`inference.io.image_checks`);
this boundary only keeps an unforeseen one from reaching a user as a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from inference.errors import InvalidValueError, LoadError, RadLensError

_PASS_THROUGH = (RadLensError, KeyboardInterrupt, SystemExit, GeneratorExit)


@contextmanager
def typed_errors(
    path: str | os.PathLike[str] | None, doing: str = "reading this file", passing: tuple[type[BaseException], ...] = ()
) -> Iterator[None]:
    """Turn any exception but a :class:`RadLensError` (and interrupts, and ``passing``: the caller's own
    control flow) into a :class:`LoadError` for ``path``."""
    where = None if path is None else os.fspath(path)
    try:
        yield
    except _PASS_THROUGH + passing:
        raise
    except MemoryError:
        raise LoadError(where, f"not enough memory while {doing}") from None
    except RecursionError:
        raise InvalidValueError(where, f"structures nested too deep while {doing}") from None
    except BaseException as exc:
        text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        detail = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        raise LoadError(where, f"unexpected failure while {doing} ({detail}); the file is malformed") from exc
