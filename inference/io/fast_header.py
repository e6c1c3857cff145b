"""A fast, pydicom-free header reader for plain Part-10 files in (Explicit or Implicit) VR Little Endian.

It walks the top-level data elements of the file's first bytes with ``struct``, converts only the
handful of elements RadLens needs, exactly as pydicom would convert them, and hands them to the
same :func:`~inference.io.dicom_record.header_from_dataset` the pydicom path uses. It is deliberately
narrow: whenever a file holds anything it cannot read with certainty (another transfer syntax, no
preamble, multi-frame objects, a character set other than the default, ISO_IR 100 or ISO_IR 192,
an unexpected VR, an odd value, elements out of order, a file cut short…) it returns ``None`` and
the caller falls back on pydicom, which then accepts the file or raises the usual typed error.

:class:`SeriesHeaderReader` reads a run of files faster still: the files of one series, written by
one scanner, usually have the same layout byte for byte apart from a few values (SOP instance
UID, instance number, position…). After a file has been walked, the next one is compared with it
as bytes; when only values differ, only those values are converted again (see the class).
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.errors import LoadError
from inference.io.dicom_record import DicomHeader, changed_fields, header_from_dataset, replace_fields

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"

#: Bytes read first; a header longer than this is read on demand.
FIRST_CHUNK = 16 * 1024

#: tag → (pydicom keyword, VR) of the elements :func:`header_from_dataset` reads.
NEEDED: dict[int, tuple[str, str]] = {
    0x00080005: ("SpecificCharacterSet", "CS"),
    0x00080008: ("ImageType", "CS"),
    0x00080016: ("SOPClassUID", "UI"),
    0x00080018: ("SOPInstanceUID", "UI"),
    0x00080020: ("StudyDate", "DA"),
    0x00080021: ("SeriesDate", "DA"),
    0x00080060: ("Modality", "CS"),
    0x00081030: ("StudyDescription", "LO"),
    0x0008103E: ("SeriesDescription", "LO"),
    0x00100010: ("PatientName", "PN"),
    0x00100020: ("PatientID", "LO"),
    0x00180050: ("SliceThickness", "DS"),
    0x00180086: ("EchoNumbers", "IS"),
    0x0020000D: ("StudyInstanceUID", "UI"),
    0x0020000E: ("SeriesInstanceUID", "UI"),
    0x00200011: ("SeriesNumber", "IS"),
    0x00200012: ("AcquisitionNumber", "IS"),
    0x00200013: ("InstanceNumber", "IS"),
    0x00200032: ("ImagePositionPatient", "DS"),
    0x00200037: ("ImageOrientationPatient", "DS"),
    0x00200052: ("FrameOfReferenceUID", "UI"),
    0x00280002: ("SamplesPerPixel", "US"),
    0x00280004: ("PhotometricInterpretation", "CS"),
    0x00280006: ("PlanarConfiguration", "US"),
    0x00280008: ("NumberOfFrames", "IS"),
    0x00280010: ("Rows", "US"),
    0x00280011: ("Columns", "US"),
    0x00280030: ("PixelSpacing", "DS"),
    0x00280100: ("BitsAllocated", "US"),
    0x00280101: ("BitsStored", "US"),
    0x00280103: ("PixelRepresentation", "US"),
    0x00281050: ("WindowCenter", "DS"),
    0x00281051: ("WindowWidth", "DS"),
    0x00281052: ("RescaleIntercept", "DS"),
    0x00281053: ("RescaleSlope", "DS"),
    0x00541001: ("Units", "CS"),
    0x30040002: ("DoseUnits", "CS"),
}

_NEEDED = {tag: (keyword, vr, vr.encode()) for tag, (keyword, vr) in NEEDED.items()}

#: Elements whose presence means a multi-frame or dose object: pydicom reads those.
REFUSED = {
    0x3004000C,  # GridFrameOffsetVector
    0x3004000E,  # DoseGridScaling
    0x52009229,  # SharedFunctionalGroupsSequence
    0x52009230,  # PerFrameFunctionalGroupsSequence
}

#: Common standard sequences that implicit-VR files write with undefined length. Any other
#: standard tag of undefined length in an implicit-VR file is left to pydicom, which decides
#: from its dictionary whether the value is a sequence.
IMPLICIT_SQ_TAGS = {
    0x00081032, 0x00081110, 0x00081111, 0x00081115, 0x00081120, 0x00081140, 0x00081250, 0x00082112,
    0x00082218, 0x00082220, 0x00082228, 0x00089121, 0x00089124, 0x00089215, 0x00089237, 0x00100050,
    0x00101002, 0x00120064, 0x00180026, 0x00180029, 0x0018002A, 0x00189321, 0x00189346, 0x00189381,
    0x00189406, 0x00189477, 0x00209222, 0x00209221, 0x00209071,
    0x00281352, 0x00283000, 0x00283010, 0x00283110, 0x00289110, 0x00321064, 0x00400008, 0x00400100,
    0x00400260, 0x00400275, 0x00400321, 0x00400555, 0x0040A043, 0x0040A168, 0x0040A170, 0x0040A730,
    0x00540012, 0x00540013, 0x00540016, 0x00540220, 0x00540300, 0x00540410, 0x00540412, 0x00880200,
}  # fmt: skip

EXPLICIT_VR_32 = frozenset({b"OB", b"OD", b"OF", b"OL", b"OW", b"OV", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
EXPLICIT_VR_16 = frozenset(
    {
        b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO",
        b"LT", b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
    }
)  # fmt: skip

ITEM = 0xFFFEE000
ITEM_END = 0xFFFEE00D
SEQ_END = 0xFFFEE0DD
UNDEFINED = 0xFFFFFFFF
PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)

_EXPLICIT = struct.Struct("<HH2sH")
_IMPLICIT = struct.Struct("<HHI")
_U32 = struct.Struct("<I")
_U16 = struct.Struct("<H")

#: A DS or IS value pydicom and Python's ``float``/``int`` read the same way (no ``1_0``, ``nan``…).
_DS = re.compile(r" *[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)? *")
_IS = re.compile(r" *[+-]?[0-9]+ *")

#: SpecificCharacterSet values handled here, with the Python codec pydicom uses for text VRs.
_CHARSETS = {"": "latin-1", "ISO_IR 6": "latin-1", "ISO_IR 100": "latin-1", "ISO_IR 192": "utf-8"}


class _Fallback(Exception):
    """Something this reader does not handle with certainty: let pydicom read the file."""


class NeedMore(Exception):
    """The walk needs more bytes of the file than it was given."""

    def __init__(self, end: int) -> None:
        super().__init__(end)
        self.end = end


def read_header_fast(path: str, data: bytes, st: os.stat_result | None = None) -> DicomHeader | None:
    """The header of the file whose first bytes are ``data``, or ``None`` to read it with pydicom.

    ``st`` is the file's ``os.stat`` result (taken here when not given). The header equals what
    :func:`inference.io.dicom_header.read_header` gives through pydicom, field for field.
    """
    st = st if st is not None else os.stat(path)
    try:
        return _read(path, data, st)
    except LoadError:
        raise  # absurd dimensions: the pydicom path says the same
    except Exception:  # _Fallback, NeedMore, or a value header_from_dataset cannot take: pydicom decides
        return None


def read_header_fd(path: str, fd: int, st: os.stat_result) -> DicomHeader | None:
    """:func:`read_header_fast` on an open descriptor (at offset 0), reading more when the header needs it."""
    return _read_fd(path, fd, st, os.read(fd, FIRST_CHUNK), None)


def _read_fd(path: str, fd: int, st: os.stat_result, data: bytes, layout: _Layout | None) -> DicomHeader | None:
    """:func:`_read` on ``data``, the first bytes read from ``fd``; reads on while the header needs more."""
    for _ in range(6):
        try:
            return _read(path, data, st, layout)
        except NeedMore as more:
            want = min(st.st_size, max(more.end, 4 * len(data), FIRST_CHUNK))
            while len(data) < want:
                chunk = os.read(fd, want - len(data))
                if not chunk:
                    return None
                data += chunk
        except LoadError:
            raise
        except Exception:
            return None
    return None


@dataclass
class _Layout:
    """Where :func:`_read` found things in one file: enough to read a file of the same layout again."""

    data: bytes = b""
    #: ``(length_pos, length_size, start, end, n)`` of each top-level element of defined length whose
    #: value may change (every one but the transfer syntax and the character set): where its length
    #: field and value lie, and ``n`` = 0 when :func:`_read` ignores the value, else ``needed[n - 1]``
    #: says what it is. ``length_size`` 0: its length must not change (the data set's first element
    #: when implicit: pydicom guesses the VR encoding from those bytes).
    elements: list[tuple[int, int, int, int, int]] = field(default_factory=list)
    #: ``(keyword, vr)`` of every needed value but the character set.
    needed: list[tuple[str, str]] = field(default_factory=list)
    pixel_pos: int | None = None
    values: dict[str, Any] = field(default_factory=dict)
    charset: str = "latin-1"
    ts: str = ""
    has_pixels: bool = False
    offset: int | None = None
    length: int | None = None


def _read(path: str, data: bytes, st: os.stat_result, layout: _Layout | None = None) -> DicomHeader | None:
    """The walk itself; with ``layout``, also records where each value lies (for :class:`SeriesHeaderReader`)."""
    size = st.st_size
    elements = layout.elements if layout is not None else None
    if layout is not None:  # a walk again after more bytes were read
        layout.elements.clear()
        layout.needed.clear()
        layout.pixel_pos = None

    def need(end: int) -> None:
        if end > len(data):
            if len(data) < size:
                raise NeedMore(end)
            raise _Fallback  # the file ends inside: pydicom says how

    need(132)
    if data[128:132] != b"DICM":
        raise _Fallback
    # File meta information: explicit VR little endian, group 0002.
    pos = 132
    ts = None
    last = -1
    while True:
        need(pos + 8)
        group, elem, vr, length = _EXPLICIT.unpack_from(data, pos)
        if group != 2:
            break
        tag = group << 16 | elem
        if tag <= last:
            raise _Fallback
        last = tag
        if vr in EXPLICIT_VR_16:
            start = pos + 8
        elif vr in EXPLICIT_VR_32:
            need(pos + 12)
            length = _U32.unpack_from(data, pos + 8)[0]
            start = pos + 12
        else:
            raise _Fallback
        if length == UNDEFINED:
            raise _Fallback
        need(start + length)
        if tag == 0x00020010:
            if vr != b"UI":
                raise _Fallback
            ts = data[start : start + length].decode("latin-1").rstrip("\0 ")
        elif elements is not None:
            elements.append(
                (pos + 6, 2, start, start + length, 0) if start == pos + 8 else (pos + 8, 4, start, start + length, 0)
            )
        pos = start + length
    if ts not in (IMPLICIT_LE, EXPLICIT_LE) or pos == 132:
        raise _Fallback
    explicit = ts == EXPLICIT_LE

    # The data set. pydicom checks its first element for the other VR encoding, and reads a
    # command set (group 0000) apart: leave both cases to it.
    need(pos + 8)
    v0, v1 = data[pos + 4], data[pos + 5]
    looks_implicit = not (0x40 < v0 < 0x5B and 0x40 < v1 < 0x5B)
    if looks_implicit == explicit or data[pos : pos + 2] == b"\0\0":
        raise _Fallback
    charset = "latin-1"
    values: dict[str, Any] = {}
    last = -1
    dlen = len(data)
    first = pos
    unpack = _EXPLICIT.unpack_from if explicit else _IMPLICIT.unpack_from
    while True:
        if pos == size:  # the file ends between elements: no pixel data
            has_pixels, offset, plen = False, None, None
            break
        if pos + 12 > dlen:
            need(min(pos + 12, size))
        if explicit:
            group, elem, vr, length = unpack(data, pos)
            tag = group << 16 | elem
            if tag in PIXEL_TAGS:
                has_pixels, offset, plen = _pixel_element(data, pos, size, need, explicit)
                if layout is not None:
                    layout.pixel_pos = pos
                break
            if vr in EXPLICIT_VR_16:
                start = pos + 8
            elif vr in EXPLICIT_VR_32:
                need(pos + 12)
                length = _U32.unpack_from(data, pos + 8)[0]
                start = pos + 12
            else:
                raise _Fallback
        else:
            group, elem, length = unpack(data, pos)
            tag = group << 16 | elem
            if tag in PIXEL_TAGS:
                has_pixels, offset, plen = _pixel_element(data, pos, size, need, explicit)
                if layout is not None:
                    layout.pixel_pos = pos
                break
            vr = None
            start = pos + 8
        if tag <= last or group in (0, 2, 0xFFFE) or tag in REFUSED:
            raise _Fallback
        last = tag
        if length == UNDEFINED:
            if explicit and vr != b"SQ":
                raise _Fallback
            if not explicit and not (group & 1 or tag in IMPLICIT_SQ_TAGS):
                raise _Fallback
            if tag in NEEDED:
                raise _Fallback
            pos = _skip_sequence(data, start, explicit, need, top=not explicit and bool(group & 1))
            continue
        end = start + length
        if end > dlen:
            need(end)
        spec = _NEEDED.get(tag)
        if spec is not None:
            keyword, want_vr, want_raw = spec
            if vr is not None and vr != want_raw:
                raise _Fallback
            raw = data[start:end]
            if tag == 0x00080005:
                cs = _convert(raw, "CS", charset)
                if not isinstance(cs, str) or cs.strip() not in _CHARSETS or cs != cs.strip():
                    raise _Fallback
                charset = _CHARSETS[cs]
            elif layout is not None:
                layout.needed.append((keyword, want_vr))
                _record(layout.elements, pos, start, end, explicit, first, len(layout.needed))
            values[keyword] = _convert(raw, want_vr, charset)
        elif elements is not None:
            _record(elements, pos, start, end, explicit, first, 0)
        pos = end

    if layout is not None:
        layout.data, layout.values, layout.charset, layout.ts = data, values, charset, ts
        layout.has_pixels, layout.offset, layout.length = has_pixels, offset, plen
    return _finish(values, path, st, ts, has_pixels, offset, plen)


def _record(
    elements: list[tuple[int, int, int, int, int]], pos: int, start: int, end: int, explicit: bool, first: int, n: int
) -> None:
    """Note the data-set element at ``pos`` (value ``start:end``) in a :class:`_Layout`."""
    if not explicit:
        elements.append((pos + 4, 0 if pos == first else 4, start, end, n))
    elif start == pos + 8:
        elements.append((pos + 6, 2, start, end, n))
    else:
        elements.append((pos + 8, 4, start, end, n))


def _finish(
    values: dict[str, Any],
    path: str,
    st: os.stat_result,
    ts: str,
    has_pixels: bool,
    offset: int | None,
    plen: int | None,
) -> DicomHeader:
    """The checks after the walk, then the header."""
    if "SOPClassUID" not in values and "Modality" not in values and "Rows" not in values:
        raise _Fallback  # pydicom names what is wrong with it
    frames = values.get("NumberOfFrames")
    if frames not in (None, "") and (isinstance(frames, list) or int(frames) > 1):
        raise _Fallback
    return header_from_dataset(values, path, st, ts, has_pixels, offset, plen)


def _pixel_element(data: bytes, pos: int, size: int, need: Any, explicit: bool) -> tuple[bool, int | None, int | None]:
    """What :func:`inference.io.dicom_header._pixel_element` finds at ``pos``, from the same bytes."""
    n = 12 if explicit else 8
    if pos + n > size:  # pydicom reads the whole element header first, and fails on a short one
        raise _Fallback
    need(pos + n)
    head = data[pos : pos + n]
    if explicit:
        if len(head) < 12:
            return True, None, None
        length = _U32.unpack_from(head, 8)[0]
        offset = pos + 12
    else:
        length = _U32.unpack_from(head, 4)[0]
        offset = pos + 8
    if length == UNDEFINED:
        return True, None, None
    return True, offset, length


def _skip_sequence(data: bytes, pos: int, explicit: bool, need: Any, top: bool = False) -> int:
    """Position after an undefined-length sequence starting at ``pos``, walked as pydicom parses it."""
    if top:  # a private tag: pydicom calls it a sequence only when an item follows
        need(pos + 4)
        if _U16.unpack_from(data, pos)[0] != 0xFFFE or _U16.unpack_from(data, pos + 2)[0] != 0xE000:
            raise _Fallback
    while True:
        need(pos + 8)
        group, elem, length = _IMPLICIT.unpack_from(data, pos)
        tag = group << 16 | elem
        pos += 8
        if tag == SEQ_END:
            if length != 0:
                raise _Fallback
            return pos
        if tag != ITEM:
            raise _Fallback
        if length == UNDEFINED:
            pos = _skip_item(data, pos, None, explicit, need)
        else:
            need(pos + length)
            pos = _skip_item(data, pos, pos + length, explicit, need)


def _skip_item(data: bytes, pos: int, end: int | None, explicit: bool, need: Any) -> int:
    """Walk one item's elements (to ``end``, or to its delimiter when ``end`` is None)."""
    first = True
    while True:
        if end is not None and pos == end:
            return pos
        if end is not None and pos > end:
            raise _Fallback
        need(pos + 8)
        if explicit:
            group, elem, vr, length = _EXPLICIT.unpack_from(data, pos)
        else:
            group, elem, length = _IMPLICIT.unpack_from(data, pos)
            vr = None
        tag = group << 16 | elem
        if tag == ITEM_END:
            if end is not None or _U32.unpack_from(data, pos + 4)[0] != 0:
                raise _Fallback
            return pos + 8
        if group == 0xFFFE:
            raise _Fallback
        if explicit:
            if first and not (0x40 < data[pos + 4] < 0x5B and 0x40 < data[pos + 5] < 0x5B):
                raise _Fallback  # an implicit-VR item inside an explicit-VR file
            if vr in EXPLICIT_VR_16:
                start = pos + 8
            elif vr in EXPLICIT_VR_32:
                need(pos + 12)
                length = _U32.unpack_from(data, pos + 8)[0]
                start = pos + 12
            else:
                raise _Fallback
        else:
            start = pos + 8
        first = False
        if length == UNDEFINED:
            if explicit and vr != b"SQ":
                raise _Fallback
            if not explicit and not (group & 1 or tag in IMPLICIT_SQ_TAGS):
                raise _Fallback
            pos = _skip_sequence(data, start, explicit, need, top=not explicit and bool(group & 1))
            continue
        pos = start + length
        need(pos)


