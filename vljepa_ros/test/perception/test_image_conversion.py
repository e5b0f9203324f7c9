"""Round trips numpy -> message fields -> RGB for every encoding, with padding, byte order and each error."""

import array
import dataclasses
import struct
import zlib

import cv2
import numpy as np
import pytest

from vljepa_ros.perception import image_conversion as ic
from vljepa_ros.perception.config import DEFAULT_FRAME_LIMITS, ConfigError, FrameLimits
from vljepa_ros.perception.image_conversion import ImageConversionError, compressed_to_rgb, image_to_rgb

RNG = np.random.default_rng(7)
H, W = 6, 10


def _pad_rows(rows: np.ndarray, pad: int) -> tuple[bytes, int]:
    """Serialise an (H, row_bytes) uint8 array with `pad` junk bytes after every row; returns (data, step)."""
    rows = rows.reshape(rows.shape[0], -1)
    junk = np.full((rows.shape[0], pad), 0xEE, np.uint8)
    return np.concatenate([rows, junk], axis=1).tobytes(), rows.shape[1] + pad


def _rgb():
    return RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)


@pytest.mark.parametrize("pad", [0, 3])
@pytest.mark.parametrize(
    "encoding,to_raw",
    [
        ("rgb8", lambda rgb: rgb),
        ("bgr8", lambda rgb: rgb[:, :, ::-1]),
        ("8UC3", lambda rgb: rgb[:, :, ::-1]),
        ("rgba8", lambda rgb: np.dstack([rgb, np.full(rgb.shape[:2], 9, np.uint8)])),
        ("bgra8", lambda rgb: np.dstack([rgb[:, :, ::-1], np.full(rgb.shape[:2], 9, np.uint8)])),
    ],
)
def test_colour_encodings_round_trip_exactly(encoding, to_raw, pad):
    rgb = _rgb()
    data, step = _pad_rows(np.ascontiguousarray(to_raw(rgb)), pad)
    out = image_to_rgb(encoding, H, W, step, False, data)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, rgb)


def test_rgb8_is_a_zero_copy_view_of_the_message_buffer():
    rgb = _rgb()
    buf = bytearray(rgb.tobytes())
    out = image_to_rgb("rgb8", H, W, W * 3, False, buf)
    buf[0] = (int(rgb[0, 0, 0]) + 1) % 256  # a write to the message buffer shows through the result
    assert out[0, 0, 0] == buf[0]


@pytest.mark.parametrize("container", [bytes, bytearray, memoryview, lambda b: array.array("B", b), list])
def test_accepts_every_buffer_type_rclpy_may_hand_over(container):
    rgb = _rgb()
    out = image_to_rgb("rgb8", H, W, W * 3, False, container(rgb.tobytes()))
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize("encoding", ["mono8", "8UC1"])
def test_mono8_replicates_to_three_channels(encoding):
    gray = RNG.integers(0, 256, (H, W), dtype=np.uint8)
    data, step = _pad_rows(gray, 5)
    out = image_to_rgb(encoding, H, W, step, False, data)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], gray)


@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize("pad", [0, 3])  # odd padding: 16-bit rows start unaligned
def test_mono16_keeps_the_top_byte_in_either_byte_order(bigendian, pad):
    gray = RNG.integers(0, 65536, (H, W), dtype=np.uint16)
    raw = gray.astype(">u2" if bigendian else "<u2").view(np.uint8)
    data, step = _pad_rows(raw, pad)
    out = image_to_rgb("mono16", H, W, step, bigendian, data)
    np.testing.assert_array_equal(out[:, :, 1], (gray >> 8).astype(np.uint8))


@pytest.mark.parametrize("bigendian", [False, True])
def test_16uc1_depth_is_minmax_scaled_over_valid_pixels(bigendian):
    depth = RNG.integers(500, 4000, (H, W), dtype=np.uint16)
    depth[0, 0] = 0  # invalid (no return)
    depth[1, 1], depth[2, 2] = 500, 3999
    raw = depth.astype(">u2" if bigendian else "<u2").view(np.uint8)
    data, step = _pad_rows(raw, 2)
    out = image_to_rgb("16UC1", H, W, step, bigendian, data)[:, :, 0]
    assert out[0, 0] == 0 and out[1, 1] == 0 and out[2, 2] == 255
    expected = np.rint((depth[3].astype(np.float32) - 500) * 255.0 / 3499)
    np.testing.assert_array_equal(out[3], expected.astype(np.uint8))


