"""Structure-aware mutations of DICOM, NIfTI, NRRD and MetaImage files, grouped into families.

Each family is a function ``(seed bytes, companions, rng) -> Mutant``. DICOM mutations work on
the elements :func:`tests.fuzz.dicom_walk.walk` finds (values, lengths, VRs, sequences), the
others on the formats' header fields; truncations and byte flips apply to every format.
"""

from __future__ import annotations

import gzip
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.fuzz.dicom_walk import UNDEFINED, Element, walk


@dataclass
class Mutant:
    data: bytes  # the mutated file
    note: str  # what was done, for the reproducer
    companions: dict[str, bytes] = field(default_factory=dict)  # detached data files by name
    #: Paths to create beside the file as something other than a regular file: "fifo" or "dir".
    specials: dict[str, str] = field(default_factory=dict)


# --- values --------------------------------------------------------------------------------------

TEXT_VALUES = (
    b"0", b"-1", b"NaN", b"nan", b"inf", b"-inf", b"1e308", b"-1e308", b"1e-320", b"99999", b"4294967296",
    b"", b"1\\2\\3", b"abc", b"0\\0\\0\\0\\0\\0", b"NaN\\NaN\\NaN", b"1e400\\0\\0", b"-0", b"65536",
    b"1\\0\\0\\0\\1\\0", b"1\\0\\0\\1\\0\\0", b"0\\0", b"-5\\-5", b"2147483648", b"9" * 64, b"\x00\xff\x80",
)  # fmt: skip
UID_VALUES = (
    b"", b"1.2.840.10008.1.2.4.50", b"1.2.840.10008.1.2.4.90", b"1.2.840.10008.1.2.5", b"1.2.840.10008.1.2.2",
    b"1.2.840.10008.1.2", b"1.2.840.10008.1.2.1.99", b"1.2.840.10008.1.2.4.80", b"1.2.840.10008.1.2.4.100",
    b"1.2.840.10008.5.1.4.1.1.481.2", b"1.2.840.10008.5.1.4.1.1.88.11", b"garbage", b"1." * 40,
)  # fmt: skip
CS_VALUES = (
    b"CT", b"MR", b"SR", b"OT", b"", b"MONOCHROME1", b"PALETTE COLOR", b"RGB", b"YBR_FULL_422", b"YBR_RCT",
    b"ISO_IR 192", b"ISO 2022 IR 87", b"\\\\\\", b"RTDOSE", b"SEG",
)  # fmt: skip
US_VALUES = (0, 1, 2, 3, 7, 8, 12, 16, 17, 32, 33, 64, 255, 32768, 65535)
#: Attributes whose values the loader uses: mutated far more often than the rest.
TARGET_TAGS = {
    0x00020010, 0x00080008, 0x00080016, 0x00080060, 0x00180050, 0x0020000E, 0x00200032, 0x00200037,
    0x00280002, 0x00280004, 0x00280006, 0x00280008, 0x00280010, 0x00280011, 0x00280030, 0x00280100,
    0x00280101, 0x00280102, 0x00280103, 0x00281050, 0x00281051, 0x00281052, 0x00281053, 0x3004000C,
    0x3004000E, 0x00080005, 0x00281101, 0x00281201, 0x00289110, 0x00209113, 0x00209116, 0x52009229,
    0x52009230, 0x00209111, 0x00289145, 0x00186011,
}  # fmt: skip


def _even(value: bytes) -> bytes:
    return value + b" " if len(value) % 2 else value


def _value_for(e: Element, rng: random.Random) -> bytes:
    order = "<" if e.little else ">"
    if e.vr in ("US", "SS"):
        return b"".join(struct.pack(order + "H", rng.choice(US_VALUES)) for _ in range(rng.choice((1, 1, 1, 2, 0))))
    if e.vr in ("UL", "SL"):
        return struct.pack(order + "I", rng.choice((0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000)))
    if e.vr in ("FL", "OF"):
        return struct.pack(order + "f", rng.choice((0.0, -1.0, float("nan"), float("inf"), 3e38)))
    if e.vr in ("FD", "OD"):
        return struct.pack(order + "d", rng.choice((0.0, -1.0, float("nan"), float("-inf"), 1e308)))
    if e.vr == "UI":
        return _even(rng.choice(UID_VALUES) + b"\0") if rng.random() < 0.5 else _even(rng.choice(UID_VALUES))
    if e.vr == "CS":
        return _even(rng.choice(CS_VALUES))
    return _even(rng.choice(TEXT_VALUES))


