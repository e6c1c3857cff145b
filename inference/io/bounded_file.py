"""A file object whose reads never ask for more bytes than the file holds.

pydicom reads a value with ``fp.read(length)``, taking ``length`` from the file; Python's buffered
``read(n)`` reserves ``n`` bytes before it reads, so a header element that claims 4 GiB reserves
4 GiB on a 3 KB file. Through :class:`SizeBoundedReader` the request is cut to what is left.
"""

from __future__ import annotations

import io
import os


class SizeBoundedReader(io.BufferedReader):
    """``open(path, "rb")``, with ``read(n)`` bounded by the bytes left in the file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        raw = io.FileIO(path, "rb")
        super().__init__(raw, buffer_size=64 * 1024)
        self._size = os.fstat(raw.fileno()).st_size

    @property
    def size(self) -> int:
        return self._size

    def read(self, n: int | None = -1, /) -> bytes:
        if n is not None and n > 0:
            n = min(n, max(self._size - self.tell(), 0))
            if n == 0:
                return b""
        return super().read(n)
