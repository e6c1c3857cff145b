"""Where each data element of a DICOM file lies: enough to mutate values, lengths and VRs in place."""

from __future__ import annotations

import struct
from dataclasses import dataclass

EXPLICIT_32 = {b"OB", b"OD", b"OF", b"OL", b"OW", b"OV", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
ITEM, ITEM_END, SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
UNDEFINED = 0xFFFFFFFF
MAX_ELEMENTS = 4000
MAX_DEPTH = 40  # deeper nesting (a fuzzed sequence bomb) is not walked into


@dataclass(frozen=True)
class Element:
    tag: int
    vr: str  # explicit VR as written, or the dictionary's for implicit files ("UN" when unknown)
    explicit: bool
    little: bool
    header_pos: int  # first byte of the tag
    length_pos: int
    length_size: int  # 2 or 4
    value_pos: int
    length: int  # as written (UNDEFINED for open sequences)
    depth: int


def _dictionary_vr(tag: int) -> str:
    from pydicom.datadict import dictionary_VR

    try:
        return str(dictionary_VR(tag)).split(" or ")[0]
    except KeyError:
        return "UN"


def walk(data: bytes) -> tuple[list[Element], int | None, str]:
    """The elements of a Part-10 file (meta group, data set, nested sequences), the offset of the
    Pixel Data element's tag (None if not reached) and the transfer syntax UID."""
    out: list[Element] = []
    if data[128:132] != b"DICM":
        return out, None, ""
    pos = _run(data, 132, len(data), True, True, 0, out, meta=True)
    ts = ""
    for e in out:
        if e.tag == 0x00020010:
            ts = data[e.value_pos : e.value_pos + e.length].decode("latin-1").strip("\0 ")
    if ts == "1.2.840.10008.1.2.1.99":  # deflated: only the meta group is walkable
        return out, None, ts
    explicit = ts != "1.2.840.10008.1.2"
    little = ts != "1.2.840.10008.1.2.2"
    _run(data, pos, len(data), explicit, little, 0, out)
    pixel = next((e.header_pos for e in out if e.tag == 0x7FE00010 and e.depth == 0), None)
    return out, pixel, ts


def _run(
    data: bytes, pos: int, end: int, explicit: bool, little: bool, depth: int, out: list[Element], meta: bool = False
) -> int:
    """Walk elements from ``pos`` to ``end`` (or an item delimiter); returns where it stopped."""
    e = "<" if little else ">"
    while pos + 8 <= end and len(out) < MAX_ELEMENTS:
        group, elem = struct.unpack_from(e + "HH", data, pos)
        tag = group << 16 | elem
        if meta and group != 2:
            return pos
        if tag in (ITEM_END, SEQ_END):
            return pos
        if explicit:
            vr = data[pos + 4 : pos + 6]
            if vr in EXPLICIT_32:
                if pos + 12 > end:
                    return pos
                (length,) = struct.unpack_from(e + "I", data, pos + 8)
                length_pos, length_size, value_pos = pos + 8, 4, pos + 12
            else:
                (length,) = struct.unpack_from(e + "H", data, pos + 6)
                length_pos, length_size, value_pos = pos + 6, 2, pos + 8
            vr_text = vr.decode("latin-1")
        else:
            (length,) = struct.unpack_from(e + "I", data, pos + 4)
            length_pos, length_size, value_pos = pos + 4, 4, pos + 8
            vr_text = _dictionary_vr(tag)
        out.append(Element(tag, vr_text, explicit, little, pos, length_pos, length_size, value_pos, length, depth))
        if tag == 0x7FE00010 and depth == 0:
            return pos  # pixel data: the rest is pixels
        if vr_text == "SQ" or (length == UNDEFINED and not explicit):
            if depth >= MAX_DEPTH:
                return len(data)
            pos = _sequence(data, value_pos, length, end, explicit, little, depth + 1, out)
            if pos < 0:
                return len(data)
            continue
        if length == UNDEFINED:
            return pos  # an encapsulated value outside pixel data: stop here
        pos = value_pos + length
    return pos


def _sequence(
    data: bytes, pos: int, length: int, end: int, explicit: bool, little: bool, depth: int, out: list[Element]
) -> int:
    e = "<" if little else ">"
    stop = end if length == UNDEFINED else min(end, pos + length)
    while pos + 8 <= stop:
        group, elem, ilen = struct.unpack_from(e + "HHI", data, pos)
        tag = group << 16 | elem
        if tag == SEQ_END:
            return pos + 8
        if tag != ITEM:
            return -1
        item_end = stop if ilen == UNDEFINED else min(stop, pos + 8 + ilen)
        pos = _run(data, pos + 8, item_end, explicit, little, depth, out)
        if pos + 8 <= len(data) and struct.unpack_from(e + "HH", data, pos) == (0xFFFE, 0xE00D):
            pos += 8
        elif ilen != UNDEFINED:
            pos = item_end
        else:
            return -1
    return stop
