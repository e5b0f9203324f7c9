"""PNG/JPEG headers read without decoding: real encoder output, truncations, hand-made hostile headers, garbage."""

import array
import struct
import zlib

import cv2
import numpy as np
import pytest

from vljepa_ros.perception import image_header as ih
from vljepa_ros.perception.image_header import (
    ImageHeader,
    ImageHeaderError,
    read_image_header,
    read_jpeg_header,
    read_png_header,
)

RNG = np.random.default_rng(18)
SIZES = [(1, 1), (1, 9), (7, 1), (2, 3), (17, 31), (64, 64), (240, 320), (481, 643), (1080, 1920)]


def _encode(ext: str, image: np.ndarray, params=()) -> bytes:
    ok, buf = cv2.imencode(ext, image, list(params))
    assert ok
    return buf.tobytes()


def _picture(height: int, width: int, channels: int = 3, dtype=np.uint8) -> np.ndarray:
    """A diagonal ramp plus a little noise: real content that encodes quickly even at 1920x1080."""
    ramp = np.add.outer(np.arange(height), np.arange(width)) % 252
    shape = (height, width) if channels == 1 else (height, width, channels)
    values = (ramp if channels == 1 else ramp[:, :, None]) + RNG.integers(0, 4, shape)
    return (values * (np.iinfo(dtype).max // 255)).astype(dtype)


def _chunk(kind: bytes, data: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(kind + data) if crc is None else crc
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _png(width: int, height: int, depth: int = 8, colour: int = 2, crc: int | None = None, tail: bool = True):
    """A PNG signature and IHDR declaring any size; ``tail`` adds a one-byte IDAT and IEND."""
    ihdr = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0), crc)
    rest = _chunk(b"IDAT", zlib.compress(b"\0")) + _chunk(b"IEND", b"") if tail else b""
    return ih.PNG_SIGNATURE + ihdr + rest


def _segment(code: int, payload: bytes) -> bytes:
    return bytes([0xFF, code]) + struct.pack(">H", len(payload) + 2) + payload


def _sof(width: int, height: int, components: int = 3, precision: int = 8, code: int = 0xC0) -> bytes:
    specs = b"".join(bytes([i + 1, 0x11, 0]) for i in range(components))
    return _segment(code, struct.pack(">BHHB", precision, height, width, components) + specs)


def _jpeg(*segments: bytes) -> bytes:
    """SOI, the segments, then a minimal SOS and EOI (enough for a header reader, not for a decoder)."""
    return ih.JPEG_SOI + b"".join(segments) + _segment(0xDA, b"\x01\x01\x00\x00\x3f\x00") + b"\x00\xff\xd9"


# ----- real encoder output ----------------------------------------------------------------------------------


@pytest.mark.parametrize("height,width", SIZES)
@pytest.mark.parametrize(
    "channels,dtype,bit_depth",
    [(1, np.uint8, 8), (3, np.uint8, 8), (4, np.uint8, 8), (1, np.uint16, 16), (3, np.uint16, 16)],
)
def test_png_header_matches_what_opencv_encoded_and_decodes(height, width, channels, dtype, bit_depth):
    data = _encode(".png", _picture(height, width, channels, dtype))
    header = read_image_header(data)
    assert header == ImageHeader(ih.PNG, width, height, channels, bit_depth)
    assert read_png_header(data) == header
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED).shape[:2] == (height, width)


def test_bilevel_png_declares_one_bit_greyscale():
    data = _encode(".png", _picture(5, 12, 1), [cv2.IMWRITE_PNG_BILEVEL, 1])
    assert read_image_header(data) == ImageHeader(ih.PNG, 12, 5, 1, 1)


@pytest.mark.parametrize("height,width", SIZES)
@pytest.mark.parametrize(
    "channels,params",
    [
        (1, ()),
        (3, ()),
        (3, (cv2.IMWRITE_JPEG_PROGRESSIVE, 1)),  # SOF2 instead of SOF0
        (3, (cv2.IMWRITE_JPEG_OPTIMIZE, 1)),
        (3, (cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444, cv2.IMWRITE_JPEG_QUALITY, 40)),
    ],
)
def test_jpeg_header_matches_what_opencv_encoded_and_decodes(height, width, channels, params):
    data = _encode(".jpg", _picture(height, width, channels), params)
    header = read_image_header(data)
    assert header == ImageHeader(ih.JPEG, width, height, channels, 8)
    assert read_jpeg_header(data) == header
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED).shape[:2] == (height, width)


@pytest.mark.parametrize(
    "container", [bytes, bytearray, memoryview, lambda b: array.array("B", b), lambda b: np.frombuffer(b, np.uint8)]
)
def test_every_bytes_like_container_reads_the_same(container):
    png, jpeg = _encode(".png", _picture(3, 5)), _encode(".jpg", _picture(6, 4))
    assert read_image_header(container(png)) == ImageHeader(ih.PNG, 5, 3, 3, 8)
    assert read_image_header(container(jpeg)) == ImageHeader(ih.JPEG, 4, 6, 3, 8)


