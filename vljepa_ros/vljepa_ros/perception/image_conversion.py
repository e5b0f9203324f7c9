"""sensor_msgs Image / CompressedImage fields -> RGB uint8 (H, W, 3), the project's own conversion code.

No rclpy here: callers pass the message *fields* (``encoding, height, width, step, is_bigendian, data``), so
the node, the bag replay tool and the tests share one tested path. The installable cv_bridge is broken with
numpy 2 / OpenCV 5 (see docs), hence this module.

Reads are zero-copy where the layout allows (``rgb8``, ``mono8`` expansions aside): the raw buffer is viewed
with ``np.ndarray(buffer=..., strides=...)``, which honours ``step`` padding without copying rows.

Scaling of non-8-bit inputs for a colour model (the model was trained on 8-bit RGB):
- ``mono16`` and 16-bit Bayer: an intensity camera using the full 16-bit range, so the top byte is kept
  (``value >> 8``), a fixed linear map that keeps brightness comparable from frame to frame.
- ``16UC1`` and ``32FC1``: depth-like images whose unit and range are unknown (mm, m, disparity). The valid
  pixels (non-zero for 16UC1, finite for 32FC1) are min-max scaled to 0..255 per frame, as depth viewers
  (rviz) do; invalid pixels become 0. A constant image maps to 0.
All single-channel results are replicated to three channels.

Hostile input is refused from its header before anything large is allocated: a raw frame by its declared
height x width and data length, a compressed frame by the PNG/JPEG header it starts with (``image_header``),
both against ``FrameLimits``. OpenCV failures surface as ImageConversionError, never as ``cv2.error``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vljepa_ros.perception.config import DEFAULT_FRAME_LIMITS, FrameLimits
from vljepa_ros.perception.image_header import ImageHeader, ImageHeaderError, read_image_header

# OpenCV logs decode failures to stderr itself, past the node's throttled logger; here every failure already
# raises ImageConversionError. libpng and libjpeg print their own warnings, which this does not reach.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)

# Reason codes, stable strings: the node counts malformed inputs by these on /diagnostics.
UNKNOWN_ENCODING = "unknown_encoding"
BAD_STEP = "bad_step"
BAD_SHAPE = "bad_shape"
TRUNCATED = "truncated"
ZERO_SIZE = "zero_size"
CORRUPT_COMPRESSED = "corrupt_compressed"
TOO_MANY_PIXELS = "too_many_pixels"
TOO_MANY_BYTES = "too_many_bytes"
REASONS = (
    UNKNOWN_ENCODING,
    BAD_STEP,
    BAD_SHAPE,
    TRUNCATED,
    ZERO_SIZE,
    CORRUPT_COMPRESSED,
    TOO_MANY_PIXELS,
    TOO_MANY_BYTES,
)


class ImageConversionError(ValueError):
    """An input image that cannot be converted; ``reason`` is one of ``REASONS``."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class _Layout:
    channels: int
    dtype: str  # numpy kind+size without byte order, e.g. "u1", "u2", "f4"
    kind: str  # how to turn the raw view into RGB


_LAYOUTS = {
    "rgb8": _Layout(3, "u1", "rgb"),
    "bgr8": _Layout(3, "u1", "bgr"),
    "rgba8": _Layout(4, "u1", "rgba"),
    "bgra8": _Layout(4, "u1", "bgra"),
    "8UC3": _Layout(3, "u1", "bgr"),  # OpenCV convention: unlabelled 3-channel images are BGR
    "mono8": _Layout(1, "u1", "mono"),
    "8UC1": _Layout(1, "u1", "mono"),
    "mono16": _Layout(1, "u2", "mono16"),
    "16UC1": _Layout(1, "u2", "depth16"),
    "32FC1": _Layout(1, "f4", "depth32f"),
    # ROS "yuv422" is UYVY byte order; "yuv422_yuy2" is YUYV. Both carry 2 bytes per pixel.
    "yuv422": _Layout(2, "u1", "uyvy"),
    "uyvy": _Layout(2, "u1", "uyvy"),
    "yuv422_yuy2": _Layout(2, "u1", "yuyv"),
    "yuyv": _Layout(2, "u1", "yuyv"),
    "bayer_rggb8": _Layout(1, "u1", "bayer_rggb"),
    "bayer_bggr8": _Layout(1, "u1", "bayer_bggr"),
    "bayer_gbrg8": _Layout(1, "u1", "bayer_gbrg"),
    "bayer_grbg8": _Layout(1, "u1", "bayer_grbg"),
    "bayer_rggb16": _Layout(1, "u2", "bayer_rggb"),
    "bayer_bggr16": _Layout(1, "u2", "bayer_bggr"),
    "bayer_gbrg16": _Layout(1, "u2", "bayer_gbrg"),
    "bayer_grbg16": _Layout(1, "u2", "bayer_grbg"),
}

