"""Declared size of a PNG or JPEG stream, read from its header without decoding a pixel.

A compressed camera frame says how large it will be before any pixel is decoded; reading that first lets the
caller refuse a hostile frame (a few bytes declaring 100000x100000) before a decoder allocates for it.

PNG (ISO/IEC 15948): an 8-byte signature, then the IHDR chunk, which must come first: a 4-byte length (13),
the type ``IHDR``, width and height (big-endian, 1..2^31-1), bit depth, colour type, compression, filter and
interlace methods, and a CRC-32 over type and data.

JPEG (ITU-T T.81, Annex B): the SOI marker FFD8, then marker segments. A marker is FF (any number of extra FF
fill bytes may precede the code) and a code byte; TEM (01) and RSTn (D0..D7) stand alone, every other marker
is followed by a 2-byte big-endian length that counts itself. The frame header is the first SOFn marker
(C0..CF except DHT C4, JPG C8 and DAC CC): precision, height, width, component count and 3 bytes per
component. A scan (SOS) or the end of the image (EOI) before any SOFn means there is no frame to decode.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass

PNG = "png"
JPEG = "jpeg"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8"

_PNG_IHDR_END = 33  # signature 8 + length 4 + type 4 + data 13 + CRC 4
_PNG_MAX_DIMENSION = 2**31 - 1
# Colour type -> (samples per pixel as stored, allowed bit depths); a palette pixel is one index sample.
_PNG_COLOUR_TYPES = {
    0: (1, (1, 2, 4, 8, 16)),  # greyscale
    2: (3, (8, 16)),  # truecolour
    3: (1, (1, 2, 4, 8)),  # indexed
    4: (2, (8, 16)),  # greyscale with alpha
    6: (4, (8, 16)),  # truecolour with alpha
}

_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset([0x01, *range(0xD0, 0xD8)])
_JPEG_SOI, _JPEG_EOI, _JPEG_SOS = 0xD8, 0xD9, 0xDA
# Real files put a handful of segments (APPn, DQT, DHT, COM) before the frame header; the cap bounds the work a
# hostile stream of tiny segments can cause on every arriving frame.
MAX_JPEG_SEGMENTS = 1024
_JPEG_FILL = re.compile(rb"\xff*")


class ImageHeaderError(ValueError):
    """A PNG or JPEG header that is truncated or malformed, or data that is neither PNG nor JPEG."""


@dataclass(frozen=True)
class ImageHeader:
    """What a compressed image declares about itself: ``format`` is PNG or JPEG; ``channels`` counts samples
    per pixel as stored (a PNG palette image has one, its index); ``bit_depth`` is bits per sample."""

    format: str
    width: int
    height: int
    channels: int
    bit_depth: int

    @property
    def pixels(self) -> int:
        """width x height."""
        return self.width * self.height


def _byte_view(data) -> memoryview:
    view = memoryview(data)
    return view if view.ndim == 1 and view.format == "B" else view.cast("B")


def read_image_header(data) -> ImageHeader:
    """The header of a PNG or JPEG byte string (any bytes-like object), told apart by its signature.

    Raises ImageHeaderError if the data is neither, or its header is truncated or malformed.
    """
    view = _byte_view(data)
    if bytes(view[: len(PNG_SIGNATURE)]) == PNG_SIGNATURE:
        return read_png_header(view)
    if bytes(view[: len(JPEG_SOI)]) == JPEG_SOI:
        return read_jpeg_header(view)
    head = bytes(view[: len(PNG_SIGNATURE)])
    if PNG_SIGNATURE.startswith(head) or JPEG_SOI.startswith(head):
        raise ImageHeaderError(f"truncated: {len(view)} bytes end inside a PNG or JPEG signature")
    raise ImageHeaderError(f"neither a PNG nor a JPEG signature (starts with {head.hex()!r})")


def read_png_header(data) -> ImageHeader:
    """Width, height, channels and bit depth from a PNG's signature and IHDR chunk (CRC checked).

    Raises ImageHeaderError for a wrong signature, data shorter than the IHDR chunk, a first chunk that is not
    a 13-byte IHDR, a CRC mismatch, or field values the PNG specification does not allow.
    """
    view = _byte_view(data)
    if bytes(view[: len(PNG_SIGNATURE)]) != PNG_SIGNATURE:
        raise ImageHeaderError("not a PNG: the 8-byte signature does not match")
    if len(view) < _PNG_IHDR_END:
        raise ImageHeaderError(f"truncated PNG: {len(view)} bytes, the IHDR chunk ends at byte {_PNG_IHDR_END}")
    length, chunk_type = struct.unpack_from(">I4s", view, 8)
    if chunk_type != b"IHDR" or length != 13:
        raise ImageHeaderError(f"malformed PNG: first chunk is {chunk_type!r} of {length} bytes, not a 13-byte IHDR")
    (crc,) = struct.unpack_from(">I", view, 29)
    if zlib.crc32(view[12:29]) != crc:
        raise ImageHeaderError("malformed PNG: IHDR CRC mismatch")
    width, height, bit_depth, colour_type, compression, filter_method, interlace = struct.unpack_from(
        ">IIBBBBB", view, 16
    )
    if not (1 <= width <= _PNG_MAX_DIMENSION and 1 <= height <= _PNG_MAX_DIMENSION):
        raise ImageHeaderError(f"malformed PNG: size {width}x{height} is outside 1..{_PNG_MAX_DIMENSION}")
    if colour_type not in _PNG_COLOUR_TYPES:
        raise ImageHeaderError(f"malformed PNG: colour type {colour_type} is not one of 0, 2, 3, 4, 6")
    channels, depths = _PNG_COLOUR_TYPES[colour_type]
    if bit_depth not in depths:
        raise ImageHeaderError(f"malformed PNG: bit depth {bit_depth} is not allowed for colour type {colour_type}")
    if compression != 0 or filter_method != 0 or interlace not in (0, 1):
        raise ImageHeaderError(
            f"malformed PNG: compression {compression}, filter {filter_method}, interlace {interlace} "
            "(allowed: 0, 0, 0 or 1)"
        )
    return ImageHeader(PNG, width, height, channels, bit_depth)


def read_jpeg_header(data) -> ImageHeader:
    """Width, height, component count and precision from a JPEG's first frame header (SOFn), found by walking
    the marker segments after SOI; no entropy-coded data is read.

    Raises ImageHeaderError for a missing SOI, data that ends before the frame header, bytes where a marker
    must be, reserved or misplaced markers (a second SOI, SOS or EOI before any SOFn), more than
    MAX_JPEG_SEGMENTS segments before the frame header, or a frame header with impossible values (including
    height 0, which defers the height to a DNL marker that OpenCV's decoder does not support).
    """
    view = _byte_view(data)
    size = len(view)
    if bytes(view[: len(JPEG_SOI)]) != JPEG_SOI:
        raise ImageHeaderError("not a JPEG: no start-of-image marker (FFD8)")
    pos = len(JPEG_SOI)
    for _ in range(MAX_JPEG_SEGMENTS):
        if pos >= size:
            raise ImageHeaderError(f"truncated JPEG: {size} bytes end before a frame header (SOFn)")
        if view[pos] != 0xFF:
            raise ImageHeaderError(f"malformed JPEG: byte {pos} is 0x{view[pos]:02X} where a marker must start")
        pos = _JPEG_FILL.match(view, pos).end()
        if pos >= size:
            raise ImageHeaderError(f"truncated JPEG: {size} bytes end inside a marker")
        code = view[pos]
        pos += 1
        if code in _JPEG_STANDALONE:
            continue
        if code in (_JPEG_SOI, _JPEG_EOI, _JPEG_SOS) or code < 0xC0:  # below C0 only TEM (01) is a valid code
            raise ImageHeaderError(f"malformed JPEG: marker FF{code:02X} at byte {pos - 2} before any frame header")
        if pos + 2 > size:
            raise ImageHeaderError(f"truncated JPEG: marker FF{code:02X} at byte {pos - 2} has no length")
        (length,) = struct.unpack_from(">H", view, pos)
        if length < 2:
            raise ImageHeaderError(f"malformed JPEG: marker FF{code:02X} at byte {pos - 2} has length {length}")
        if pos + length > size:
            raise ImageHeaderError(
                f"truncated JPEG: segment FF{code:02X} at byte {pos - 2} needs {length} bytes, {size - pos} remain"
            )
        if code in _JPEG_SOF:
            return _jpeg_frame_header(view, pos, length)
        pos += length
    raise ImageHeaderError(f"malformed JPEG: no frame header in the first {MAX_JPEG_SEGMENTS} marker segments")


def _jpeg_frame_header(view: memoryview, pos: int, length: int) -> ImageHeader:
    """Parse the SOFn segment whose length field starts at ``pos`` (the segment is known to fit in ``view``)."""
    if length < 8:
        raise ImageHeaderError(f"malformed JPEG: frame header of {length} bytes, at least 8 needed")
    precision, height, width, components = struct.unpack_from(">BHHB", view, pos + 2)
    if components == 0 or length != 8 + 3 * components:
        raise ImageHeaderError(f"malformed JPEG: frame header of {length} bytes for {components} components")
    if not 2 <= precision <= 16:
        raise ImageHeaderError(f"malformed JPEG: sample precision {precision} is outside 2..16")
    if width == 0 or height == 0:
        raise ImageHeaderError(f"malformed JPEG: frame size {width}x{height} (a DNL-defined height is not supported)")
    return ImageHeader(JPEG, width, height, components, precision)
