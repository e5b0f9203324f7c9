"""Seeded generators of malformed camera inputs with their expected reason, and bag building, for the
reliability tests (fuzz, faults, accounting).

Each malformed Image is a valid one with exactly ONE defect, so its expected reason code is known from how
it was made, not from the code under test. The expected reasons follow the order of checks documented in
image_conversion.check_image: encoding, zero size, 4:2:2 width, step, length.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

import cv2
import numpy as np

from vljepa_ros.perception.image_conversion import (
    BAD_SHAPE,
    BAD_STEP,
    CORRUPT_COMPRESSED,
    SUPPORTED_ENCODINGS,
    TRUNCATED,
    UNKNOWN_ENCODING,
    ZERO_SIZE,
)

# Bytes per pixel of every supported encoding (the sensor_msgs/image_encodings table, written out here
# independently of image_conversion's own table).
BYTES_PER_PIXEL = {
    "rgb8": 3,
    "bgr8": 3,
    "8UC3": 3,
    "rgba8": 4,
    "bgra8": 4,
    "mono8": 1,
    "8UC1": 1,
    "mono16": 2,
    "16UC1": 2,
    "32FC1": 4,
    "yuv422": 2,
    "uyvy": 2,
    "yuv422_yuy2": 2,
    "yuyv": 2,
    "bayer_rggb8": 1,
    "bayer_bggr8": 1,
    "bayer_gbrg8": 1,
    "bayer_grbg8": 1,
    "bayer_rggb16": 2,
    "bayer_bggr16": 2,
    "bayer_gbrg16": 2,
    "bayer_grbg16": 2,
}
YUV422 = ("yuv422", "uyvy", "yuv422_yuy2", "yuyv")
# Names a camera driver might plausibly send that the converter does not support (or misspells).
FOREIGN_ENCODINGS = (
    "",
    "RGB8",
    "rgb16",
    "bgr16",
    "rgba16",
    "jpeg",
    "nv12",
    "nv21",
    "yuv420",
    "i420",
    "8UC2",
    "16SC1",
    "32FC3",
    "64FC1",
    "mono12",
    "bayer_rggb12",
    "rgb8 ",
    " rgb8",
    "rgb8\x00",
    "ünïcode",
)

IMAGE_DEFECTS = (UNKNOWN_ENCODING, ZERO_SIZE, BAD_SHAPE, BAD_STEP, TRUNCATED)


@dataclass(frozen=True)
class ImageFields:
    """The sensor_msgs/Image fields image conversion reads, plus the reason it must give (None: valid)."""

    encoding: str
    height: int
    width: int
    step: int
    is_bigendian: bool
    data: bytes
    expected: str | None

    def args(self) -> tuple:
        """Positional arguments of image_conversion.image_to_rgb."""
        return (self.encoding, self.height, self.width, self.step, self.is_bigendian, self.data)


@dataclass(frozen=True)
class CompressedFields:
    """The sensor_msgs/CompressedImage fields, plus the reason it must give (None: decodes)."""

    format: str
    data: bytes
    expected: str | None


def row_bytes(encoding: str, width: int) -> int:
    """Bytes of one row without padding."""
    return width * BYTES_PER_PIXEL[encoding]


def valid_image(rng: np.random.Generator, max_side: int = 24) -> ImageFields:
    """A random well-formed image: any supported encoding, size, row padding, byte order; random pixels."""
    encoding = str(rng.choice(SUPPORTED_ENCODINGS))
    height = int(rng.integers(1, max_side + 1))
    width = int(rng.integers(1, max_side + 1))
    if encoding in YUV422 and width % 2:
        width += 1
    step = row_bytes(encoding, width) + int(rng.choice([0, 0, 1, 3, 8]))
    # Some drivers leave out the padding after the last row; both layouts are legal.
    size = step * height if rng.random() < 0.7 else step * (height - 1) + row_bytes(encoding, width)
    data = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    return ImageFields(encoding, height, width, step, bool(rng.random() < 0.3), data, None)


def malformed_image(rng: np.random.Generator, defect: str, max_side: int = 24) -> ImageFields:
    """A valid random image with exactly one ``defect`` (one of IMAGE_DEFECTS) applied."""
    base = valid_image(rng, max_side)
    if defect == UNKNOWN_ENCODING:
        if rng.random() < 0.5:
            encoding = str(rng.choice(FOREIGN_ENCODINGS))
        else:  # random printable junk
            encoding = "".join(chr(c) for c in rng.integers(33, 127, int(rng.integers(1, 16))))
        if encoding in SUPPORTED_ENCODINGS:
            encoding += "?"
        return replace(base, encoding=encoding, expected=defect)
    if defect == ZERO_SIZE:
        which = rng.integers(0, 3)
        return replace(
            base, height=0 if which != 1 else base.height, width=0 if which != 0 else base.width, expected=defect
        )
    if defect == BAD_SHAPE:
        encoding = str(rng.choice(YUV422))
        width = int(rng.integers(0, max_side // 2)) * 2 + 1
        step = row_bytes(encoding, width) + int(rng.integers(0, 4))
        data = bytes(step * base.height)
        return ImageFields(encoding, base.height, width, step, base.is_bigendian, data, defect)
    if defect == BAD_STEP:
        step = int(rng.integers(0, row_bytes(base.encoding, base.width)))
        return replace(base, step=step, expected=defect)
    if defect == TRUNCATED:
        needed = base.step * (base.height - 1) + row_bytes(base.encoding, base.width)
        if rng.random() < 0.1:  # a header claiming a huge image with almost no data
            height, width = int(rng.integers(10_000, 2**31)), int(rng.integers(10_000, 2**20)) * 2
            step = row_bytes(base.encoding, width)
            return replace(base, height=height, width=width, step=step, data=base.data[:64], expected=defect)
        return replace(base, data=base.data[: int(rng.integers(0, needed))], expected=defect)
    raise ValueError(f"unknown defect {defect!r}")


def image_corpus(seed: int, count: int, malformed_fraction: float = 0.8) -> list[ImageFields]:
    """``count`` images, about ``malformed_fraction`` of them with one defect (defects drawn uniformly)."""
    rng = np.random.default_rng(seed)
    corpus = []
    for _ in range(count):
        if rng.random() < malformed_fraction:
            corpus.append(malformed_image(rng, str(rng.choice(IMAGE_DEFECTS))))
        else:
            corpus.append(valid_image(rng))
    return corpus


def encoded_image(rng: np.random.Generator, ext: str) -> bytes:
    """A small random picture encoded as ``ext`` (".jpg" or ".png")."""
    h, w = int(rng.integers(4, 40)), int(rng.integers(4, 40))
    picture = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(ext, picture)
    assert ok
    return buf.tobytes()


def _garbage(rng: np.random.Generator) -> bytes:
    # A leading zero byte keeps random data from starting with any image signature OpenCV knows.
    return b"\x00" + rng.integers(0, 256, int(rng.integers(1, 2000)), dtype=np.uint8).tobytes()


def malformed_compressed(rng: np.random.Generator) -> CompressedFields:
    """A CompressedImage that certainly cannot be decoded, with its expected reason."""
    kind = int(rng.integers(0, 6))
    if kind == 0:
        return CompressedFields(str(rng.choice(["jpeg", "png", ""])), b"", ZERO_SIZE)
    if kind == 1:
        return CompressedFields("16UC1; compressedDepth png", encoded_image(rng, ".png"), UNKNOWN_ENCODING)
    if kind == 2:
        return CompressedFields(
            str(rng.choice(["jpeg", "png", "bgr8; jpeg compressed bgr8"])), _garbage(rng), CORRUPT_COMPRESSED
        )
    if kind == 3:  # a JPEG cut inside its headers: no frame header, nothing to decode
        return CompressedFields("jpeg", encoded_image(rng, ".jpg")[: int(rng.integers(2, 100))], CORRUPT_COMPRESSED)
    if kind == 4:  # PNG signature then junk
        return CompressedFields("png", b"\x89PNG\r\n\x1a\n" + _garbage(rng), CORRUPT_COMPRESSED)
    # JPEG start-of-image marker then junk
    return CompressedFields("jpeg", b"\xff\xd8\xff" + _garbage(rng), CORRUPT_COMPRESSED)


def mutated_compressed(rng: np.random.Generator) -> CompressedFields:
    """A real JPEG/PNG truncated or with flipped bytes: may or may not decode (expected None = unknown)."""
    data = bytearray(encoded_image(rng, str(rng.choice([".jpg", ".png"]))))
    if rng.random() < 0.5:
        data = data[: int(rng.integers(1, len(data)))]
    else:
        for _ in range(int(rng.integers(1, 20))):
            data[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
    return CompressedFields("jpeg", bytes(data), None)


def expected_counts(items) -> Counter:
    """Reasons -> how many of ``items`` must be reported malformed with that reason."""
    return Counter(item.expected for item in items if item.expected is not None)


# ----- bags ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BagFrame:
    """One camera message to write: ``fields`` is ImageFields (Image) or CompressedFields (CompressedImage)."""

    topic: str
    bag_time_ns: int
    stamp_ns: int
    fields: ImageFields | CompressedFields


def rgb8_fields(rgb: np.ndarray) -> ImageFields:
    """A well-formed rgb8 image of ``rgb``."""
    height, width = rgb.shape[:2]
    return ImageFields("rgb8", height, width, width * 3, False, np.ascontiguousarray(rgb).tobytes(), None)


def jpeg_fields(rgb: np.ndarray) -> CompressedFields:
    """A well-formed JPEG CompressedImage of ``rgb``."""
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]))
    assert ok
    return CompressedFields("jpeg", buf.tobytes(), None)


def write_camera_bag(path, frames: list[BagFrame], storage: str = "mcap") -> None:
    """Write ``frames`` (in the given order) as sensor_msgs Image / CompressedImage messages to a new bag."""
    from rosbags.typesys import Stores, get_typestore

    from vljepa_ros.bags.bag_io import COMPRESSED_IMAGE_TYPE, IMAGE_TYPE, BagWriter, ns_to_sec_nanosec

    store = get_typestore(Stores.ROS2_KILTED)
    types = store.types
    with BagWriter(path, storage=storage, typestore=store) as writer:
        for frame in frames:
            sec, nanosec = ns_to_sec_nanosec(frame.stamp_ns)
            header = types["std_msgs/msg/Header"](
                stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
                frame_id=frame.topic.strip("/").split("/")[0],
            )
            data = np.frombuffer(frame.fields.data, np.uint8)
            if isinstance(frame.fields, ImageFields):
                f = frame.fields
                message = types[IMAGE_TYPE](
                    header=header,
                    height=f.height,
                    width=f.width,
                    encoding=f.encoding,
                    is_bigendian=int(f.is_bigendian),
                    step=f.step,
                    data=data,
                )
                writer.write(frame.topic, IMAGE_TYPE, frame.bag_time_ns, message)
            else:
                message = types[COMPRESSED_IMAGE_TYPE](header=header, format=frame.fields.format, data=data)
                writer.write(frame.topic, COMPRESSED_IMAGE_TYPE, frame.bag_time_ns, message)