def _pick(elements: list[Element], rng: random.Random) -> Element:
    targets = [e for e in elements if e.tag in TARGET_TAGS]
    return rng.choice(targets if targets and rng.random() < 0.8 else elements)


def _set_length(data: bytearray, e: Element, length: int) -> None:
    order = "<" if e.little else ">"
    if e.length_size == 2:
        struct.pack_into(order + "H", data, e.length_pos, length & 0xFFFF)
    else:
        struct.pack_into(order + "I", data, e.length_pos, length & 0xFFFFFFFF)


def _replace_value(data: bytes, e: Element, value: bytes) -> bytes:
    if e.length == UNDEFINED:
        return data
    out = bytearray(data[: e.value_pos] + value + data[e.value_pos + e.length :])
    if e.length_size == 2 and len(value) > 0xFFFF:
        value = value[:0xFFFE]
    _set_length(out, e, len(value))
    return bytes(out)


def dicom_value(data: bytes, rng: random.Random) -> Mutant:
    elements, _, _ = walk(data)
    if not elements:
        return flip_header(data, rng)
    notes = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        elements, _, _ = walk(data)
        if not elements:
            break
        e = _pick(elements, rng)
        value = _value_for(e, rng)
        data = _replace_value(data, e, value)
        notes.append(f"({e.tag >> 16:04X},{e.tag & 0xFFFF:04X}) {e.vr} := {value[:40]!r}")
    return Mutant(data, "value: " + "; ".join(notes))


#: (tag, VR) of attributes the loader reads, to add where a file lacks them.
INSERTABLE = (
    (0x00280008, "IS"), (0x00281053, "DS"), (0x00281052, "DS"), (0x00280030, "DS"), (0x00200032, "DS"),
    (0x00200037, "DS"), (0x00180050, "DS"), (0x00281050, "DS"), (0x00281051, "DS"), (0x00280006, "US"),
    (0x3004000E, "DS"), (0x3004000C, "DS"), (0x00080060, "CS"), (0x00280004, "CS"), (0x00280002, "US"),
)  # fmt: skip


def dicom_insert(data: bytes, rng: random.Random) -> Mutant:
    """Add an attribute the file lacks (or a second copy of one it has), in tag order, at the top level."""
    elements, pixel, _ = walk(data)
    top = [e for e in elements if e.depth == 0 and e.header_pos >= 132 and (e.tag >> 16) != 2]
    if not top or pixel is None:
        return dicom_value(data, rng)
    tag, vr = rng.choice(INSERTABLE)
    explicit, little = top[0].explicit, top[0].little
    probe = Element(tag, vr, explicit, little, 0, 0, 2, 0, 0, 0)
    value = _value_for(probe, rng)
    order = "<" if little else ">"
    head = struct.pack(order + "HH", tag >> 16, tag & 0xFFFF)
    if explicit:
        head += vr.encode() + struct.pack(order + "H", len(value))
    else:
        head += struct.pack(order + "I", len(value))
    at = next((e.header_pos for e in top if e.tag >= tag), pixel)
    return Mutant(
        data[:at] + head + value + data[at:], f"inserted ({tag >> 16:04X},{tag & 0xFFFF:04X}) {vr} {value[:40]!r}"
    )


def dicom_multi(data: bytes, rng: random.Random) -> Mutant:
    """Two mutations of different families, one after the other."""
    families = [dicom_value, dicom_length, dicom_vr, dicom_insert, flip_header, dicom_flip_pixels, dicom_sequence]
    first, second = rng.sample(families, 2)
    a = first(data, rng)
    b = second(a.data, rng)
    return Mutant(b.data, f"{a.note} + {b.note}")


