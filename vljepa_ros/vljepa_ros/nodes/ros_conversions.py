"""ROS message <-> core types: stamps as integer nanoseconds, images as RGB arrays, results as vljepa_msgs.

The message builders of both nodes live here (embeddings, transitions, captions, decode statistics), so the
replay tool writes exactly what the nodes publish without importing a node. Float vectors go into messages as
``array.array('f')`` built from the array's bytes: assigning an ndarray to a sequence field takes rclpy's much
slower per-element path (see docs/benchmarks.md).
"""

from __future__ import annotations

import array

import numpy as np
from builtin_interfaces.msg import Time
from std_msgs.msg import Header

from vljepa_msgs.msg import Caption, DecodeStatistics, Embedding, WorldStateTransition
from vljepa_ros.decoding.pipeline import CaptionEvent, StreamStatistics
from vljepa_ros.perception.config import DEFAULT_FRAME_LIMITS, ConfigError, FrameLimits
from vljepa_ros.perception.image_conversion import (
    ImageConversionError,
    check_compressed_header,
    check_image,
    compressed_to_rgb,
    image_to_rgb,
)
from vljepa_ros.perception.results import EmbeddingResult, TransitionResult

NS_PER_S = 1_000_000_000
# builtin_interfaces/Time.sec is an int32: a stamp outside it cannot be published.
STAMP_SEC_MIN, STAMP_SEC_MAX = -(2**31), 2**31 - 1
# Malformed-input reason of a stamp no output message could carry (counted as malformed.bad_stamp).
BAD_STAMP = "bad_stamp"
# Node parameters of FrameLimits' fields.
FRAME_LIMIT_PARAMETERS = {"max_pixels": "max_frame_pixels", "max_bytes": "max_frame_bytes"}


def time_to_ns(stamp: Time) -> int:
    """builtin_interfaces/Time -> integer nanoseconds."""
    return stamp.sec * NS_PER_S + stamp.nanosec


def ns_to_time(stamp_ns: int) -> Time:
    """Integer nanoseconds -> builtin_interfaces/Time."""
    sec, nanosec = divmod(int(stamp_ns), NS_PER_S)
    return Time(sec=sec, nanosec=nanosec)


def check_stamp(stamp: Time) -> None:
    """Refuse a stamp that outputs could not copy field for field: nanosec >= 1e9 (a sender that did not
    normalise it) or a sec outside int32. Raises ImageConversionError(BAD_STAMP)."""
    if not 0 <= stamp.nanosec < NS_PER_S or not STAMP_SEC_MIN <= stamp.sec <= STAMP_SEC_MAX:
        raise ImageConversionError(
            BAD_STAMP, f"stamp sec={stamp.sec} nanosec={stamp.nanosec} (nanosec must be < 1e9, sec an int32)"
        )


def frame_limits_from_parameters(values: dict) -> FrameLimits:
    """FrameLimits from the perception node's ``max_frame_pixels`` / ``max_frame_bytes`` (absent: the defaults);
    a ConfigError names the node parameter."""
    fields = {
        field: values.get(parameter, getattr(DEFAULT_FRAME_LIMITS, field))
        for field, parameter in FRAME_LIMIT_PARAMETERS.items()
    }
    try:
        return FrameLimits(**fields)
    except ConfigError as err:
        raise ConfigError(FRAME_LIMIT_PARAMETERS[err.parameter], err.message) from None


def image_msg_to_rgb(msg, limits: FrameLimits = DEFAULT_FRAME_LIMITS) -> np.ndarray:
    """sensor_msgs/Image -> RGB uint8 (H, W, 3); raises ImageConversionError."""
    return image_to_rgb(msg.encoding, msg.height, msg.width, msg.step, bool(msg.is_bigendian), msg.data, limits)


def check_image_msg(msg, limits: FrameLimits = DEFAULT_FRAME_LIMITS) -> None:
    """O(1) validation of a sensor_msgs/Image (no pixel access); raises ImageConversionError."""
    check_image(msg.encoding, msg.height, msg.width, msg.step, bool(msg.is_bigendian), len(msg.data), limits)


def check_compressed_msg(msg, limits: FrameLimits = DEFAULT_FRAME_LIMITS) -> None:
    """Validation of a sensor_msgs/CompressedImage and its PNG/JPEG header, without decoding (cheap enough for
    every arriving frame); raises ImageConversionError. A payload with a sound header may still fail to decode.
    """
    check_compressed_header(msg.format, msg.data, limits)


def compressed_msg_to_rgb(msg, limits: FrameLimits = DEFAULT_FRAME_LIMITS) -> np.ndarray:
    """sensor_msgs/CompressedImage -> RGB uint8 (H, W, 3); raises ImageConversionError."""
    return compressed_to_rgb(msg.format, msg.data, limits)


