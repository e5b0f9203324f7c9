"""Hostile camera inputs with their expected reason: decompression bombs by header, a real large PNG, thin raw
frames of every shape, stamps at and past the limits. Built here from the formats' specifications, not from
the code under test, so the expected reasons are known from how each input was made.
"""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np

from vljepa_ros.perception.image_conversion import TOO_MANY_BYTES, TOO_MANY_PIXELS, TRUNCATED

from support.reliability_fixtures import BYTES_PER_PIXEL, CompressedFields, ImageFields

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
NS_PER_S = 1_000_000_000
# nanosec values a sender that did not normalise its stamp might write (the field is a uint32).
BAD_NANOSEC = (NS_PER_S, NS_PER_S + 1, 1_500_000_000, 2**32 - 1)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose IHDR (valid CRC) declares ``width`` x ``height`` 8-bit greyscale; one short IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return PNG_SIGNATURE + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _small_jpeg() -> bytearray:
    ok, buf = cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))
    assert ok
    return bytearray(buf.tobytes())


def jpeg_bomb(width: int = 40_000, height: int = 40_000) -> bytes:
    """A real small baseline JPEG whose SOF0 frame header is patched to declare ``width`` x ``height``."""
    data = _small_jpeg()
    sof = data.index(b"\xff\xc0")
    # SOF0: marker (2), length (2), precision (1), height (2), width (2), ...
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def corrupt_body_jpeg() -> bytes:
    """A JPEG with sound headers whose entropy-coded data is zeroed: passes the header check, would not decode
    to the picture (only ever sent between samples, so it must never be decoded)."""
    data = _small_jpeg()
    sos = data.index(b"\xff\xda")
    body = sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")
    data[body:-2] = bytes(len(data) - 2 - body)
    return bytes(data)


def real_png(height: int, width: int, value: int = 90) -> bytes:
    """A real single-colour greyscale PNG (cv2.imencode): large in pixels, small in bytes."""
    ok, buf = cv2.imencode(".png", np.full((height, width), value, np.uint8))
    assert ok
    return buf.tobytes()


def compressed_bombs(large_png: bytes, max_pixels: int) -> list[CompressedFields]:
    """Every compressed input that must be refused by header as too_many_pixels under ``max_pixels``."""
    side = int(max_pixels**0.5) + 1
    return [
        CompressedFields("png", png_bomb(), TOO_MANY_PIXELS),
        CompressedFields("jpeg", jpeg_bomb(), TOO_MANY_PIXELS),
        CompressedFields("png", large_png, TOO_MANY_PIXELS),
        CompressedFields("png", real_png(side, side), TOO_MANY_PIXELS),
    ]


def _filled(encoding: str, height: int, width: int, step: int | None = None) -> ImageFields:
    row = width * BYTES_PER_PIXEL[encoding]
    step = row if step is None else step
    size = step * (height - 1) + row
    data = (np.arange(size, dtype=np.uint32) * 37 % 251).astype(np.uint8).tobytes()
    return ImageFields(encoding, height, width, step, False, data, None)


def thin_shapes(max_pixels: int) -> list[int]:
    """Lengths of the thin side's opposite: 1 to ``max_pixels`` by decades, plus the limit itself."""
    lengths = [1, 2, 3, 7]
    n = 10
    while n < max_pixels:
        lengths.append(n)
        n *= 10
    return [*lengths, max_pixels]


def thin_frames(max_pixels: int, max_bytes: int) -> list[ImageFields]:
    """mono8 and rgb8 frames 1 x N and N x 1 up to ``max_pixels`` (accepted), one pixel over (too_many_pixels),
    and a padded frame one byte over ``max_bytes`` (too_many_bytes); valid otherwise."""
    frames = []
    for encoding in ("mono8", "rgb8"):
        for n in thin_shapes(max_pixels):
            frames += [_filled(encoding, 1, n), _filled(encoding, n, 1)]
        over = [_filled(encoding, 1, max_pixels + 1), _filled(encoding, max_pixels + 1, 1)]
        frames += [ImageFields(*f.args(), TOO_MANY_PIXELS) for f in over]
    # Two 1-pixel rows, the first padded: a small frame whose data is one byte over the limit.
    frames.append(ImageFields(*_filled("mono8", 2, 1, step=max_bytes).args(), TOO_MANY_BYTES))
    return frames


def huge_raw_headers() -> list[ImageFields]:
    """Raw headers declaring billions of pixels with a few bytes of data: refused as truncated (the length check
    comes before the limits, see image_conversion.check_image)."""
    return [
        ImageFields("rgb8", 100_000, 100_000, 300_000, False, bytes(64), TRUNCATED),
        ImageFields("mono8", 2**31 - 1, 2**31 - 1, 2**31 - 1, False, bytes(16), TRUNCATED),
        ImageFields("mono16", 1, 2**31 - 1, 2**32 - 2, False, bytes(2), TRUNCATED),
    ]
