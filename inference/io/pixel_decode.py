"""Decoding a DICOM file's pixel data: sizes checked first, decoders that fail safely, GDCM apart.

pydicom tries every installed decoder of a transfer syntax in turn, GDCM first; GDCM aborts the
whole process on some corrupt streams (no Python exception: the viewer or a batch run dies).
Here the decoders that fail with a Python exception (the pylibjpeg family, pydicom's own, Pillow,
pyjpegls) are tried alone, in that order; GDCM runs only where they are not installed or all
failed, and then in a short-lived worker process with a time-out and a memory limit, so that its
crash becomes a :class:`~inference.errors.LoadError` for that file.

Before any decoder runs, the buffer the header asks for is checked against what the file holds
(:func:`check_decodable`): a decoder is never handed a size the file does not justify.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import numpy.typing as npt

from inference.errors import (
    AbsurdDimensionsError,
    InvalidValueError,
    LoadError,
    TruncatedFileError,
    UnreadableFileError,
    UnsupportedTransferSyntaxError,
)
from inference.io.bounded_file import SizeBoundedReader
from inference.io.dicom_record import MAX_COMPRESSION_RATIO, RATIO_FREE_BYTES, DicomHeader
from inference.io.isolated_decode import decode_isolated, decoder_reason

#: Decoders that report a corrupt stream with a Python exception, in the order they are tried.
SAFE_PLUGINS = ("pylibjpeg", "pydicom", "pillow", "pyjpegls")
#: Decoders that can abort the process on a corrupt stream: run apart, and only as a last resort.
ISOLATED_PLUGINS = ("gdcm",)
#: Image-pixel attributes pydicom's decoders do arithmetic with: each must be a whole number.
_PIXEL_MODULE = (
    "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "SamplesPerPixel",
    "PlanarConfiguration", "NumberOfFrames",
)  # fmt: skip
_NOT_BASE_EXCEPTIONS = (KeyboardInterrupt, SystemExit, GeneratorExit)


def read_dataset(h: DicomHeader) -> Any:
    """The whole data set of ``h``'s file, pixel data included, read with sizes bounded by the file."""
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with SizeBoundedReader(h.path) as fp:
                ds = pydicom.dcmread(fp, force=True)  # the header parser already accepted it
                _ = ds.get("PixelData")  # read now, while the file is open
    except FileNotFoundError as exc:
        raise UnreadableFileError(h.path, "file disappeared after the scan") from exc
    except OSError as exc:
        raise UnreadableFileError(h.path, f"cannot read pixel data ({exc.strerror or exc})") from exc
    except RecursionError:
        raise InvalidValueError(h.path, "sequences nested too deep for a DICOM object") from None
    except MemoryError:
        raise AbsurdDimensionsError(h.path, "an element claims more memory than there is") from None
    except Exception as exc:
        from inference.io.dicom_header import pydicom_reason

        raise InvalidValueError(h.path, f"the data set cannot be read with its pixels: {pydicom_reason(exc)}") from None
    if not getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None):
        ds.file_meta.TransferSyntaxUID = h.transfer_syntax
    return ds


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _expected_bytes(h: DicomHeader) -> int:
    bits = max(h.bits_allocated, 1)
    pixels = h.number_of_frames * h.rows * h.columns * h.samples_per_pixel
    return math.ceil(pixels * bits / 8)


def check_decodable(h: DicomHeader, ds: Any) -> None:
    """Raise a typed error when the data set cannot give the pixels its header claims.

    Pixel-module attributes must be whole numbers (a wrong VR turns ``Rows`` into text); native
    data must hold the bytes the dimensions need; encapsulated data must hold at least one
    fragment per frame and no more than :data:`MAX_COMPRESSION_RATIO` decoded bytes per byte.
    """
    from inference.io.dicom_header import pydicom_reason

    for keyword in _PIXEL_MODULE:
        try:
            value = ds.get(keyword)
        except Exception as exc:
            raise InvalidValueError(h.path, f"{keyword} cannot be read: {pydicom_reason(exc)}") from None
        if value is None or isinstance(value, int):
            continue
        if keyword == "NumberOfFrames" and str(value).strip().lstrip("+-").isdigit():
            continue
        raise InvalidValueError(h.path, f"{keyword} is {str(value)[:40]!r}, not a whole number")
    try:
        data = ds.get("PixelData")
    except Exception as exc:
        raise InvalidValueError(h.path, f"PixelData cannot be read: {pydicom_reason(exc)}") from None
    if not isinstance(data, bytes | bytearray):
        kind = "is missing" if data is None else f"is {type(data).__name__}, not bytes (wrong VR?)"
        raise InvalidValueError(h.path, f"PixelData {kind}")
    expected = _expected_bytes(h)
    encapsulated = bool(getattr(ds.file_meta.TransferSyntaxUID, "is_encapsulated", False))
    if not encapsulated:
        need = expected * 2 // 3 if h.photometric == "YBR_FULL_422" else expected
        if len(data) < need:
            raise TruncatedFileError(
                h.path,
                f"pixel data holds {len(data)} bytes; Rows × Columns × SamplesPerPixel × BitsAllocated × "
                f"NumberOfFrames need {need}",
            )
        return
    n_fragments = _count_fragments(data)
    if n_fragments < 0:
        raise LoadError(h.path, "the encapsulated pixel data is malformed (an item tag or length is wrong)")
    if h.number_of_frames > max(n_fragments, 1):
        raise AbsurdDimensionsError(
            h.path,
            f"NumberOfFrames is {h.number_of_frames}, but the compressed pixel data holds {n_fragments} "
            "fragment(s); refusing to allocate",
        )
    if expected > RATIO_FREE_BYTES and expected > MAX_COMPRESSION_RATIO * len(data):
        raise AbsurdDimensionsError(
            h.path,
            f"Rows × Columns × NumberOfFrames ({h.rows}×{h.columns}×{h.number_of_frames}) claims {expected} "
            f"decoded bytes from {len(data)} compressed ones; refusing to allocate",
        )