def _split(text: str) -> str | list[str]:
    """pydicom's ``multi_string``: trailing padding off, then one value or a list."""
    items = text.rstrip(" \x00").split("\\")
    return items[0] if len(items) == 1 else items


def _convert(raw: bytes, vr: str, charset: str) -> Any:
    """The value pydicom's converters give (as far as ``header_from_dataset`` can tell them apart)."""
    if not raw:
        return None if vr in ("US", "IS", "DS") else ""
    if vr == "US":
        if len(raw) != 2:
            raise _Fallback
        return _U16.unpack(raw)[0]
    if vr in ("CS", "DA"):
        return _split(raw.decode("latin-1"))
    if vr == "UI":
        return _split(raw.decode("latin-1").rstrip("\0 "))
    if vr == "IS":
        out: list[str] = []
        for item in raw.decode("latin-1").rstrip(" \x00").split("\\"):
            if item.strip() == "":
                out.append(item)  # pydicom keeps a blank value as the string itself
            elif _IS.fullmatch(item):
                out.append(item.strip())  # str(IS) is the stripped original; int() of it is the value
            else:
                raise _Fallback
        return out[0] if len(out) == 1 else out
    if vr == "DS":
        nums: list[float | str] = []
        for item in raw.decode("latin-1").strip().rstrip(" \x00").split("\\"):
            if item.strip() == "":
                nums.append(item)
            elif _DS.fullmatch(item):
                nums.append(float(item))
            else:
                raise _Fallback
        return nums[0] if len(nums) == 1 else nums
    if b"\x1b" in raw:  # code extensions: pydicom decodes them fragment by fragment
        raise _Fallback
    if vr == "LO":
        text = [v.rstrip("\0 ") for v in raw.decode(charset).split("\\")]
        return text[0] if len(text) == 1 else text
    if vr == "PN":
        name = raw.rstrip(b"\x00 ").decode(charset)
        if "\\" in name or "=" in name:
            raise _Fallback
        return name
    raise _Fallback