def test_32fc1_depth_ignores_non_finite_pixels():
    depth = RNG.uniform(0.5, 5.0, (H, W)).astype(np.float32)
    depth[0, :3] = [np.nan, np.inf, -np.inf]
    depth[1, 0], depth[1, 1] = 0.5, 5.0
    out = image_to_rgb("32FC1", H, W, W * 4, False, depth.tobytes())[:, :, 2]
    assert list(out[0, :3]) == [0, 0, 0]
    assert out[1, 0] == 0 and out[1, 1] == 255
    big = image_to_rgb("32FC1", H, W, W * 4, True, depth.astype(">f4").tobytes())
    np.testing.assert_array_equal(big[:, :, 0], out)


def test_flat_depth_maps_to_zero_instead_of_dividing_by_zero():
    out = image_to_rgb("32FC1", H, W, W * 4, False, np.full((H, W), 2.0, np.float32).tobytes())
    assert not out.any()


@pytest.mark.parametrize(
    "encoding,code",
    [
        ("yuv422", cv2.COLOR_RGB2YUV_UYVY),
        ("uyvy", cv2.COLOR_RGB2YUV_UYVY),
        ("yuv422_yuy2", cv2.COLOR_RGB2YUV_YUYV),
        ("yuyv", cv2.COLOR_RGB2YUV_YUYV),
    ],
)
def test_yuv422_round_trip_is_close(encoding, code):
    # Chroma is shared by pixel pairs, so the source has constant colour per pair for a near-exact round trip.
    rgb = np.repeat(RNG.integers(30, 220, (H, W // 2, 3), dtype=np.uint8), 2, axis=1)
    packed = cv2.cvtColor(rgb, code)
    assert packed.shape == (H, W, 2)
    data, step = _pad_rows(packed, 4)
    out = image_to_rgb(encoding, H, W, step, False, data)
    assert np.abs(out.astype(int) - rgb.astype(int)).max() <= 4


def test_yuv422_byte_orders_differ():
    rgb = np.zeros((2, 4, 3), np.uint8)
    rgb[:] = (200, 40, 40)
    packed = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_UYVY).tobytes()
    right = image_to_rgb("yuv422", 2, 4, 8, False, packed)
    wrong = image_to_rgb("yuv422_yuy2", 2, 4, 8, False, packed)
    assert right[0, 0, 0] > 150 and np.abs(wrong.astype(int) - right.astype(int)).max() > 50


def _mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """Sample an RGB image through a Bayer colour filter named by its top-left 2x2 cells, e.g. 'rggb'."""
    index = {"r": 0, "g": 1, "b": 2}
    out = np.zeros(rgb.shape[:2], rgb.dtype)
    for k, (dy, dx) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        out[dy::2, dx::2] = rgb[dy::2, dx::2, index[pattern[k]]]
    return out


@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
def test_bayer8_demosaics_a_flat_colour_to_that_colour(pattern):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[:] = (200, 100, 30)
    data, step = _pad_rows(_mosaic(rgb, pattern), 2)
    out = image_to_rgb(f"bayer_{pattern}8", 8, 8, step, False, data)
    np.testing.assert_array_equal(out[2:6, 2:6], rgb[2:6, 2:6])


@pytest.mark.parametrize("bigendian", [False, True])
def test_bayer16_demosaics_and_keeps_the_top_byte(bigendian):
    rgb = np.zeros((8, 8, 3), np.uint16)
    rgb[:] = (200 << 8, 100 << 8, 30 << 8)
    mosaic = _mosaic(rgb, "grbg").astype(">u2" if bigendian else "<u2")
    out = image_to_rgb("bayer_grbg16", 8, 8, 16, bigendian, mosaic.tobytes())
    np.testing.assert_array_equal(out[2:6, 2:6], np.broadcast_to(np.array([200, 100, 30], np.uint8), (4, 4, 3)))


@pytest.mark.parametrize(
    "args,reason",
    [
        (("rgb16", H, W, W * 6, False, bytes(H * W * 6)), ic.UNKNOWN_ENCODING),
        (("rgb8", 0, W, W * 3, False, b""), ic.ZERO_SIZE),
        (("rgb8", H, 0, 0, False, b""), ic.ZERO_SIZE),
        (("", 0, 0, 0, False, b""), ic.ZERO_SIZE),
        (("rgb8", H, W, W * 3 - 1, False, bytes(H * W * 3)), ic.BAD_STEP),
        (("mono16", H, W, W, False, bytes(H * W * 2)), ic.BAD_STEP),
        (("rgb8", H, W, W * 3, False, bytes(H * W * 3 - 1)), ic.TRUNCATED),
        (("rgb8", H, W, W * 3 + 8, False, bytes(H * W * 3)), ic.TRUNCATED),
        (("yuv422", H, 7, 14, False, bytes(H * 14)), ic.BAD_SHAPE),
    ],
)
def test_malformed_images_raise_one_error_type_with_a_reason(args, reason):
    with pytest.raises(ImageConversionError) as info:
        image_to_rgb(*args)
    assert info.value.reason == reason and reason in ic.REASONS
    with pytest.raises(ImageConversionError) as info:
        ic.check_image(*args[:5], len(args[5]))  # the O(1) check finds the same problem without the pixels
    assert info.value.reason == reason


def test_check_image_accepts_what_converts():
    ic.check_image("yuv422", H, W, W * 2 + 3, False, (W * 2 + 3) * H)
    ic.check_image("32FC1", H, W, W * 4, True, W * 4 * H)


def test_last_row_without_trailing_padding_is_accepted():
    rgb = _rgb()
    data, step = _pad_rows(rgb, 6)
    out = image_to_rgb("rgb8", H, W, step, False, data[:-6])
    np.testing.assert_array_equal(out, rgb)


@pytest.mark.parametrize("ext,fmt", [(".png", "png"), (".png", "rgb8; png compressed bgr8")])
def test_compressed_png_is_lossless(ext, fmt):
    rgb = _rgb()
    ok, enc = cv2.imencode(ext, rgb[:, :, ::-1])
    assert ok
    np.testing.assert_array_equal(compressed_to_rgb(fmt, array.array("B", enc.tobytes())), rgb)


def test_compressed_jpeg_decodes_to_rgb_order():
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[:] = (220, 30, 30)  # red: a channel swap would show up as blue
    ok, enc = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    out = compressed_to_rgb("jpeg", enc.tobytes())
    assert out.shape == (32, 32, 3) and np.abs(out.astype(int) - rgb.astype(int)).max() <= 6


def test_compressed_grayscale_and_16bit_png():
    gray16 = RNG.integers(0, 65536, (H, W), dtype=np.uint16)
    ok, enc = cv2.imencode(".png", gray16)
    out = compressed_to_rgb("png", enc.tobytes())
    np.testing.assert_array_equal(out[:, :, 0], (gray16 >> 8).astype(np.uint8))


@pytest.mark.parametrize(
    "fmt,data,reason",
    [
        ("jpeg", b"", ic.ZERO_SIZE),
        ("jpeg", b"\xff\xd8\xff\xe0 not really a jpeg", ic.CORRUPT_COMPRESSED),
        ("16UC1; compressedDepth png", b"\x00" * 20, ic.UNKNOWN_ENCODING),
    ],
)
def test_bad_compressed_images_raise_with_a_reason(fmt, data, reason):
    with pytest.raises(ImageConversionError) as info:
        compressed_to_rgb(fmt, data)
    assert info.value.reason == reason
    if reason != ic.CORRUPT_COMPRESSED:  # only decoding finds a corrupt payload
        with pytest.raises(ImageConversionError) as info:
            ic.check_compressed(fmt, len(data))
        assert info.value.reason == reason


def test_truncated_jpeg_is_reported_corrupt():
    ok, enc = cv2.imencode(".jpg", _rgb())
    with pytest.raises(ImageConversionError) as info:
        compressed_to_rgb("jpeg", enc.tobytes()[:40])
    assert info.value.reason == ic.CORRUPT_COMPRESSED


# ----- hostile input refused by header (limits), OpenCV failures as ImageConversionError ---------------------


def _png_declaring(width: int, height: int) -> bytes:
    """A 69-byte PNG whose IHDR (valid CRC) declares ``width`` x ``height``, with a one-byte IDAT."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + ihdr + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def _jpeg_declaring(width: int, height: int) -> bytes:
    """A real JPEG whose SOF0 frame header is rewritten to declare ``width`` x ``height``."""
    ok, enc = cv2.imencode(".jpg", _rgb())
    data = bytearray(enc.tobytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def test_frame_limits_defaults_admit_4k_and_validate_each_parameter():
    limits = FrameLimits()
    assert limits == DEFAULT_FRAME_LIMITS and limits.max_pixels >= 4096 * 2160 and limits.max_bytes == 64 * 2**20
    for name in ("max_pixels", "max_bytes"):
        for bad in (0, -1, 1.5, True, "10", None):
            with pytest.raises(ConfigError) as info:
                FrameLimits(**{name: bad})
            assert info.value.parameter == name
    with pytest.raises(dataclasses.FrozenInstanceError):
        limits.max_pixels = 1


@pytest.mark.parametrize(
    "data", [_png_declaring(100_000, 100_000), _jpeg_declaring(40_000, 40_000), _jpeg_declaring(20_000, 20_000)]
)
def test_compressed_frames_declaring_too_many_pixels_are_refused_by_header(data):
    for refuse in (ic.compressed_to_rgb, ic.check_compressed_header):
        with pytest.raises(ImageConversionError) as info:
            refuse("png", data)
        assert info.value.reason == ic.TOO_MANY_PIXELS and ic.TOO_MANY_PIXELS in ic.REASONS


def test_opencv_errors_become_corrupt_compressed():
    # Limits above OpenCV's own 2^30-pixel cap: the header passes and cv2.imdecode raises cv2.error.
    generous = FrameLimits(max_pixels=10**11)
    assert ic.check_compressed_header("png", _png_declaring(100_000, 100_000), generous).pixels == 10**10
    with pytest.raises(ImageConversionError) as info:
        compressed_to_rgb("png", _png_declaring(100_000, 100_000), generous)
    assert info.value.reason == ic.CORRUPT_COMPRESSED and isinstance(info.value.__cause__, cv2.error)


def test_opencv_errors_in_raw_conversion_become_bad_shape(monkeypatch):
    def refuse(*args):
        raise cv2.error("simulated OpenCV failure")

    monkeypatch.setattr(cv2, "cvtColor", refuse)
    with pytest.raises(ImageConversionError) as info:
        image_to_rgb("yuv422", H, W, W * 2, False, bytes(H * W * 2))
    assert info.value.reason == ic.BAD_SHAPE and "simulated OpenCV failure" in info.value.detail


def test_compressed_pixel_limit_is_inclusive():
    rgb = _rgb()
    ok, enc = cv2.imencode(".png", rgb[:, :, ::-1])
    exact = FrameLimits(max_pixels=H * W)
    np.testing.assert_array_equal(compressed_to_rgb("png", enc.tobytes(), exact), rgb)
    with pytest.raises(ImageConversionError) as info:
        compressed_to_rgb("png", enc.tobytes(), FrameLimits(max_pixels=H * W - 1))
    assert info.value.reason == ic.TOO_MANY_PIXELS


def test_compressed_byte_limit_is_checked_from_the_length_alone():
    ic.check_compressed("jpeg", DEFAULT_FRAME_LIMITS.max_bytes)
    with pytest.raises(ImageConversionError) as info:
        ic.check_compressed("jpeg", DEFAULT_FRAME_LIMITS.max_bytes + 1)
    assert info.value.reason == ic.TOO_MANY_BYTES and ic.TOO_MANY_BYTES in ic.REASONS
    ok, enc = cv2.imencode(".jpg", _rgb())
    with pytest.raises(ImageConversionError) as info:
        compressed_to_rgb("jpeg", enc.tobytes(), FrameLimits(max_bytes=len(enc) - 1))
    assert info.value.reason == ic.TOO_MANY_BYTES


def test_raw_frames_are_checked_against_the_limits_from_their_fields():
    ic.check_image("mono8", 4096, 4096, 4096, False, 4096 * 4096)  # the default admits 4096 x 4096
    ic.check_image("rgba8", 4096, 4096, 4096 * 4, False, 4096 * 4096 * 4)
    cases = [
        (("mono8", 4097, 4096, 4096, False, 4097 * 4096), DEFAULT_FRAME_LIMITS, ic.TOO_MANY_PIXELS),
        (("mono8", 2, 2, 2, False, DEFAULT_FRAME_LIMITS.max_bytes + 1), DEFAULT_FRAME_LIMITS, ic.TOO_MANY_BYTES),
        (("rgb8", H, W, W * 3, False, H * W * 3), FrameLimits(max_pixels=H * W - 1), ic.TOO_MANY_PIXELS),
        (("rgb8", H, W, W * 3, False, H * W * 3), FrameLimits(max_bytes=H * W * 3 - 1), ic.TOO_MANY_BYTES),
        # A huge declared size with almost no data is reported as truncated, as before.
        (("mono8", 100_000, 100_000, 100_000, False, 64), DEFAULT_FRAME_LIMITS, ic.TRUNCATED),
    ]
    for fields, limits, reason in cases:
        with pytest.raises(ImageConversionError) as info:
            ic.check_image(*fields, limits)
        assert info.value.reason == reason, fields
    with pytest.raises(ImageConversionError) as info:
        image_to_rgb("rgb8", H, W, W * 3, False, _rgb().tobytes(), FrameLimits(max_pixels=H * W - 1))
    assert info.value.reason == ic.TOO_MANY_PIXELS
    rgb = _rgb()
    exact = FrameLimits(max_pixels=H * W, max_bytes=H * W * 3)
    np.testing.assert_array_equal(image_to_rgb("rgb8", H, W, W * 3, False, rgb.tobytes(), exact), rgb)


@pytest.mark.parametrize(
    "data",
    [
        b"\x00" + bytes(range(256)),  # no signature
        b"\xff\xd8\xff\xe0 not really a jpeg",
        b"\x89PNG\r\n\x1a\n" + bytes(40),
        cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()[:40],  # cut inside its headers
        cv2.imencode(".bmp", np.zeros((8, 8, 3), np.uint8))[1].tobytes(),  # a codec whose size is not checked
    ],
)
def test_the_header_check_finds_corrupt_payloads_without_decoding(data):
    for refuse in (ic.check_compressed_header, compressed_to_rgb):
        with pytest.raises(ImageConversionError) as info:
            refuse("jpeg", data)
        assert info.value.reason == ic.CORRUPT_COMPRESSED


def test_the_header_check_agrees_with_decoding_on_good_frames():
    ok, jpeg = cv2.imencode(".jpg", np.zeros((24, 40, 3), np.uint8))
    ok, png = cv2.imencode(".png", np.zeros((5, 7), np.uint16))
    assert ic.check_compressed_header("jpeg", jpeg.tobytes()).pixels == 24 * 40
    assert compressed_to_rgb("jpeg", jpeg.tobytes()).shape == (24, 40, 3)
    header = ic.check_compressed_header("png", array.array("B", png.tobytes()))
    assert (header.width, header.height, header.channels, header.bit_depth) == (7, 5, 1, 16)
    assert compressed_to_rgb("png", png.tobytes()).shape == (5, 7, 3)


def test_opencv_logging_is_silenced_and_header_refusals_print_nothing(capfd):
    assert cv2.utils.logging.getLogLevel() == cv2.utils.logging.LOG_LEVEL_SILENT
    bad_crc = bytearray(_png_declaring(8, 8))
    bad_crc[29] ^= 0xFF  # the IHDR CRC: libpng would print "IHDR: CRC error"
    for data in (bytes(bad_crc), _png_declaring(100_000, 100_000), _jpeg_declaring(40_000, 40_000)):
        with pytest.raises(ImageConversionError):
            compressed_to_rgb("png", data)
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""
