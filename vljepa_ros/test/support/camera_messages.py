"""Camera messages for the node tests: raw rgb8 and JPEG frames with a given stamp, and a 30 Hz camera's period."""

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image

from vljepa_ros.nodes.ros_conversions import ns_to_time

PERIOD_NS = 33_000_000  # stamps spaced like a 30 Hz camera


def rgb8_msg(rgb: np.ndarray, stamp_ns: int, frame_id: str) -> Image:
    """An rgb8 Image of the HxWx3 uint8 frame `rgb`."""
    msg = Image()
    msg.header.stamp = ns_to_time(stamp_ns)
    msg.header.frame_id = frame_id
    msg.height, msg.width = rgb.shape[:2]
    msg.encoding = "rgb8"
    msg.step = rgb.shape[1] * 3
    msg.data = rgb.tobytes()
    return msg


def jpeg_msg(rgb: np.ndarray, stamp_ns: int, frame_id: str) -> CompressedImage:
    """A JPEG CompressedImage of the HxWx3 uint8 RGB frame `rgb`."""
    msg = CompressedImage()
    msg.header.stamp = ns_to_time(stamp_ns)
    msg.header.frame_id = frame_id
    msg.format = "rgb8; jpeg compressed bgr8"
    msg.data = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]))[1].tobytes()
    return msg