def dicom_length(data: bytes, rng: random.Random) -> Mutant:
    elements, _, _ = walk(data)
    if not elements:
        return flip_header(data, rng)
    e = _pick(elements, rng) if rng.random() < 0.5 else rng.choice(elements)
    choices = [0, 1, e.length + 1, e.length + 2, max(e.length - 2, 0), 0xFFFF, len(data), 2 * len(data)]
    if e.length_size == 4:
        choices += [UNDEFINED, 0xFFFFFFF0, 0x7FFFFFFF, 0x80000000, 0x10000000]
    length = rng.choice(choices)
    out = bytearray(data)
    _set_length(out, e, length)
    return Mutant(bytes(out), f"length of ({e.tag >> 16:04X},{e.tag & 0xFFFF:04X}) {e.length} -> {length}")


VRS = (b"SQ", b"UN", b"OB", b"OW", b"US", b"UL", b"FD", b"DS", b"IS", b"CS", b"UI", b"AT", b"ZZ", b"\0\0")


def dicom_vr(data: bytes, rng: random.Random) -> Mutant:
    elements, _, _ = walk(data)
    explicit = [e for e in elements if e.explicit and e.header_pos >= 132]
    if not explicit:
        return dicom_value(data, rng)
    e = _pick(explicit, rng)
    vr = rng.choice(VRS)
    out = bytearray(data)
    out[e.header_pos + 4 : e.header_pos + 6] = vr
    return Mutant(bytes(out), f"VR of ({e.tag >> 16:04X},{e.tag & 0xFFFF:04X}) {e.vr} -> {vr!r}")


def dicom_sequence(data: bytes, rng: random.Random) -> Mutant:
    """Open sequences: delimiters removed, lengths made undefined, deep nesting, items cut."""
    elements, pixel, _ = walk(data)
    seqs = [e for e in elements if e.vr == "SQ"]
    how = rng.choice(("open", "drop-delimiters", "deep", "item-length"))
    if how == "deep" or not seqs:
        # A sequence nested thousands deep, inserted before pixel data (or at the end of the header).
        at = pixel if pixel is not None else len(data)
        e = next((x for x in elements if x.header_pos >= 132), None)
        explicit = e.explicit if e is not None else True
        depth = rng.choice((50, 2000, 20000))
        head = b"\x09\x00\x10\x10SQ\0\0\xff\xff\xff\xff" if explicit else b"\x09\x00\x10\x10\xff\xff\xff\xff"
        item = b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
        bomb = (head + item) * depth
        return Mutant(data[:at] + bomb + data[at:], f"{depth} nested open sequences in a private tag")
    e = rng.choice(seqs)
    out = bytearray(data)
    if how == "open":
        _set_length(out, e, UNDEFINED)
        return Mutant(bytes(out), f"sequence ({e.tag >> 16:04X},{e.tag & 0xFFFF:04X}) length made undefined")
    if how == "item-length":
        pos = e.value_pos
        if pos + 8 <= len(out):
            struct.pack_into("<I", out, pos + 4, rng.choice((0, 1, 0xFFFFFFF0, 7)))
        return Mutant(bytes(out), f"first item length of ({e.tag >> 16:04X},{e.tag & 0xFFFF:04X}) changed")
    # Remove every item/sequence delimiter after the sequence start.
    tail = bytes(out[e.value_pos :]).replace(b"\xfe\xff\xdd\xe0\x00\x00\x00\x00", b"")
    tail = tail.replace(b"\xfe\xff\x0d\xe0\x00\x00\x00\x00", b"")
    return Mutant(bytes(out[: e.value_pos]) + tail, "sequence delimiters removed")


def truncate(data: bytes, rng: random.Random) -> Mutant:
    cut = rng.randrange(0, max(len(data), 1))
    if rng.random() < 0.5:
        cut = min(cut, rng.randrange(0, min(len(data), 2048) + 1))
    return Mutant(data[:cut], f"truncated at {cut} of {len(data)} bytes")