# OpenCV 5 names Bayer codes by the top-left 2x2 pattern, matching ROS names (checked by the tests).
_BAYER_CODES = {
    "bayer_rggb": cv2.COLOR_BayerRGGB2RGB,
    "bayer_bggr": cv2.COLOR_BayerBGGR2RGB,
    "bayer_gbrg": cv2.COLOR_BayerGBRG2RGB,
    "bayer_grbg": cv2.COLOR_BayerGRBG2RGB,
}

SUPPORTED_ENCODINGS = tuple(_LAYOUTS)
# (element type, big-endian) -> dtype, built once: parsing a dtype string per frame is measurable on cold caches
# (docs/benchmarks.md), and every frame is checked, every sampled frame converted.
_DTYPES = {
    (layout.dtype, big): np.dtype((">" if big else "<") + layout.dtype)
    for layout in _LAYOUTS.values()
    for big in (False, True)
}


def _as_byte_buffer(data) -> memoryview:
    """A flat byte view of ``data`` (bytes, bytearray, array.array, memoryview, ndarray) without copying."""
    try:
        view = memoryview(data)
    except TypeError:
        # Plain sequences of ints (e.g. a list) have no buffer; one copy is unavoidable.
        view = memoryview(np.asarray(data, dtype=np.uint8))
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    return view


def check_image(
    encoding: str,
    height: int,
    width: int,
    step: int,
    is_bigendian: bool,
    data_len: int,
    limits: FrameLimits = DEFAULT_FRAME_LIMITS,
) -> None:
    """Validate sensor_msgs/Image fields without touching the pixels (O(1): cheap enough for every frame).

    Raises ImageConversionError with reason unknown_encoding, zero_size, bad_step (step smaller than a row),
    bad_shape (odd width for 4:2:2 YUV), truncated (fewer bytes than the rows need), too_many_pixels
    (height x width over ``limits.max_pixels``) or too_many_bytes (data over ``limits.max_bytes``).
    """
    _checked_layout(encoding, int(height), int(width), int(step), bool(is_bigendian), int(data_len), limits)


def _checked_layout(encoding, height, width, step, is_bigendian, data_len, limits) -> tuple[_Layout, np.dtype]:
    # An empty image (e.g. a default-constructed message) is reported as such, whatever its encoding says.
    if height <= 0 or width <= 0:
        raise ImageConversionError(ZERO_SIZE, f"image is {width}x{height}")
    layout = _LAYOUTS.get(encoding)
    if layout is None:
        raise ImageConversionError(UNKNOWN_ENCODING, f"encoding {encoding!r} is not one of {', '.join(_LAYOUTS)}")
    dtype = _DTYPES[layout.dtype, is_bigendian]
    if layout.kind in ("uyvy", "yuyv") and width % 2:
        raise ImageConversionError(BAD_SHAPE, f"{encoding} needs an even width, got {width}")
    pixel_bytes = layout.channels * dtype.itemsize
    row_bytes = width * pixel_bytes
    if step < row_bytes:
        raise ImageConversionError(BAD_STEP, f"step {step} < width {width} x {pixel_bytes} bytes per pixel")
    # The last row needs no padding after it (some drivers omit it).
    needed = step * (height - 1) + row_bytes
    if data_len < needed:
        raise ImageConversionError(
            TRUNCATED, f"{data_len} bytes, {encoding} {width}x{height} step {step} needs {needed}"
        )
    _check_limits(width, height, data_len, limits)
    return layout, dtype


