"""A MetaImage (``.mha``/``.mhd``) header read as text: its fields and where its data start.

A leaf module: the fallback reader and the up-front image checks both read headers this way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["MET_TYPES", "metaimage_header"]

MET_TYPES = {
    "MET_CHAR": np.int8, "MET_UCHAR": np.uint8, "MET_SHORT": np.int16, "MET_USHORT": np.uint16,
    "MET_INT": np.int32, "MET_UINT": np.uint32, "MET_LONG": np.int32, "MET_ULONG": np.uint32,
    "MET_LONG_LONG": np.int64, "MET_ULONG_LONG": np.uint64, "MET_FLOAT": np.float32, "MET_DOUBLE": np.float64,
}  # fmt: skip
_MAX_HEADER_BYTES = 1 << 16


def metaimage_header(path: Path) -> tuple[dict[str, str], int]:
    """The ``Key = value`` fields (keys lower-case) and the offset of the byte after ElementDataFile."""
    fields: dict[str, str] = {}
    with path.open("rb") as fh:
        head = fh.read(_MAX_HEADER_BYTES)
    pos = 0
    while pos < len(head):
        end = head.find(b"\n", pos)
        line_end = len(head) if end < 0 else end
        line = head[pos:line_end].decode("latin-1").strip()
        pos = line_end + 1
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"not a MetaImage header line: {line[:60]!r}")
        fields[key.strip().lower()] = value.strip()
        if key.strip().lower() == "elementdatafile":
            return fields, pos
    raise ValueError("no ElementDataFile field in the header")