def _flip(data: bytes, lo: int, hi: int, rng: random.Random) -> tuple[bytes, list[int]]:
    out = bytearray(data)
    where = []
    if hi <= lo:
        return data, where
    for _ in range(rng.choice((1, 1, 2, 4, 8, 32))):
        i = rng.randrange(lo, hi)
        out[i] = rng.choice((out[i] ^ (1 << rng.randrange(8)), 0, 0xFF, rng.randrange(256)))
        where.append(i)
    return bytes(out), where


def flip_header(data: bytes, rng: random.Random, end: int | None = None) -> Mutant:
    if end is None:
        _, pixel, _ = walk(data)
        end = pixel if pixel is not None else min(len(data), 2048)
    out, where = _flip(data, 0, min(end, len(data)), rng)
    return Mutant(out, f"header bytes changed at {where}")


def dicom_flip_pixels(data: bytes, rng: random.Random) -> Mutant:
    _, pixel, _ = walk(data)
    start = pixel if pixel is not None else len(data) // 2
    out, where = _flip(data, start, len(data), rng)
    return Mutant(out, f"pixel bytes changed at {where}")


# --- NIfTI ---------------------------------------------------------------------------------------

#: (name, offset, struct format) of NIfTI-1 header fields.
NIFTI_FIELDS = (
    ("sizeof_hdr", 0, "i"), *((f"dim[{n}]", 40 + 2 * n, "h") for n in range(8)), ("datatype", 70, "h"),
    ("bitpix", 72, "h"), *((f"pixdim[{n}]", 76 + 4 * n, "f") for n in range(8)), ("vox_offset", 108, "f"),
    ("scl_slope", 112, "f"), ("scl_inter", 116, "f"), ("xyzt_units", 123, "B"), ("qform_code", 252, "h"),
    ("sform_code", 254, "h"), ("quatern_b", 256, "f"), ("quatern_c", 260, "f"), ("quatern_d", 264, "f"),
    ("qoffset_x", 268, "f"), ("qoffset_y", 272, "f"), ("qoffset_z", 276, "f"),
    *((f"srow_{a}[{n}]", 280 + 16 * i + 4 * n, "f") for i, a in enumerate("xyz") for n in range(4)),
)  # fmt: skip
INT_VALUES = (0, -1, 1, 2, 3, 4, 5, 7, 8, 16, 32767, -32768, 2304, 128, 1024)
FLOAT_VALUES = (0.0, -1.0, float("nan"), float("inf"), float("-inf"), 1e38, 1e-38, 352.0, 1e9, 0.5)


def _nifti_bytes(data: bytes) -> tuple[bytes, bool]:
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data), True
        except Exception:
            return data, False
    return data, False


def nifti_field(data: bytes, rng: random.Random) -> Mutant:
    raw, zipped = _nifti_bytes(data)
    out = bytearray(raw)
    notes = []
    for _ in range(rng.choice((1, 1, 2, 2, 3))):
        name, offset, fmt = rng.choice(NIFTI_FIELDS)
        if offset + struct.calcsize(fmt) > len(out):
            continue
        value: float | int
        if fmt == "f":
            value = rng.choice(FLOAT_VALUES)
        elif fmt == "B":
            value = rng.choice((0, 1, 2, 3, 255))
        else:
            value = rng.choice(INT_VALUES)
            if fmt == "i":
                value = rng.choice((0, 348, 540, -348, 1 << 30))
        struct.pack_into("<" + fmt, out, offset, value)
        notes.append(f"{name} := {value}")
    body = gzip.compress(bytes(out), mtime=0) if zipped else bytes(out)
    return Mutant(body, "nifti: " + "; ".join(notes))


def nifti_flip(data: bytes, rng: random.Random) -> Mutant:
    raw, zipped = _nifti_bytes(data)
    if zipped and rng.random() < 0.3:
        out, where = _flip(data, 0, len(data), rng)  # the compressed stream itself
        return Mutant(out, f"compressed bytes changed at {where}")
    hi = 352 if rng.random() < 0.7 else len(raw)
    out, where = _flip(raw, 0, min(hi, len(raw)), rng)
    return Mutant(gzip.compress(out, mtime=0) if zipped else out, f"bytes changed at {where}")


