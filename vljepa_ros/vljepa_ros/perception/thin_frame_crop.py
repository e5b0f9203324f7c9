"""The centre crop of a frame too thin to resize whole: only the crop's pixels are interpolated.

The preprocessing resizes the short side to ``resize_short`` and then crops, so a 1 x 1,000,000 mono8 frame
(1 MB, within any byte limit) would first become a resize_short x (resize_short * 1,000,000) RGB frame, tens of
gigabytes, of which the crop keeps a few kilobytes. For a frame whose resized area exceeds
MAX_RESIZED_AREA_RATIO crops, this module samples the crop straight from the source with the same
pixel-centre mapping as cv2.resize's INTER_LINEAR (coordinates clamped at the border), in float arithmetic
where OpenCV uses fixed point: values differ from resize_and_crop's by at most one grey level. Frames of any
camera aspect ratio (up to about 12:1) never take this path. Memory and work are O(crop).
"""

from __future__ import annotations

import numpy as np

from vljepa_ros.runtime.manifest import ClipSpec
from vljepa_ros.runtime.preprocessing import crop_offsets, resized_size

# Resized frame area / crop area above which only the crop is interpolated (16:9 gives about 2.3).
MAX_RESIZED_AREA_RATIO = 16


def is_thin(height: int, width: int, clip: ClipSpec) -> bool:
    """Whether resizing a ``height`` x ``width`` frame whole would build more than MAX_RESIZED_AREA_RATIO crops."""
    rh, rw = resized_size(height, width, clip.resize_short)
    return rh * rw > MAX_RESIZED_AREA_RATIO * clip.crop_size * clip.crop_size


def _taps(source: int, resized: int, offset: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For ``size`` output pixels from ``offset`` on an axis resized from ``source`` to ``resized``: the two
    source indices each one blends and the weight of the second."""
    position = (np.arange(size, dtype=np.float64) + offset + 0.5) * (source / resized) - 0.5
    position = np.clip(position, 0.0, source - 1)
    low = np.floor(position).astype(np.intp)
    high = np.minimum(low + 1, source - 1)
    return low, high, (position - low).astype(np.float32)


def thin_frame_crop(frame: np.ndarray, clip: ClipSpec) -> np.ndarray:
    """(S, S, 3) uint8 centre crop of the short-side-resized RGB uint8 ``frame``, a new array (never a view)."""
    height, width = frame.shape[:2]
    rh, rw = resized_size(height, width, clip.resize_short)
    top, left = crop_offsets(rh, rw, clip.crop_size)
    y0, y1, fy = _taps(height, rh, top, clip.crop_size)
    x0, x1, fx = _taps(width, rw, left, clip.crop_size)
    fy, fx = fy[:, None, None], fx[None, :, None]
    upper = frame[np.ix_(y0, x0)] * (1 - fx) + frame[np.ix_(y0, x1)] * fx
    lower = frame[np.ix_(y1, x0)] * (1 - fx) + frame[np.ix_(y1, x1)] * fx
    return np.rint(upper * (1 - fy) + lower * fy).astype(np.uint8)