# ------------------------------------------------------------------------------ runs of files of one layout

#: Owner codes in a :class:`_Template`'s byte map: ``-1`` structure (tags, VRs, sequences, the
#: transfer syntax, the character set…), ``0`` ignored, ``n`` > 0 the needed value ``n``.
_STRUCTURE, _IGNORED = -1, 0
_LENGTH_OF = -2  # owner code of the length field of layout.elements[j]: _LENGTH_OF - j
#: Attributes that differ from file to file within a series; a file differing from a template in
#: others starts a series of its own (see :meth:`SeriesHeaderReader.read_fd`).
PER_INSTANCE = frozenset(
    {
        "SOPInstanceUID", "InstanceNumber", "AcquisitionNumber", "ImagePositionPatient", "SliceThickness",
        "WindowCenter", "WindowWidth", "RescaleIntercept", "RescaleSlope", "EchoNumbers", "ImageType",
    }
)  # fmt: skip
#: Values whose length changed, at most, before a file is walked in full instead.
MAX_RESIZED = 8
#: Bytes read beyond a template's size, for values grown longer.
SLACK = 256


class _Template:
    """One walked file, kept to read files of the same layout by comparing bytes.

    Every byte of the file's first :attr:`size` bytes (to the end of the Pixel Data element's
    header) is structure, ignored by :func:`_read`, or part of one needed value. A file whose bytes
    differ from these only in ignored bytes and needed values is walked by :func:`_read` along
    exactly the same path, so its header is this one's with those values converted again.

    A value may also change length (positions written as ``1.5`` then ``10.25``): the element's
    length field differs, and everything after it lies shifted. Then the comparison goes on past
    that value with the shift, as :func:`_read` would walk on past it; :meth:`derive` then gives
    the template of the file just read, so that files laid out like it compare in one go.
    """

    def __init__(self, layout: _Layout, header: DicomHeader) -> None:
        assert layout.pixel_pos is not None and layout.offset is not None
        self.layout = layout
        self.header = header
        self.offset: int = layout.offset
        #: Bytes :func:`_read` looks at, at most: the loop checks 12 bytes at the pixel element.
        self.size = layout.pixel_pos + 12
        self._maps: tuple[npt.NDArray[np.uint8], npt.NDArray[np.int32]] | None = None
        self._needed_at: dict[int, tuple[int, int]] = {}  # needed value n -> where it lies
        #: Whether the last file read differed in more than per-instance values (another series).
        self.other_series = False
        #: ``(j, change)`` for each value of the last file read whose length differed, in order.
        self.resized: list[tuple[int, int]] = []
        self._last_values: dict[str, Any] = layout.values

    def _build(self) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int32]]:
        """The bytes, and each byte's owner (:data:`_STRUCTURE`, :data:`_IGNORED`, a needed value's
        ``n``, or ``_LENGTH_OF - j`` in the length field of ``layout.elements[j]``)."""
        lay = self.layout
        owner = np.full(self.size, _STRUCTURE, dtype=np.int32)
        owner[:128] = _IGNORED  # the preamble
        for j, (length_pos, length_size, start, end, n) in enumerate(lay.elements):
            owner[start:end] = n
            owner[length_pos : length_pos + length_size] = _LENGTH_OF - j
            if n:
                self._needed_at[n] = (start, end)
        assert lay.pixel_pos is not None
        owner[lay.pixel_pos + (12 if lay.ts == EXPLICIT_LE else 8) :] = _IGNORED  # pixel bytes, when implicit
        self._maps = np.frombuffer(lay.data, dtype=np.uint8, count=self.size), owner
        return self._maps

    def read(self, path: str, data: bytes, st: os.stat_result, resize: bool = True) -> DicomHeader | None:
        """The header of the file starting with ``data``, or ``None`` when its layout is another one
        (with ``resize`` false, also when a value's length differs).

        Raises what :func:`_read` would raise on the file: :class:`_Fallback` for a value it leaves
        to pydicom, :class:`LoadError` for absurd dimensions.
        """
        ref, owner = self._maps if self._maps is not None else self._build()
        lay = self.layout
        size, available = self.size, min(len(data), st.st_size)
        new = np.frombuffer(data, dtype=np.uint8)
        changed: dict[int, tuple[int, int]] = {}  # needed value n -> where it lies in data
        resized: list[tuple[int, int]] = []
        shift = 0  # data position - template position, past the values resized so far
        done = 0  # template bytes compared so far
        for _ in range(MAX_RESIZED + 1 if resize else 1):
            if size + shift > available:
                return None
            diff = (new[done + shift : size + shift] != ref[done:]).nonzero()[0]
            if not len(diff):
                break
            owners = owner[done:][diff]
            structure = int(owners.min()) < 0
            first = int((owners < 0).argmax()) if structure else len(owners)
            for n in set(owners[:first].tolist()):
                if n:
                    start, end = self._needed_at[n]
                    changed[n] = (start + shift, end + shift)
            if not structure:
                break
            # Structure differs: fine only in the length field of a value that may change length.
            code = int(owners[first])
            if code == _STRUCTURE or not resize:
                return None
            j = _LENGTH_OF - code
            length_pos, length_size, start, end, n = lay.elements[j]
            new_length = int.from_bytes(data[length_pos + shift : length_pos + shift + length_size], "little")
            if new_length == UNDEFINED:
                return None
            if n:
                changed[n] = (start + shift, start + shift + new_length)
            resized.append((j, new_length - (end - start)))
            shift += new_length - (end - start)
            done = end
        else:
            return None
        values = lay.values
        if changed:
            values = dict(values)
            for n, (start, end) in changed.items():
                keyword, vr = lay.needed[n - 1]
                values[keyword] = _convert(data[start:end], vr, lay.charset)
        keywords = [lay.needed[n - 1][0] for n in changed]
        self.other_series = not PER_INSTANCE.issuperset(keywords)
        self.resized, self._last_values = resized, values
        fields = changed_fields(values, self.header, keywords)
        if fields is None:  # a value that feeds more than a field or two: the whole header again
            return _finish(values, path, st, lay.ts, lay.has_pixels, self.offset + shift, lay.length)
        fields["path"] = path
        fields["file_size"] = st.st_size
        fields["mtime_ns"] = st.st_mtime_ns
        if shift:
            fields["pixel_data_offset"] = self.offset + shift
        return replace_fields(self.header, fields)

    def derive(self, data: bytes, header: DicomHeader) -> _Template:
        """The template of the file :meth:`read` has just read (``data``, giving ``header``)."""
        lay = self.layout
        elements = []
        shift = 0
        resized = iter(self.resized)
        next_j, change = next(resized, (-1, 0))
        for j, (length_pos, length_size, start, end, n) in enumerate(lay.elements):
            if j == next_j:
                elements.append((length_pos + shift, length_size, start + shift, end + shift + change, n))
                shift += change
                next_j, change = next(resized, (-1, 0))
            else:
                elements.append((length_pos + shift, length_size, start + shift, end + shift, n))
        assert lay.pixel_pos is not None and lay.offset is not None
        layout = _Layout(
            data=data,
            elements=elements,
            needed=lay.needed,
            pixel_pos=lay.pixel_pos + shift,
            values=self._last_values,
            charset=lay.charset,
            ts=lay.ts,
            has_pixels=lay.has_pixels,
            offset=lay.offset + shift,
            length=lay.length,
        )
        return _Template(layout, header)