# --- NRRD and MetaImage text headers ------------------------------------------------------------

NRRD_VALUES: dict[str, tuple[str, ...]] = {
    "sizes": ("0 9 6", "-1 9 6", "99999999 99999 9999", "nan 9 6", "11 9", "11 9 6 2", "4294967296 1 1", "x"),
    "dimension": ("0", "2", "4", "99", "-3", "nan"),
    "type": ("double", "bogus", "block", "int64", "uchar", "float"),
    "encoding": ("raw", "gzip", "bzip2", "hex", "txt", "bogus"),
    "endian": ("big", "little", "bogus"),
    "space directions": (
        "(nan,0,0) (0,inf,0) (0,0,1)", "(0,0,0) (0,0,0) (0,0,0)", "none (1,0,0) (0,1,0)",
        "(1e308,0,0) (0,1,0) (0,0,1)", "(1,0) (0,1) (0,0)", "garbage",
    ),
    "space origin": ("(nan,nan,nan)", "(1e308,0,0)", "(1,2)", "()"),
    "line skip": ("1000000000", "-1", "5", "nan"),
    "byte skip": ("1000000000", "-1", "-5", "123", "99999999999999999999"),
    "data file": ("/dev/zero", "fifo.raw", "nonexistent.raw", ".", "LIST", "detached.%03d.raw 0 100 1", "dir.raw"),
    "spacings": ("nan nan nan", "0 0 0", "-1 1 1", "1e308 1 1"),
    "kinds": ("vector domain domain", "RGB-color domain domain", "list list list", "domain"),
    "space dimension": ("0", "99", "2"),
    "space": ("bogus", "right-anterior-superior", "scanner-xyz-time"),
}  # fmt: skip
META_VALUES: dict[str, tuple[str, ...]] = {
    "NDims": ("0", "1", "2", "4", "99", "-1", "nan"),
    "DimSize": ("0 9 6", "-1 9 6", "99999999 99999 9999", "11 9", "nan 9 6", "4294967296 1 1"),
    "ElementType": ("MET_DOUBLE", "MET_BOGUS", "MET_UCHAR", "MET_LONG_LONG", ""),
    "ElementSpacing": ("nan nan nan", "0 0 0", "-1 1 1", "inf 1 1", "1"),
    "Offset": ("nan nan nan", "1e308 0 0", "1"),
    "TransformMatrix": ("0 0 0 0 0 0 0 0 0", "nan 0 0 0 1 0 0 0 1", "1 0 0 0 1 0"),
    "HeaderSize": ("-1", "1000000000", "-5", "99999999999999999999"),
    "CompressedData": ("True", "False", "bogus"),
    "CompressedDataSize": ("0", "1", "1000000000000", "-1"),
    "ElementDataFile": ("/dev/zero", "fifo.raw", "nonexistent.raw", ".", "LIST", "dir.raw", "LOCAL"),
    "ElementNumberOfChannels": ("0", "-1", "1000000", "3"),
    "BinaryDataByteOrderMSB": ("True", "bogus"),
    "ObjectType": ("Mesh", ""),
}  # fmt: skip


def _text_header(data: bytes, end_marker: bytes) -> tuple[bytes, bytes]:
    cut = data.find(end_marker)
    return (data, b"") if cut < 0 else (data[:cut], data[cut:])


def _specials_for(value: str) -> dict[str, str]:
    return {"fifo.raw": "fifo"} if "fifo" in value else {"dir.raw": "dir"} if "dir.raw" in value else {}


