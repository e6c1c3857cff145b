"""Header-only parsing of one DICOM file into a small, picklable record.

Parsing stops before the pixel data; the byte offset of uncompressed pixel data is kept so
the loader can read it straight into a preallocated volume without parsing again. The record
itself (:class:`~inference.io.dicom_record.DicomHeader`) lives in :mod:`inference.io.dicom_record`.
"""

from __future__ import annotations

import os
import re
import stat
import struct
from typing import Any

from inference.errors import (
    AbsurdDimensionsError,
    EmptyFileError,
    InvalidValueError,
    LoadError,
    NotDicomError,
    TruncatedFileError,
    UnreadableFileError,
)
from inference.io.bounded_file import SizeBoundedReader
from inference.io.dicom_record import (
    BIG_ENDIAN,
    DicomHeader,
    FrameGeometry,
    check_pixel_length,
    header_from_dataset,
)
from inference.io.fast_header import NEEDED, SeriesHeaderReader, read_header_fd

#: Every attribute the header record is built from (the fast reader's, and the multi-frame ones).
READ_KEYWORDS = (
    *(keyword for keyword, _ in NEEDED.values()),
    "GridFrameOffsetVector",
    "DoseGridScaling",
    "SharedFunctionalGroupsSequence",
    "PerFrameFunctionalGroupsSequence",
)

__all__ = ["DicomHeader", "FrameGeometry", "check_pixel_length", "read_header", "transfer_syntax_of"]


def _value_cut_short(ds: Any) -> bool:
    """pydicom keeps a value cut off by the end of the file without complaint: compare lengths."""
    for elem in ds.elements():
        value = getattr(elem, "value", None)
        length = getattr(elem, "length", None)
        if isinstance(value, bytes) and isinstance(length, int) and length != 0xFFFFFFFF and len(value) < length:
            return True
    return False


def transfer_syntax_of(ds: Any) -> str:
    """The transfer syntax UID, inferred from how the data set was read when the meta header lacks it."""
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if ts:
        return str(ts)
    implicit, little = getattr(ds, "original_encoding", (True, True))
    if implicit:
        return "1.2.840.10008.1.2"
    return "1.2.840.10008.1.2.1" if little else BIG_ENDIAN


def _pixel_element(fp: Any, explicit_vr: bool, big_endian: bool = False) -> tuple[bool, int | None, int | None]:
    """At the file position where parsing stopped: is this Pixel Data, where, how long."""
    order = ">" if big_endian else "<"
    start = fp.tell()
    head = fp.read(12 if explicit_vr else 8)
    if len(head) < 8:
        return False, None, None
    group, element = struct.unpack(order + "HH", head[:4])
    if (group, element) not in ((0x7FE0, 0x0010), (0x7FE0, 0x0008), (0x7FE0, 0x0009)):
        return False, None, None
    if explicit_vr:
        if len(head) < 12:
            return True, None, None
        length = struct.unpack(order + "I", head[8:12])[0]
        offset = start + 12
    else:
        length = struct.unpack(order + "I", head[4:8])[0]
        offset = start + 8
    if length == 0xFFFFFFFF:  # encapsulated (compressed) pixel data
        return True, None, None
    return True, offset, length


def read_header(path: str | os.PathLike[str], reader: SeriesHeaderReader | None = None) -> DicomHeader:
    """Parse the header of one DICOM file; raise a typed :class:`LoadError` if it cannot be used.

    Plain Explicit/Implicit VR Little Endian files are read by :mod:`inference.io.fast_header`
    without pydicom; everything else (and anything that reader is unsure of) goes through pydicom.
    A :class:`~inference.io.fast_header.SeriesHeaderReader` passed as ``reader`` (one for many
    files) reads files laid out like one it has read before faster; the header is the same.
    """
    p = os.fspath(path)
    try:
        st = os.stat(p)
    except OSError as exc:
        raise UnreadableFileError(p, f"cannot stat file ({exc.strerror or exc})") from exc
    if not stat.S_ISREG(st.st_mode):
        raise UnreadableFileError(p, "not a regular file (folder, FIFO, socket or device)")
    if st.st_size == 0:
        raise EmptyFileError(p, "the file is empty (0 bytes)")
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise UnreadableFileError(p, f"cannot read file ({exc.strerror or exc})") from exc
    try:
        header = reader.read_fd(p, fd, st) if reader is not None else read_header_fd(p, fd, st)
    except LoadError:
        raise
    except Exception:  # the fast reader never decides a failure: pydicom does
        header = None
    finally:
        os.close(fd)
    if header is not None:
        return header
    return _read_header_pydicom(p, st)