# ----- truncation -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_exactly_the_prefixes_that_hold_the_whole_header_parse(ext):
    data = _encode(ext, _picture(37, 53))
    full = read_image_header(data)
    outcomes = []
    for end in range(len(data) + 1):
        try:
            assert read_image_header(data[:end]) == full
            outcomes.append(True)
        except ImageHeaderError:
            outcomes.append(False)
    first = outcomes.index(True)
    assert not any(outcomes[:first]) and all(outcomes[first:])
    if ext == ".png":
        assert first == 33  # signature + IHDR chunk
    else:  # the end of the SOF0 segment: marker (2) + length (17 for three components)
        assert first == data.index(b"\xff\xc0") + 2 + 17


@pytest.mark.parametrize("data", [b"", b"\x89", b"\x89PNG\r\n", b"\xff"])
def test_data_ending_inside_a_signature_says_truncated(data):
    with pytest.raises(ImageHeaderError, match="truncated"):
        read_image_header(data)


# ----- hand-made hostile headers ----------------------------------------------------------------------------


def test_huge_png_with_a_valid_crc_declares_its_size():
    data = _png(100_000, 100_000)
    assert len(data) < 80
    assert read_image_header(data) == ImageHeader(ih.PNG, 100_000, 100_000, 3, 8)
    assert read_image_header(data).pixels == 10**10
    assert read_image_header(_png(2**31 - 1, 1, tail=False)).width == 2**31 - 1


def test_huge_jpeg_declares_its_size():
    data = _jpeg(_segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"), _sof(40_000, 40_000))
    assert read_image_header(data) == ImageHeader(ih.JPEG, 40_000, 40_000, 3, 8)
    assert read_image_header(_jpeg(_sof(65_535, 65_535, components=1, precision=12, code=0xC2))) == ImageHeader(
        ih.JPEG, 65_535, 65_535, 1, 12
    )


@pytest.mark.parametrize(
    "data,match",
    [
        (_png(10, 10, crc=0), "CRC"),
        (_png(0, 10), "size"),
        (_png(10, 2**31), "size"),
        (_png(10, 10, colour=5), "colour type"),
        (_png(10, 10, depth=16, colour=3), "bit depth"),
        (_png(10, 10, depth=4, colour=2), "bit depth"),
        (ih.PNG_SIGNATURE + _chunk(b"IDAT", bytes(13)), "IHDR"),
        (ih.PNG_SIGNATURE + _chunk(b"IHDR", bytes(14)), "IHDR"),
        (ih.PNG_SIGNATURE + _chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 1, 0, 0)), "compression"),
        (ih.PNG_SIGNATURE + _chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 2)), "interlace"),
    ],
)
def test_malformed_png_headers_are_refused(data, match):
    with pytest.raises(ImageHeaderError, match=match):
        read_image_header(data)


def test_every_png_colour_type_and_bit_depth_the_spec_allows_is_read():
    for colour, (channels, depths) in {0: (1, (1, 2, 4, 8, 16)), 2: (3, (8, 16)), 3: (1, (1, 2, 4, 8))}.items():
        for depth in depths:
            assert read_png_header(_png(3, 2, depth, colour)) == ImageHeader(ih.PNG, 3, 2, channels, depth)
    assert read_png_header(_png(3, 2, 16, 4)).channels == 2
    assert read_png_header(_png(3, 2, 8, 6)).channels == 4


def test_jpeg_walk_skips_segments_fill_bytes_and_standalone_markers():
    fake_thumbnail = b"Exif\x00\x00" + ih.JPEG_SOI + _sof(60_000, 60_000)  # an SOF inside APP1 is payload
    data = _jpeg(
        _segment(0xE1, fake_thumbnail),
        b"\xff" * 10_000 + _segment(0xFE, b"comment"),  # fill bytes before a marker
        b"\xff\x01",  # TEM
        b"\xff\xd3",  # RST3
        _segment(0xDB, bytes(65)),  # DQT
        _segment(0xC4, bytes(20)),  # DHT: C4 is not a frame header
        _segment(0xCC, bytes(4)),  # DAC: nor is CC
        _segment(0xDC, b"\x00\x10"),  # DNL
        _sof(640, 480),
    )
    assert read_image_header(data) == ImageHeader(ih.JPEG, 640, 480, 3, 8)


@pytest.mark.parametrize("code", sorted(set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}))
def test_every_sof_marker_is_a_frame_header(code):
    assert read_jpeg_header(_jpeg(_sof(33, 22, code=code))) == ImageHeader(ih.JPEG, 33, 22, 3, 8)


def test_the_first_frame_header_wins():
    assert read_jpeg_header(_jpeg(_sof(8, 8), _sof(50_000, 50_000))).pixels == 64