def _mutate_fields(
    header: str, table: dict[str, tuple[str, ...]], sep: str, rng: random.Random
) -> tuple[str, str, dict[str, str]]:
    lines = header.split("\n")
    notes, specials = [], {}
    for _ in range(rng.choice((1, 1, 2, 3))):
        key = rng.choice(list(table))
        value = rng.choice(table[key])
        specials.update(_specials_for(value))
        idx = next((i for i, ln in enumerate(lines) if ln.split(sep)[0].strip().lower() == key.lower()), None)
        if idx is None:
            where = len(lines) - 1 if sep == "=" else len(lines)
            lines.insert(max(where, 1), f"{key}{sep} {value}" if sep == ":" else f"{key} = {value}")
        else:
            lines[idx] = f"{key}{sep} {value}" if sep == ":" else f"{key} = {value}"
        notes.append(f"{key} := {value}")
    return "\n".join(lines), "; ".join(notes), specials


def nrrd_field(data: bytes, rng: random.Random) -> Mutant:
    header, rest = _text_header(data, b"\n\n")
    text, note, specials = _mutate_fields(header.decode("latin-1"), NRRD_VALUES, ":", rng)
    return Mutant(text.encode("latin-1") + rest, "nrrd: " + note, specials=specials)


def meta_field(data: bytes, rng: random.Random) -> Mutant:
    marker = data.find(b"ElementDataFile")
    line_end = data.find(b"\n", marker) if marker >= 0 else -1
    header, rest = (data[: line_end + 1], data[line_end + 1 :]) if line_end >= 0 else (data, b"")
    text, note, specials = _mutate_fields(header.decode("latin-1"), META_VALUES, "=", rng)
    # ElementDataFile must stay the last header line: move it there.
    lines = [ln for ln in text.split("\n") if ln]
    edf = [ln for ln in lines if ln.lower().startswith("elementdatafile")]
    lines = [ln for ln in lines if not ln.lower().startswith("elementdatafile")] + edf[-1:]
    return Mutant(("\n".join(lines) + "\n").encode("latin-1") + rest, "meta: " + note, specials=specials)


def text_flip(data: bytes, rng: random.Random) -> Mutant:
    end = data.find(b"\n\n")
    end = end if end > 0 else data.find(b"ElementDataFile")
    end = end if end > 0 else min(len(data), 512)
    if rng.random() < 0.3:
        out, where = _flip(data, end, len(data), rng)
        return Mutant(out, f"data bytes changed at {where}")
    return flip_header(data, rng, end=end)


def companion_mutation(data: bytes, companions: dict[str, bytes], rng: random.Random) -> Mutant:
    """The detached data file cut short, emptied or replaced by a FIFO or a folder."""
    name = rng.choice(sorted(companions))
    how = rng.choice(("truncate", "empty", "fifo", "dir", "grow"))
    comp = dict(companions)
    specials: dict[str, str] = {}
    if how == "truncate":
        comp[name] = comp[name][: rng.randrange(0, max(len(comp[name]), 1))]
    elif how == "empty":
        comp[name] = b""
    elif how == "grow":
        comp[name] = comp[name] + bytes(rng.randrange(1, 5000))
    else:
        del comp[name]
        specials[name] = how
    return Mutant(data, f"data file {name}: {how}", companions=comp, specials=specials)


Family = Callable[[bytes, random.Random], Mutant]

#: Families by seed kind. Weights repeat a family to run it more often.
FAMILIES: dict[str, dict[str, Family]] = {
    "dicom": {
        "dicom-value": dicom_value,
        "dicom-length": dicom_length,
        "dicom-vr": dicom_vr,
        "dicom-sequence": dicom_sequence,
        "dicom-truncate": truncate,
        "dicom-flip-header": flip_header,
        "dicom-flip-pixels": dicom_flip_pixels,
        "dicom-insert": dicom_insert,
        "dicom-multi": dicom_multi,
    },
    "nifti": {"nifti-field": nifti_field, "nifti-truncate": truncate, "nifti-flip": nifti_flip},
    "nrrd": {"nrrd-field": nrrd_field, "nrrd-truncate": truncate, "nrrd-flip": text_flip},
    "meta": {"meta-field": meta_field, "meta-truncate": truncate, "meta-flip": text_flip},
}
