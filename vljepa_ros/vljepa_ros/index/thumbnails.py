"""Small JPEG thumbnails of the frames that close clips, read back from the input bag."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

import cv2
import numpy as np

from vljepa_ros.bags import bag_io
from vljepa_ros.perception.image_conversion import compressed_to_rgb, image_to_rgb

THUMBNAIL_WIDTH = 96
JPEG_QUALITY = 70


def jpeg_thumbnail(rgb: np.ndarray, width: int = THUMBNAIL_WIDTH) -> bytes:
    """RGB uint8 image -> JPEG bytes of an image `width` pixels wide (aspect kept)."""
    height = max(1, round(rgb.shape[0] * width / rgb.shape[1]))
    small = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return encoded.tobytes()


def frame_rgb(frame: bag_io.CameraFrame) -> np.ndarray:
    """The RGB image of one bag frame (ImageConversionError when it is malformed)."""
    message = frame.message
    if frame.is_compressed:
        return compressed_to_rgb(message.format, message.data)
    return image_to_rgb(
        message.encoding, message.height, message.width, message.step, bool(message.is_bigendian), message.data
    )


def clip_frames(
    bag: Path | str, wanted: Mapping[str, Collection[int]], width: int = THUMBNAIL_WIDTH
) -> tuple[dict[tuple[str, int], bytes], dict[tuple[str, int], int], int | None]:
    """Thumbnails and bag times of the frames with the `wanted` stamps of each topic, and the first frame's bag time.

    Returns (thumbnail JPEG by (topic, stamp), bag time by (topic, stamp), first camera frame's bag time).
    """
    thumbs: dict[tuple[str, int], bytes] = {}
    bag_times: dict[tuple[str, int], int] = {}
    first = None
    for frame in bag_io.read_camera_frames(bag, list(wanted)):
        first = frame.bag_time_ns if first is None else first
        if frame.stamp_ns in wanted[frame.topic]:
            key = (frame.topic, frame.stamp_ns)
            bag_times[key] = frame.bag_time_ns
            thumbs[key] = jpeg_thumbnail(frame_rgb(frame), width)
    return thumbs, bag_times, first