def _check_limits(width: int, height: int, data_len: int, limits: FrameLimits) -> None:
    if width * height > limits.max_pixels:
        raise ImageConversionError(
            TOO_MANY_PIXELS, f"{width}x{height} = {width * height} pixels, more than max_pixels {limits.max_pixels}"
        )
    if data_len > limits.max_bytes:
        raise ImageConversionError(TOO_MANY_BYTES, f"{data_len} bytes, more than max_bytes {limits.max_bytes}")


def image_to_rgb(
    encoding: str,
    height: int,
    width: int,
    step: int,
    is_bigendian: bool,
    data,
    limits: FrameLimits = DEFAULT_FRAME_LIMITS,
) -> np.ndarray:
    """Convert sensor_msgs/Image fields to an RGB uint8 array of shape (height, width, 3).

    The result may be a read-only view into ``data`` (rgb8 without padding); callers that keep it beyond the
    lifetime of the message need nothing extra, the view holds a reference to the buffer.

    Raises ImageConversionError for the reasons listed in ``check_image``, or bad_shape if OpenCV refuses
    the conversion.
    """
    buf = _as_byte_buffer(data)
    height, width, step = int(height), int(width), int(step)
    layout, dtype = _checked_layout(encoding, height, width, step, bool(is_bigendian), len(buf), limits)
    channels = layout.channels
    shape = (height, width, channels) if channels > 1 else (height, width)
    strides = (step, channels * dtype.itemsize, dtype.itemsize) if channels > 1 else (step, dtype.itemsize)
    raw = np.ndarray(shape=shape, dtype=dtype, buffer=buf, strides=strides)
    try:
        return _to_rgb(layout.kind, raw)
    except cv2.error as err:
        detail = f"OpenCV cannot convert {encoding} {width}x{height}: {_brief(err)}"
        raise ImageConversionError(BAD_SHAPE, detail) from err


def _brief(err: cv2.error) -> str:
    """An OpenCV exception's message on one line."""
    return " ".join(str(err).split())


def _to_rgb(kind: str, raw: np.ndarray) -> np.ndarray:
    if kind == "rgb":
        return raw
    if kind == "bgr":
        return raw[:, :, ::-1]
    if kind == "rgba":
        return raw[:, :, :3]
    if kind == "bgra":
        return raw[:, :, 2::-1]
    if kind == "mono":
        return _gray3(raw)
    if kind == "mono16":
        return _gray3((raw >> 8).astype(np.uint8))
    if kind == "depth16":
        return _gray3(_minmax_u8(raw.astype(np.float32), raw != 0))
    if kind == "depth32f":
        values = raw.astype(np.float32)
        return _gray3(_minmax_u8(values, np.isfinite(values)))
    if kind == "uyvy":
        return cv2.cvtColor(np.ascontiguousarray(raw), cv2.COLOR_YUV2RGB_UYVY)
    if kind == "yuyv":
        return cv2.cvtColor(np.ascontiguousarray(raw), cv2.COLOR_YUV2RGB_YUYV)
    if kind.startswith("bayer_"):
        rgb = cv2.cvtColor(np.ascontiguousarray(raw.astype(raw.dtype.newbyteorder("="))), _BAYER_CODES[kind])
        return rgb if rgb.dtype == np.uint8 else (rgb >> 8).astype(np.uint8)
    raise AssertionError(f"no conversion for layout kind {kind}")


def _gray3(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[:, :, None], 3, axis=2)


