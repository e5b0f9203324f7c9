"""RGB uint8 frames -> encoder input, following the V-JEPA 2 evaluation transform.

Per frame: resize the short side to `resize_short` (bilinear), centre-crop `crop_size`, scale to [0, 1],
normalise with the ImageNet mean/std. The clip is laid out (3, T, S, S) float32. An image is a clip of one
repeated frame (the VL-JEPA convention for image input). Sizes follow torchvision (long side truncated with
int(), crop offsets rounded). The resize is the one the manifest records (`clip.resize_antialias`): antialiased
bilinear in float, unrounded, as torch / torchvision trained open-vljepa and V-JEPA 2 (runtime/antialias_resize.py);
without the field, OpenCV's INTER_LINEAR on uint8 frames, as the bundled model was trained.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import cv2
import numpy as np

from vljepa_ros.runtime.antialias_resize import resize_crop_antialiased
from vljepa_ros.runtime.manifest import ClipSpec

# A crop viewing a larger buffer keeps all of it alive; up to twice the crop (a 16:9 resize) is not worth a copy.
MAX_CROP_VIEW_RATIO = 2


def resized_size(height: int, width: int, resize_short: int) -> tuple[int, int]:
    """(h, w) after scaling the short side to `resize_short`; the long side truncates like torchvision."""
    if height <= width:
        return resize_short, int(resize_short * width / height)
    return int(resize_short * height / width), resize_short


def crop_offsets(height: int, width: int, crop_size: int) -> tuple[int, int]:
    """Top-left corner of the centred crop (torchvision rounding)."""
    return int(round((height - crop_size) / 2.0)), int(round((width - crop_size) / 2.0))


def check_frame(frame: np.ndarray, index: int = 0) -> None:
    """Raise ValueError unless `frame` is an HxWx3 uint8 array."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        desc = f"{frame.dtype} array of shape {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise ValueError(f"frame {index}: expected an RGB uint8 array (H, W, 3), got {desc}")


def resized_crop_float(frame: np.ndarray, clip: ClipSpec) -> np.ndarray:
    """One RGB uint8 frame -> (S, S, 3) float32 in 0..255: the manifest's resize, then the centre crop, unrounded
    when the resize is antialiased (the float the model was trained on), else resize_and_crop's uint8 values."""
    if not clip.resize_antialias:
        return resize_and_crop(frame, clip).astype(np.float32)
    h, w = frame.shape[:2]
    size = resized_size(h, w, clip.resize_short)
    top, left = crop_offsets(*size, clip.crop_size)
    return resize_crop_antialiased(frame, size, top, left, (clip.crop_size, clip.crop_size))


def resize_and_crop(frame: np.ndarray, clip: ClipSpec) -> np.ndarray:
    """One RGB uint8 frame -> (S, S, 3) uint8: short side resized bilinearly, then centre-cropped.

    The crop may be a view (of ``frame`` or of the resized frame), but never of a buffer more than
    MAX_CROP_VIEW_RATIO times its own size: such a crop is copied out, so a kept crop does not pin a large frame.
    With `clip.resize_antialias` the crop is the antialiased float crop rounded to the nearest grey level (the
    input of encoders that take uint8 crops: at most half a grey level from the float the model saw).
    """
    if clip.resize_antialias:
        return np.rint(resized_crop_float(frame, clip)).astype(np.uint8)
    h, w = frame.shape[:2]
    rh, rw = resized_size(h, w, clip.resize_short)
    if (rh, rw) != (h, w):
        frame = cv2.resize(frame, (rw, rh), interpolation=cv2.INTER_LINEAR)
    top, left = crop_offsets(rh, rw, clip.crop_size)
    crop = frame[top : top + clip.crop_size, left : left + clip.crop_size]
    if held_bytes(crop) > MAX_CROP_VIEW_RATIO * crop.nbytes:
        return crop.copy()
    return crop


def held_bytes(array: np.ndarray) -> int:
    """Size of the buffer that ``array`` keeps alive: its own data, or the root of the arrays it views."""
    owner = array
    while isinstance(owner, np.ndarray) and owner.base is not None:
        owner = owner.base
    if isinstance(owner, np.ndarray):
        return owner.nbytes
    try:
        return memoryview(owner).nbytes
    except TypeError:  # an owner without the buffer protocol (e.g. __array_interface__): assume the worst
        return sys.maxsize


def normalisation_constants(clip: ClipSpec) -> tuple[np.ndarray, np.ndarray]:
    """(scale, offset) with x_norm = x_uint8 * scale + offset, folded from /255 and mean/std (per channel)."""
    std = np.asarray(clip.std, dtype=np.float32)
    mean = np.asarray(clip.mean, dtype=np.float32)
    return (1.0 / (255.0 * std)).astype(np.float32), (-mean / std).astype(np.float32)


def _normalised_frames(frames: Sequence[np.ndarray], clip: ClipSpec) -> np.ndarray:
    """Frames -> (3, len(frames), S, S) float32 (no frame-count check)."""
    dtype = np.float32 if clip.resize_antialias else np.uint8
    cropped = np.empty((len(frames), clip.crop_size, clip.crop_size, 3), dtype=dtype)
    for i, frame in enumerate(frames):
        check_frame(frame, i)
        cropped[i] = resized_crop_float(frame, clip) if clip.resize_antialias else resize_and_crop(frame, clip)
    scale, offset = normalisation_constants(clip)
    normalised = cropped.astype(np.float32) * scale + offset
    return np.ascontiguousarray(normalised.transpose(3, 0, 1, 2))


def preprocess_clip(frames: Sequence[np.ndarray] | np.ndarray, clip: ClipSpec) -> np.ndarray:
    """T RGB uint8 frames (any size, each HxWx3) -> (3, T, S, S) float32 normalised clip.

    Raises ValueError if the frame count differs from `clip.frames` or a frame is not RGB uint8.
    """
    if len(frames) != clip.frames:
        raise ValueError(f"clip needs {clip.frames} frames (clip.frames), got {len(frames)}")
    return _normalised_frames(frames, clip)


def preprocess_image(image: np.ndarray, clip: ClipSpec) -> np.ndarray:
    """One RGB uint8 image -> (3, T, S, S) float32 clip of T identical frames."""
    single = _normalised_frames([image], clip)
    return np.ascontiguousarray(np.repeat(single, clip.frames, axis=1))


def crop_clip(frames: Sequence[np.ndarray] | np.ndarray, clip: ClipSpec) -> np.ndarray:
    """T RGB uint8 frames -> (T, S, S, 3) uint8 centre crops: the input of an encoder that normalises in its
    graph (manifest ``encoder.normalise_in_graph``). Same resize and crop as `preprocess_clip`, no float step."""
    if len(frames) != clip.frames:
        raise ValueError(f"clip needs {clip.frames} frames (clip.frames), got {len(frames)}")
    out = np.empty((clip.frames, clip.crop_size, clip.crop_size, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        check_frame(frame, i)
        out[i] = resize_and_crop(frame, clip)
    return out


def stack_frames(frames: Sequence[np.ndarray], clip: ClipSpec, height: int, width: int) -> np.ndarray:
    """Frames for an encoder with fused preprocessing: (T, H, W, 3) uint8, each frame resized to (H, W) if needed.

    The graph does the short-side resize, crop and normalisation; the CPU side only copies (or, when the
    camera size differs from the exported size, resizes once).
    """
    if len(frames) != clip.frames:
        raise ValueError(f"clip needs {clip.frames} frames (clip.frames), got {len(frames)}")
    out = np.empty((clip.frames, height, width, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        check_frame(frame, i)
        out[i] = (
            frame
            if frame.shape[:2] == (height, width)
            else cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR)
        )
    return out
