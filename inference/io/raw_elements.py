"""The few top-level elements a 4-D grouping needs, read from a file's bytes without pydicom.

A 4-D series may hold ten thousand files; reading each again with pydicom for its temporal,
diffusion and echo keys costs more than the whole scan. The header scan already knows each plain
(Explicit or Implicit VR Little Endian) file's pixel-data offset, so the bytes before it are read
once and walked here: top-level elements are kept when wanted, sequences are skipped (defined or
undefined length, nested). Anything unexpected (an unknown VR, a length past the end, a missing
preamble) gives ``None`` and the caller reads the file with pydicom instead.
"""

from __future__ import annotations

import os
import struct
from typing import Any

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"

#: Standard elements kept, by tag, with pydicom's keyword.
KEYWORDS = {
    0x00200100: "TemporalPositionIdentifier",
    0x00200012: "AcquisitionNumber",
    0x00080032: "AcquisitionTime",
    0x00181060: "TriggerTime",
    0x00180081: "EchoTime",
    0x00189087: "DiffusionBValue",
    0x00189089: "DiffusionGradientOrientation",
    0x00180088: "SpacingBetweenSlices",
    0x00180050: "SliceThickness",
    0x00200037: "ImageOrientationPatient",
}
#: Standard elements stored as binary doubles (VR FD).
DOUBLES = {0x00189087, 0x00189089}
#: Private groups whose elements are kept (Siemens CSA, GE, Philips).
PRIVATE_GROUPS = {0x0019, 0x0029, 0x0043, 0x2001, 0x2005}

_VR32 = frozenset({b"OB", b"OD", b"OF", b"OL", b"OW", b"OV", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
_VR16 = frozenset(
    {
        b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO",
        b"LT", b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
    }
)  # fmt: skip
_TAG = struct.Struct("<HH")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_UNDEFINED = 0xFFFFFFFF
_PIXEL_DATA = 0x7FE00010


class _Unsure(Exception):
    """The bytes are not what this walker reads with certainty."""


class RawElements:
    """Values of the kept elements; ``get`` answers like ``pydicom.Dataset.get`` for them."""

    def __init__(self, values: dict[int, tuple[bytes, bytes | None]]) -> None:
        self._values = values
        self._creators: dict[tuple[int, str], int] = {}
        for tag, (raw, _) in values.items():
            group, elem = tag >> 16, tag & 0xFFFF
            if group & 1 and 0x10 <= elem <= 0xFF:
                self._creators[(group, raw.decode("latin-1").strip("\0 "))] = elem

    def get(self, keyword: str, default: Any = None) -> Any:
        for tag, name in KEYWORDS.items():
            if name == keyword:
                found = self._values.get(tag)
                if found is None:
                    return default
                raw, _ = found
                if tag in DOUBLES:
                    return _doubles(raw)
                return _text(raw)
        return default

    def __contains__(self, item: object) -> bool:
        return item in self._values

    def private(self, group: int, creator: str, offset: int, kind: str) -> Any:
        """A private element's value by creator: ``kind`` "text", "int16", "float32" or "bytes"."""
        block = self._creators.get((group, creator))
        if block is None:
            return None
        found = self._values.get(group << 16 | block << 8 | offset)
        if found is None:
            return None
        raw, _ = found
        if kind == "bytes":
            return raw
        if kind == "int16":
            if len(raw) != 2:
                return None
            return struct.unpack("<h", raw)[0]
        if kind == "float32":
            if len(raw) < 4 or len(raw) % 4:
                return None
            values = struct.unpack(f"<{len(raw) // 4}f", raw)
            return values[0] if len(values) == 1 else list(values)
        return _text(raw)


def _text(raw: bytes) -> str | list[str]:
    items = raw.decode("latin-1").strip("\0 ").split("\\")
    items = [v.strip() for v in items]
    return items[0] if len(items) == 1 else items


def _doubles(raw: bytes) -> float | list[float] | None:
    if not raw or len(raw) % 8:
        return None
    values = struct.unpack(f"<{len(raw) // 8}d", raw)
    return values[0] if len(values) == 1 else list(values)


def read_elements(path: str, transfer_syntax: str, pixel_offset: int | None) -> RawElements | None:
    """The kept elements of the file at ``path`` (its header ends before ``pixel_offset``), or
    ``None`` when this walker cannot read it with certainty."""
    if transfer_syntax not in (IMPLICIT_LE, EXPLICIT_LE) or pixel_offset is None or pixel_offset <= 132:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except OSError:
        return None
    try:
        data = os.read(fd, pixel_offset)
    finally:
        os.close(fd)
    try:
        return RawElements(_walk(data, transfer_syntax == EXPLICIT_LE))
    except (_Unsure, struct.error, UnicodeDecodeError):
        return None


def _walk(data: bytes, explicit: bool) -> dict[int, tuple[bytes, bytes | None]]:
    if len(data) < 132 or data[128:132] != b"DICM":
        raise _Unsure
    pos = 132
    while pos + 8 <= len(data) and _TAG.unpack_from(data, pos)[0] == 2:  # file meta: explicit VR
        _, _, _, _, pos = _element(data, pos, True)
    out: dict[int, tuple[bytes, bytes | None]] = {}
    n = len(data)
    while pos < n:
        tag, vr, start, length, after = _element(data, pos, explicit)
        if tag == _PIXEL_DATA:
            break
        if length == _UNDEFINED:
            pos = _skip_sequence(data, start, explicit and vr != b"UN")
            continue
        if tag in KEYWORDS or (tag >> 16) in PRIVATE_GROUPS:
            out[tag] = (data[start:after], vr)
        pos = after
    return out


def _element(data: bytes, pos: int, explicit: bool) -> tuple[int, bytes | None, int, int, int]:
    """``(tag, vr, value start, length, value end)`` of the element at ``pos``."""
    if pos + 8 > len(data):
        raise _Unsure
    group, elem = _TAG.unpack_from(data, pos)
    tag = group << 16 | elem
    vr: bytes | None = None
    if explicit and group != 0xFFFE:
        vr = data[pos + 4 : pos + 6]
        if vr in _VR16:
            length, start = _U16.unpack_from(data, pos + 6)[0], pos + 8
        elif vr in _VR32:
            if pos + 12 > len(data):
                raise _Unsure
            length, start = _U32.unpack_from(data, pos + 8)[0], pos + 12
        else:
            raise _Unsure
    else:
        length, start = _U32.unpack_from(data, pos + 4)[0], pos + 8
    if length == _UNDEFINED:
        return tag, vr, start, length, start
    end = start + length
    if end > len(data) and tag != _PIXEL_DATA:
        raise _Unsure
    return tag, vr, start, length, end


def _skip_sequence(data: bytes, pos: int, explicit: bool) -> int:
    """Past the delimiter of the undefined-length sequence whose first item starts at ``pos``."""
    while True:
        tag, _, start, length, after = _element(data, pos, False)
        if tag == 0xFFFEE0DD:
            return start
        if tag != 0xFFFEE000:
            raise _Unsure
        if length != _UNDEFINED:
            pos = after
            continue
        pos = start
        while True:  # an item of undefined length: its elements, to the item delimiter
            if pos + 8 > len(data):
                raise _Unsure
            group, elem = _TAG.unpack_from(data, pos)
            if (group << 16 | elem) == 0xFFFEE00D:
                pos += 8
                break
            _, vr, start, length, after = _element(data, pos, explicit)
            pos = _skip_sequence(data, start, explicit and vr != b"UN") if length == _UNDEFINED else after