def _minmax_u8(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Scale the valid pixels linearly to 0..255 (min -> 0, max -> 255); invalid pixels and flat images -> 0."""
    out = np.zeros(values.shape, np.uint8)
    if not valid.any():
        return out
    lo, hi = float(values[valid].min()), float(values[valid].max())
    if hi <= lo:
        return out
    # float64: a float32 depth image may span most of the float32 range, whose difference overflows float32.
    scaled = (values[valid].astype(np.float64) - lo) * (255.0 / (hi - lo))
    out[valid] = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return out


def check_compressed(format: str, data_len: int, limits: FrameLimits = DEFAULT_FRAME_LIMITS) -> None:
    """Validate CompressedImage fields without reading the payload (unsupported container, empty or oversized
    data); O(1). ``check_compressed_header`` also reads the payload's header.

    Raises ImageConversionError with reason unknown_encoding, zero_size or too_many_bytes.
    """
    if "compresseddepth" in format.lower().replace(" ", ""):
        raise ImageConversionError(UNKNOWN_ENCODING, f"compressed format {format!r} is not supported")
    if data_len == 0:
        raise ImageConversionError(ZERO_SIZE, "empty compressed data")
    if data_len > limits.max_bytes:
        raise ImageConversionError(
            TOO_MANY_BYTES, f"{data_len} bytes of {format!r}, more than max_bytes {limits.max_bytes}"
        )


def check_compressed_header(format: str, data, limits: FrameLimits = DEFAULT_FRAME_LIMITS) -> ImageHeader:
    """Validate CompressedImage fields and the PNG/JPEG header the payload starts with, without decoding;
    cheap enough for every arriving frame (the header is a few dozen bytes; JPEG markers are walked, not
    the entropy-coded data). Returns the header.

    Raises ImageConversionError for the reasons of ``check_compressed``, corrupt_compressed (no PNG/JPEG
    signature, or a truncated or malformed header) or too_many_pixels (declared size over
    ``limits.max_pixels``). A payload whose header is sound may still fail to decode (``compressed_to_rgb``).
    """
    buf = _as_byte_buffer(data)
    check_compressed(format, len(buf), limits)
    try:
        header = read_image_header(buf)
    except ImageHeaderError as err:
        raise ImageConversionError(CORRUPT_COMPRESSED, f"{len(buf)} bytes of {format!r}: {err}") from err
    if header.pixels > limits.max_pixels:
        raise ImageConversionError(
            TOO_MANY_PIXELS,
            f"{header.format} declares {header.width}x{header.height} = {header.pixels} pixels, more than "
            f"max_pixels {limits.max_pixels}",
        )
    return header


def compressed_to_rgb(format: str, data, limits: FrameLimits = DEFAULT_FRAME_LIMITS) -> np.ndarray:
    """Decode sensor_msgs/CompressedImage fields (PNG or JPEG) to RGB uint8 (H, W, 3).

    ``format`` is informational in ROS ("jpeg", "png", "rgb8; jpeg compressed bgr8"); the codec is told from
    the payload's signature, and only ``compressedDepth`` (a different container) is refused by name. Other
    codecs OpenCV could decode are refused: their declared size is not checked before decoding.
    Raises ImageConversionError with reason zero_size, unknown_encoding, corrupt_compressed, too_many_pixels
    or too_many_bytes (see ``check_compressed_header``); corrupt_compressed also when the data behind a sound
    header does not decode.
    """
    buf = _as_byte_buffer(data)
    check_compressed_header(format, buf, limits)
    try:
        decoded = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as err:
        raise ImageConversionError(CORRUPT_COMPRESSED, f"{len(buf)} bytes of {format!r}: {_brief(err)}") from err
    if decoded is None or decoded.size == 0:
        raise ImageConversionError(CORRUPT_COMPRESSED, f"{len(buf)} bytes of {format!r} did not decode")
    if decoded.dtype == np.uint16:
        decoded = (decoded >> 8).astype(np.uint8)
    if decoded.dtype != np.uint8:
        raise ImageConversionError(UNKNOWN_ENCODING, f"decoded pixel type {decoded.dtype} is not 8/16-bit")
    if decoded.ndim == 2:
        return _gray3(decoded)
    try:
        return cv2.cvtColor(decoded, cv2.COLOR_BGRA2RGB if decoded.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    except cv2.error as err:
        raise ImageConversionError(
            CORRUPT_COMPRESSED, f"decoded shape {decoded.shape} does not convert to RGB: {_brief(err)}"
        ) from err