@pytest.mark.parametrize(
    "data,match",
    [
        (ih.JPEG_SOI + _segment(0xDA, b"\x01\x01\x00\x00\x3f\x00"), "FFDA"),  # scan before any frame header
        (ih.JPEG_SOI + b"\xff\xd9", "FFD9"),  # end of image before any frame header
        (ih.JPEG_SOI + ih.JPEG_SOI + _sof(8, 8), "FFD8"),
        (ih.JPEG_SOI + b"\xff\x00" + _sof(8, 8), "FF00"),
        (ih.JPEG_SOI + b"\xff\x02\x00\x02" + _sof(8, 8), "FF02"),
        (ih.JPEG_SOI + b"\x00" + _sof(8, 8), "byte 2 is 0x00"),
        (ih.JPEG_SOI + _segment(0xE0, b"x") + b"junk" + _sof(8, 8), "where a marker"),
        (ih.JPEG_SOI + b"\xff\xe0\x00\x01" + _sof(8, 8), "length 1"),
        (_jpeg(_sof(8, 0)), "DNL"),
        (_jpeg(_sof(0, 8)), "frame size"),
        (_jpeg(_sof(8, 8, components=0)), "0 components"),
        (_jpeg(_sof(8, 8, precision=0)), "precision"),
        (_jpeg(_sof(8, 8, precision=17)), "precision"),
        (_jpeg(_segment(0xC0, struct.pack(">BHHB", 8, 8, 8, 3) + bytes(6))), "frame header of 14 bytes for 3"),
        (ih.JPEG_SOI + b"\xff\xc0\x00\x05\x08\x00\x08", "at least 8"),
        (ih.JPEG_SOI + b"\xff\xe0\xff\xff" + bytes(100), "truncated"),
        (ih.JPEG_SOI + b"\xff\xe0\x00", "no length"),
        (ih.JPEG_SOI + b"\xff\xff\xff", "inside a marker"),
        (b"\xff\xd8\xff\xe0 not really a jpeg", "truncated"),
    ],
)
def test_malformed_jpeg_headers_are_refused(data, match):
    with pytest.raises(ImageHeaderError, match=match):
        read_image_header(data)


def test_a_stream_of_tiny_segments_is_cut_off_at_the_cap():
    comments = _segment(0xFE, b"") * (ih.MAX_JPEG_SEGMENTS - 1)
    assert read_jpeg_header(_jpeg(comments, _sof(8, 8))).pixels == 64
    with pytest.raises(ImageHeaderError, match=f"first {ih.MAX_JPEG_SEGMENTS} marker segments"):
        read_jpeg_header(_jpeg(comments + _segment(0xFE, b""), _sof(8, 8)))


@pytest.mark.parametrize("ext", [".bmp", ".tiff", ".webp", ".ppm"])
def test_other_codecs_are_neither_png_nor_jpeg(ext):
    with pytest.raises(ImageHeaderError, match="neither a PNG nor a JPEG"):
        read_image_header(_encode(ext, _picture(4, 4)))


# ----- garbage ----------------------------------------------------------------------------------------------


def _check_outcome(data: bytes) -> ImageHeader | None:
    """The header, or None for ImageHeaderError; any other exception fails the test."""
    try:
        header = read_image_header(data)
    except ImageHeaderError:
        return None
    assert header.format in (ih.PNG, ih.JPEG) and header.width >= 1 and header.height >= 1
    assert header.channels >= 1 and 1 <= header.bit_depth <= 16
    return header


def test_random_garbage_raises_only_the_module_error():
    rng = np.random.default_rng(2024)
    prefixes = [b"", ih.PNG_SIGNATURE, ih.JPEG_SOI, ih.JPEG_SOI + b"\xff", ih.JPEG_SOI + b"\xff\xc0"]
    parsed = 0
    for _ in range(4000):
        prefix = prefixes[int(rng.integers(0, len(prefixes)))]
        body = rng.integers(0, 256, int(rng.integers(0, 120)), dtype=np.uint8).tobytes()
        parsed += _check_outcome(prefix + body) is not None
    assert parsed < 4000


def test_mutated_real_headers_raise_only_the_module_error():
    rng = np.random.default_rng(7)
    originals = [_encode(".png", _picture(20, 30)), _encode(".jpg", _picture(20, 30))]
    outcomes = {True: 0, False: 0}
    for _ in range(3000):
        data = bytearray(originals[int(rng.integers(0, 2))][: int(rng.integers(0, 700))])
        for _ in range(int(rng.integers(1, 6))):
            if data:
                data[int(rng.integers(0, min(len(data), 700)))] = int(rng.integers(0, 256))
        outcomes[_check_outcome(bytes(data)) is not None] += 1
    assert outcomes[True] > 0 and outcomes[False] > 0  # both outcomes were exercised
