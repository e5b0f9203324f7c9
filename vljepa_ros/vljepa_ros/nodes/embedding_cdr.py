"""vljepa_msgs/Embedding written straight to its CDR bytes, for publishing without rclpy's message conversion.

Why: ``Publisher.publish(msg)`` converts the Python message field by field (one Python property call per
field, nested ones included) before Fast DDS serialises it. Right after a model call, with cold caches, that
was the perception node's costliest step after the model (measured in docs/benchmarks.md). The bytes of
an Embedding differ between clips only in the two stamps and the vector, so they are laid out once per
(camera, frame_id, query, ...) and then patched; ``Publisher.publish(bytes)`` hands them to the middleware
as they are. The layout is CDR as ROS 2 writes it (little-endian, 4-byte encapsulation header, alignment
counted from after it, padding written as zeros). The tests have rclpy read the bytes back for random field
values and compare with the message it would have sent, so a change of Embedding.msg that this module does
not follow fails them.

No rclpy import: it writes bytes only (vljepa_msgs only for the kind constants).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from vljepa_msgs.msg import Embedding
from vljepa_ros.perception.results import EmbeddingResult

_CDR_LITTLE_ENDIAN = b"\x00\x01\x00\x00"
_STAMP = struct.Struct("<iI")
_FLOAT32 = np.dtype("<f4")
TEMPLATE_CACHE_SIZE = 64  # layouts kept (cameras x kinds x queries); the cache starts over beyond this


@dataclass(frozen=True)
class _Layout:
    """The bytes of one Embedding up to its vector, and where the two stamps go."""

    prefix: bytes
    stamp_at: int
    clip_start_at: int


class _CdrWriter:
    """Appends CDR fields to a buffer, aligning each to its size relative to the data start."""

    def __init__(self):
        self.data = bytearray()

    def align(self, size: int) -> None:
        self.data.extend(b"\0" * (-len(self.data) % size))

    def uint8(self, value: int) -> None:
        self.data.append(value)

    def uint32(self, value: int) -> None:
        self.align(4)
        self.data.extend(struct.pack("<I", value))

    def string(self, text: str) -> None:
        encoded = text.encode()
        self.uint32(len(encoded) + 1)  # the length counts the terminating NUL
        self.data.extend(encoded + b"\0")

    def reserve_stamp(self) -> int:
        """Room for a builtin_interfaces/Time (int32 sec, uint32 nanosec); returns its offset."""
        self.align(4)
        at = len(self.data)
        self.data.extend(b"\0" * _STAMP.size)
        return at


def _layout(kind: int, result: EmbeddingResult, query: str, dim: int) -> _Layout:
    w = _CdrWriter()
    stamp_at = w.reserve_stamp()  # header.stamp
    w.string(result.frame_id)  # header.frame_id
    w.uint8(kind)
    w.string(result.camera)
    w.string(result.model_id)
    w.string(result.model_version)
    w.string(query)
    clip_start_at = w.reserve_stamp()
    w.uint32(result.num_frames)
    w.uint32(1)  # shape: one dimension
    w.uint32(dim)
    w.uint8(1)  # normalized: every vector the runtime returns is unit length
    w.uint32(dim)  # data: dim float32 values follow, already 4-aligned
    offset = len(_CDR_LITTLE_ENDIAN)
    return _Layout(_CDR_LITTLE_ENDIAN + bytes(w.data), stamp_at + offset, clip_start_at + offset)


class EmbeddingSerializer:
    """CDR bytes of the Embedding messages the perception node publishes, equal to serialising
    ``ros_conversions.predicted_embedding_msg(result)`` / ``visual_state_msg(result)``.

    Not thread-safe: one publishing thread (the node's worker).
    """

    def __init__(self):
        self._layouts: dict[tuple, _Layout] = {}

    def predicted(self, result: EmbeddingResult) -> bytes:
        """The ~/embedding message of ``result`` (Embedding.KIND_PREDICTED, its query)."""
        return self._serialise(Embedding.KIND_PREDICTED, result, result.query, result.embedding)

    def visual_state(self, result: EmbeddingResult) -> bytes:
        """The ~/visual_embedding message of ``result`` (KIND_VISUAL_STATE, no query); needs its visual_state."""
        return self._serialise(Embedding.KIND_VISUAL_STATE, result, "", result.visual_state)

    def _serialise(self, kind: int, result: EmbeddingResult, query: str, vector: np.ndarray) -> bytes:
        if vector.dtype != _FLOAT32 or vector.ndim != 1 or not vector.flags.c_contiguous:
            vector = np.ascontiguousarray(vector, dtype=_FLOAT32).reshape(-1)
        key = (
            kind,
            result.camera,
            result.frame_id,
            query,
            result.model_id,
            result.model_version,
            result.num_frames,
            vector.shape[0],
        )
        layout = self._layouts.get(key)
        if layout is None:
            if len(self._layouts) >= TEMPLATE_CACHE_SIZE:
                self._layouts.clear()
            layout = self._layouts[key] = _layout(kind, result, query, vector.shape[0])
        out = bytearray(layout.prefix)
        _STAMP.pack_into(out, layout.stamp_at, *divmod(result.stamp_ns, 1_000_000_000))
        _STAMP.pack_into(out, layout.clip_start_at, *divmod(result.clip_start_ns, 1_000_000_000))
        out += vector.data
        return bytes(out)