def _read_header_pydicom(p: str, st: os.stat_result) -> DicomHeader:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        with SizeBoundedReader(p) as fp:
            try:
                ds = pydicom.dcmread(fp, stop_before_pixels=True)
            except InvalidDicomError as exc:
                # Old files may lack the preamble: accept them when they start with a group 0008 tag.
                fp.seek(0)
                if fp.read(2) not in (b"\x08\x00", b"\x00\x08"):
                    raise NotDicomError(p, "not a DICOM file (no DICM preamble or valid header)") from exc
                fp.seek(0)
                try:
                    ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
                except Exception as exc2:
                    raise NotDicomError(p, f"not a DICOM file ({type(exc2).__name__})") from exc2
            except (EOFError, struct.error) as exc:
                raise TruncatedFileError(p, "the file ends inside its DICOM header") from exc
            except OSError:
                raise
            except RecursionError:
                raise InvalidValueError(p, "sequences nested too deep for a DICOM object") from None
            except MemoryError:
                raise AbsurdDimensionsError(p, "an element of the header claims more memory than there is") from None
            except Exception as exc:  # pydicom raises many types for garbage
                raise NotDicomError(p, f"unreadable DICOM header: {pydicom_reason(exc)}") from exc
            if _value_cut_short(ds):
                raise TruncatedFileError(p, "the file ends inside its DICOM header")
            ts = transfer_syntax_of(ds)
            explicit = ts != "1.2.840.10008.1.2"
            if ts == "1.2.840.10008.1.2.1.99":  # deflated: offsets are meaningless
                has_pixels = True
                offset = length = None
            else:
                has_pixels, offset, length = _pixel_element(fp, explicit, ts == BIG_ENDIAN)
                if ts == BIG_ENDIAN:
                    offset = None
    except LoadError:
        raise
    except OSError as exc:
        raise UnreadableFileError(p, f"cannot read file ({exc.strerror or exc})") from exc
    except Exception as exc:  # a value pydicom converts only when first looked at
        raise InvalidValueError(p, f"malformed DICOM header: {pydicom_reason(exc)}") from exc
    if len(ds) == 0 and not getattr(ds, "file_meta", None):
        raise NotDicomError(p, "not a DICOM file")
    if "SOPClassUID" not in ds and "Modality" not in ds and "Rows" not in ds:
        raise NotDicomError(p, "no DICOM image or object attributes found")

    _check_readable(ds, p)
    try:
        return header_from_dataset(ds, p, st, ts, has_pixels, offset, length)
    except LoadError:
        raise
    except RecursionError:
        raise InvalidValueError(p, "sequences nested too deep for a DICOM object") from None
    except Exception as exc:  # a malformed value deep in pydicom
        raise InvalidValueError(p, f"malformed DICOM header: {pydicom_reason(exc)}") from exc


_UNKNOWN_VR = re.compile(r"Unknown Value Representation '(.*?)' in tag \(([0-9A-Fa-f]{4}),([0-9A-Fa-f]{4})\)")


def pydicom_reason(exc: BaseException) -> str:
    """What a pydicom parsing error says about the file, in a user's words where it is a known case."""
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    if m := _UNKNOWN_VR.search(str(exc)):
        return f"element ({m.group(2)},{m.group(3)}) has an unknown value representation {m.group(1)[:16]!r}"
    if type(exc).__name__ == "BytesLengthException":
        return f"a numeric element's length is not a whole number of values ({text})"
    if "embedded null" in text:
        return "a text value holds a NUL byte"
    if isinstance(exc, UnicodeDecodeError):
        return f"a text value is not in the declared character set ({text})"
    return f"{text} ({type(exc).__name__})" if text else type(exc).__name__


def _check_readable(ds: Any, p: str) -> None:
    """pydicom converts values when first asked: ask for each attribute RadLens uses, so that one
    that cannot be converted (a wrong VR, an unknown VR, bytes that are no value) is named."""
    for keyword in READ_KEYWORDS:
        try:
            ds.get(keyword)
        except Exception as exc:
            raise InvalidValueError(p, f"{keyword} cannot be read: {pydicom_reason(exc)}") from None