class SeriesHeaderReader:
    """Reads headers like :func:`read_header_fd`, faster for runs of files that share one layout.

    The last few files walked in full are kept as :class:`_Template`\\ s. A file is first compared
    with them (most recently useful first): when its bytes differ from one only in values, only the
    changed values are converted and only the header fields they feed are computed again (see
    :func:`inference.io.dicom_header.changed_fields`). Otherwise it is walked in full and becomes a
    template itself. The answer is always the one :func:`read_header_fd` gives for the file.
    """

    MAX_TEMPLATES = 4

    def __init__(self) -> None:
        self._templates: list[_Template] = []
        self._read_size = FIRST_CHUNK  # bytes read first: enough for every template

    def read_fd(self, path: str, fd: int, st: os.stat_result) -> DicomHeader | None:
        """:func:`read_header_fd` for the file open at ``fd`` (at offset 0)."""
        templates = self._templates
        data = os.read(fd, self._read_size)
        try:
            # A template of exactly this layout first (one comparison each), then one whose values
            # have other lengths; a file that needed resizing, or starts another series, becomes a
            # template itself.
            for n, template in enumerate(templates):
                header = template.read(path, data, st, resize=False)
                if header is not None:
                    if template.other_series:
                        self._keep(template.derive(data, header))
                    elif n:
                        templates.insert(0, templates.pop(n))
                    return header
            for template in templates:
                header = template.read(path, data, st)
                if header is not None:
                    self._keep(template.derive(data, header))
                    return header
        except LoadError:
            raise
        except Exception:  # _Fallback, or a value header_from_dataset cannot take: as read_header_fd would
            return None
        layout = _Layout()
        header = _read_fd(path, fd, st, data, layout)
        pixel_pos = layout.pixel_pos
        if (
            header is not None
            and pixel_pos is not None
            and layout.offset is not None
            and len(layout.data) >= pixel_pos + 12
        ):
            self._keep(_Template(layout, header))
        return header

    def _keep(self, template: _Template) -> None:
        self._templates.insert(0, template)
        del self._templates[self.MAX_TEMPLATES :]
        self._read_size = max(t.size for t in self._templates) + SLACK