def _count_fragments(data: bytes | bytearray) -> int:
    """Fragments after the basic offset table of encapsulated pixel data; -1 when the items are malformed."""
    import struct

    pos, count, end = 0, -1, len(data)  # the first item is the offset table
    while pos + 8 <= end:
        group, elem, length = struct.unpack_from("<HHI", data, pos)
        if (group, elem) == (0xFFFE, 0xE0DD):
            break
        if (group, elem) != (0xFFFE, 0xE000) or length == 0xFFFFFFFF:
            return -1 if count < 0 else count
        pos += 8 + length
        count += 1
    return max(count, 0)


def _plugins(ts: str) -> tuple[list[str], list[str]]:
    """The installed safe decoders and isolated decoders for ``ts``; two empty lists for native data."""
    from pydicom.pixels.decoders.base import get_decoder

    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        return [], []
    if not decoder.is_encapsulated:
        return [], []
    available = list(decoder.available_plugins)
    safe = [p for p in SAFE_PLUGINS if p in available] + [
        p for p in available if p not in SAFE_PLUGINS and p not in ISOLATED_PLUGINS
    ]
    return safe, [p for p in ISOLATED_PLUGINS if p in available]


def decode_all_frames(h: DicomHeader, ds: Any) -> npt.NDArray[Any]:
    """``ds.pixel_array`` (every frame) through the decoders that fail safely; see the module."""
    from pydicom.pixels.decoders.base import get_decoder
    from pydicom.uid import UID

    ts = str(ds.file_meta.TransferSyntaxUID)
    if not UID(ts).is_transfer_syntax:
        raise UnsupportedTransferSyntaxError(h.path, f"TransferSyntaxUID {ts[:64]!r} is not a transfer syntax")
    check_decodable(h, ds)
    try:
        get_decoder(ts)
    except NotImplementedError:
        raise UnsupportedTransferSyntaxError(h.path, f"no decoder exists for transfer syntax {ts}") from None
    safe, isolated = _plugins(ts)
    if not safe and isolated:
        return decode_isolated(h.path, h.transfer_syntax, isolated[0], _expected_bytes(h))
    failures: list[str] = []
    for plugin in safe or [""]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds.pixel_array_options(decoding_plugin=plugin)
                return np.asarray(ds.pixel_array)
        except _NOT_BASE_EXCEPTIONS:
            raise
        except MemoryError:
            raise AbsurdDimensionsError(h.path, "decoding needs more memory than there is") from None
        except BaseException as exc:
            failures.append(f"{plugin or 'pydicom'}: {decoder_reason(exc)}")
    if not safe and not isolated and _is_encapsulated(ts):
        raise UnsupportedTransferSyntaxError(h.path, f"no installed decoder for transfer syntax {ts}")
    if isolated and safe:
        # GDCM reads some valid streams the others refuse (12-bit extended JPEG, odd lossless
        # variants): last, and in its own process.
        try:
            return decode_isolated(h.path, h.transfer_syntax, isolated[0], _expected_bytes(h))
        except LoadError as exc:
            failures.append(exc.reason.removeprefix("compressed pixel data is corrupt: "))
    detail = "; ".join(failures)[:300]
    low = detail.lower()
    if any(w in low for w in ("truncat", "end of", "insufficient", "not enough", "too short", "eof")):
        raise TruncatedFileError(h.path, f"pixel data cannot be decoded: {detail}")
    if any(w in low for w in ("plugin", "dependenc", "not supported", "no pixel data handler")):
        raise UnsupportedTransferSyntaxError(h.path, f"no installed decoder for transfer syntax {ts}: {detail}")
    raise LoadError(
        h.path, f"compressed pixel data is corrupt: {detail}" if safe else f"cannot decode pixel data: {detail}"
    )


def _is_encapsulated(ts: str) -> bool:
    from pydicom.uid import UID

    return bool(UID(ts).is_encapsulated)