def float_array(vector: np.ndarray) -> array.array:
    """A float32 vector as the array.array('f') that sequence fields accept without per-element checks."""
    return array.array("f", np.ascontiguousarray(vector, dtype=np.float32).tobytes())


def _set_time(stamp: Time, stamp_ns: int) -> None:
    """Fill a message's own (default-constructed) Time in place: cheaper than building and assigning a new one."""
    stamp.sec, stamp.nanosec = divmod(int(stamp_ns), NS_PER_S)


def _set_header(header: Header, stamp_ns: int, frame_id: str) -> None:
    _set_time(header.stamp, stamp_ns)
    header.frame_id = frame_id


def embedding_msg(result: EmbeddingResult, kind: int, vector: np.ndarray, query: str) -> Embedding:
    """An Embedding message for one vector of ``result`` (``kind``: Embedding.KIND_PREDICTED or KIND_VISUAL_STATE).

    The perception node publishes the same message as CDR bytes (nodes/embedding_cdr.py); the replay tool and
    the tests build it here.
    """
    msg = Embedding()
    _set_header(msg.header, result.stamp_ns, result.frame_id)
    msg.kind = kind
    msg.camera = result.camera
    msg.model_id = result.model_id
    msg.model_version = result.model_version
    msg.query = query
    _set_time(msg.clip_start, result.clip_start_ns)
    msg.num_frames = result.num_frames
    msg.normalized = True
    msg.shape = array.array("I", [vector.shape[0]])
    msg.data = float_array(vector)
    return msg


def predicted_embedding_msg(result: EmbeddingResult) -> Embedding:
    """The predicted embedding for the configured query."""
    return embedding_msg(result, Embedding.KIND_PREDICTED, result.embedding, result.query)


def visual_state_msg(result: EmbeddingResult) -> Embedding:
    """The pooled visual state (requires ``result.visual_state``)."""
    return embedding_msg(result, Embedding.KIND_VISUAL_STATE, result.visual_state, "")


def transition_msg(result: TransitionResult) -> WorldStateTransition:
    """A WorldStateTransition message; header stamp = the newest frame of the 'after' clip."""
    msg = WorldStateTransition()
    _set_header(msg.header, result.stamp_ns, result.frame_id)
    msg.camera = result.camera
    msg.model_id = result.model_id
    msg.model_version = result.model_version
    _set_time(msg.before_stamp, result.before_stamp_ns)
    _set_time(msg.after_stamp, result.stamp_ns)
    msg.state_distance = float(result.state_distance)
    msg.dim = int(result.transition_embedding.shape[0])
    msg.normalized = True
    msg.transition_embedding = float_array(result.transition_embedding)
    msg.action_labels = list(result.action_labels)
    msg.action_scores = float_array(np.asarray(result.action_scores, np.float32))
    return msg


def caption_msg(event: CaptionEvent, model_id: str, model_version: str) -> Caption:
    """vljepa_msgs/Caption for one decoded segment; header stamp = an input stamp inside the segment."""
    msg = Caption()
    msg.header.stamp = ns_to_time(event.stamp_ns)
    msg.header.frame_id = event.frame_id
    msg.camera = event.camera
    msg.model_id = model_id
    msg.model_version = model_version
    msg.text = event.text
    msg.score = float(event.score)
    msg.segment_start = ns_to_time(event.segment_start_ns)
    msg.segment_end = ns_to_time(event.segment_end_ns)
    msg.num_embeddings = int(event.num_embeddings)
    msg.reason = int(event.reason)
    msg.change_score = float(event.change_score)
    msg.alternatives = [text for text, _ in event.alternatives]
    msg.alternative_scores = float_array(np.asarray([s for _, s in event.alternatives], dtype=np.float32))
    return msg


def statistics_msg(stats: StreamStatistics) -> DecodeStatistics:
    """vljepa_msgs/DecodeStatistics for one camera; header stamp = its newest embedding."""
    msg = DecodeStatistics()
    msg.header.stamp = ns_to_time(stats.last_stamp_ns)
    msg.header.frame_id = stats.frame_id
    msg.camera = stats.camera
    msg.embeddings_seen = stats.embeddings_seen
    msg.decodes = stats.decodes
    msg.stream_seconds = stats.stream_seconds
    msg.decodes_per_minute = stats.decodes_per_minute
    msg.uniform_rate_hz = stats.uniform_rate_hz
    msg.uniform_decodes = stats.uniform_decodes
    msg.reduction_factor = stats.reduction_factor
    return msg


def embedding_from_msg(msg: Embedding) -> np.ndarray:
    """The vector of an Embedding message as float32 (zero-copy view of the message data)."""
    return np.frombuffer(msg.data, dtype=np.float32)
