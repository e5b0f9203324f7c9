"""Validated settings of the perception pipeline and node (frozen dataclasses, checked once at the edge).

Every check raises ConfigError naming the parameter, so a bad YAML file or ``-p name:=value`` gets a one-line
answer instead of a traceback deep in the worker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

QOS_PRESETS = ("SENSOR_DATA", "DEFAULT", "SYSTEM_DEFAULT")
CAMERA_TYPES = ("auto", "image", "compressed")
# When transitions are computed (perception/transition_policy.py): while read, or for every clip.
TRANSITIONS_ON_SUBSCRIPTION, TRANSITIONS_ALWAYS = "on_subscription", "always"
TRANSITION_MODES = (TRANSITIONS_ON_SUBSCRIPTION, TRANSITIONS_ALWAYS)
# Final topic segments that name the stream rather than the camera ("/front/image_raw" is camera "front").
_STREAM_SEGMENTS = ("image_raw", "image", "image_rect", "image_rect_color", "image_color", "compressed")


class ConfigError(ValueError):
    """An invalid setting; ``parameter`` is the name of the offending parameter."""

    def __init__(self, parameter: str, message: str):
        super().__init__(f"parameter '{parameter}': {message}")
        self.parameter = parameter
        self.message = message


@dataclass(frozen=True)
class PipelineConfig:
    """What the plain-Python perception pipeline needs (shared by the node, the replay tool and benchmarks).

    ``frame_rate_hz`` None: the manifest's clip.frame_rate_hz. ``query`` / ``transition_query`` None: the
    manifest's default queries. ``transition_horizon_s`` 0 disables transitions. ``action_vocabulary`` empty:
    the model's whole action bank.
    """

    frame_rate_hz: float | None = None
    stride: int = 1
    queue_depth: int = 1
    max_batch: int = 8
    query: str | None = None
    transition_query: str | None = None
    transition_horizon_s: float = 2.0
    compute_transitions: str = TRANSITIONS_ON_SUBSCRIPTION
    top_k: int = 3
    publish_visual_state: bool = True
    action_vocabulary: tuple[str, ...] = ()

    def __post_init__(self):
        if self.frame_rate_hz is not None and not (math.isfinite(self.frame_rate_hz) and self.frame_rate_hz > 0):
            raise ConfigError("frame_rate_hz", f"must be > 0 (or unset for the model's rate), got {self.frame_rate_hz}")
        _positive_int("stride", self.stride)
        _positive_int("queue_depth", self.queue_depth)
        _positive_int("max_batch", self.max_batch)
        _positive_int("top_k", self.top_k)
        if not (math.isfinite(self.transition_horizon_s) and self.transition_horizon_s >= 0):
            raise ConfigError("transition_horizon_s", f"must be >= 0 (0 disables), got {self.transition_horizon_s}")
        if self.compute_transitions not in TRANSITION_MODES:
            raise ConfigError(
                "compute_transitions", f"must be {'|'.join(TRANSITION_MODES)}, got {self.compute_transitions!r}"
            )
        for name in ("query", "transition_query"):
            value = getattr(self, name)
            if value is not None:
                check_query(name, value)
        check_vocabulary("action_vocabulary", self.action_vocabulary)


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(name, f"must be an integer >= 1, got {value!r}")


@dataclass(frozen=True)
class FrameLimits:
    """The largest camera frame image conversion accepts, checked from headers before any pixel is allocated.

    ``max_pixels`` (declared width x height) defaults to 4096 x 4096: it admits UHD 3840x2160, DCI 4096x2160 and
    12-16 MP sensors (4000x3000, 4096x3072) while keeping a decoded RGB frame at 48 MiB or less. ``max_bytes``
    (the message's data length) defaults to 64 MiB, which holds an unpadded raw frame of that many pixels at up
    to 4 bytes per pixel (rgba8, 32FC1).
    """

    max_pixels: int = 4096 * 4096
    max_bytes: int = 64 * 2**20

    def __post_init__(self):
        _positive_int("max_pixels", self.max_pixels)
        _positive_int("max_bytes", self.max_bytes)


DEFAULT_FRAME_LIMITS = FrameLimits()


def check_query(name: str, query: str) -> str:
    """A query must be non-empty text; returns it stripped."""
    if not isinstance(query, str) or not query.strip():
        raise ConfigError(name, f"must be a non-empty string, got {query!r}")
    return query.strip()


def check_vocabulary(name: str, texts) -> tuple[str, ...]:
    """A vocabulary is distinct non-empty strings (empty tuple: use the model's bank)."""
    texts = tuple(texts)
    bad = [t for t in texts if not isinstance(t, str) or not t.strip()]
    if bad:
        raise ConfigError(name, f"entries must be non-empty strings, got {bad[:3]!r}")
    duplicates = sorted({t for t in texts if texts.count(t) > 1})
    if duplicates:
        raise ConfigError(name, f"duplicate entries {duplicates[:3]!r}")
    return texts


@dataclass(frozen=True)
class CameraConfig:
    """One input camera: a name for outputs and diagnostics, its topic, and its message type."""

    name: str
    topic: str
    compressed: bool


# Longest camera name (UTF-8 bytes), for both nodes (the decoder's core imports it): a name is copied into every
# output message and /diagnostics status of its camera, so its size is bounded where it enters.
MAX_CAMERA_NAME_BYTES = 256


def camera_name_from_topic(topic: str) -> str:
    """'/front/image_raw' -> 'front'; '/robot/left/image_raw/compressed' -> 'robot_left'; '/cam' -> 'cam'."""
    parts = [p for p in topic.split("/") if p]
    while len(parts) > 1 and parts[-1] in _STREAM_SEGMENTS:
        parts.pop()
    return "_".join(parts)


def cameras_from_parameters(topics, types=(), names=()) -> tuple[CameraConfig, ...]:
    """Build camera configs from the node's parallel list parameters ``camera_topics``, ``camera_types``
    (each auto/image/compressed; auto means compressed when the topic ends in '/compressed'; an empty list
    means all auto) and ``camera_names`` (empty: derived from the topics)."""
    # rclpy gives None for an empty list (`camera_topics:=[]`): its type cannot be told from no elements.
    topics, types, names = list(topics or ()), list(types or ()), list(names or ())
    if not topics or any(not isinstance(t, str) or not t.strip() for t in topics):
        raise ConfigError("camera_topics", f"needs at least one non-empty topic name, got {topics!r}")
    if len(set(topics)) != len(topics):
        raise ConfigError("camera_topics", f"lists a topic twice: {topics!r}")
    if types and len(types) != len(topics):
        raise ConfigError("camera_types", f"has {len(types)} entries for {len(topics)} camera_topics")
    if names and len(names) != len(topics):
        raise ConfigError("camera_names", f"has {len(names)} entries for {len(topics)} camera_topics")
    cameras = []
    for i, topic in enumerate(topics):
        kind = types[i] if types else "auto"
        if kind not in CAMERA_TYPES:
            raise ConfigError("camera_types", f"entry {kind!r} is not one of {', '.join(CAMERA_TYPES)}")
        compressed = topic.rstrip("/").endswith("/compressed") if kind == "auto" else kind == "compressed"
        name = names[i] if names else camera_name_from_topic(topic)
        if not name:
            raise ConfigError("camera_names", f"entry {i} is empty")
        size = len(name.encode("utf-8", "surrogatepass"))
        if size > MAX_CAMERA_NAME_BYTES:
            source = "camera_names" if names else "camera_topics"
            raise ConfigError(
                source,
                f"entry {i} gives a camera name of {size} bytes (UTF-8), over the limit of {MAX_CAMERA_NAME_BYTES}"
                + ("" if names else "; set camera_names"),
            )
        cameras.append(CameraConfig(name=name, topic=topic, compressed=compressed))
    seen = [c.name for c in cameras]
    if len(set(seen)) != len(seen):
        raise ConfigError("camera_names", f"camera names must be distinct, got {seen!r} (set camera_names)")
    return tuple(cameras)


@dataclass(frozen=True)
class QosConfig:
    """A QoS preset name plus history depth."""

    preset: str
    depth: int

    @staticmethod
    def parse(parameter: str, preset: str, depth: int) -> QosConfig:
        """Validate a preset string (case-insensitive) and depth; errors name ``parameter`` / ``parameter_depth``."""
        normalised = str(preset).strip().upper()
        if normalised not in QOS_PRESETS:
            raise ConfigError(parameter, f"{preset!r} is not one of {', '.join(QOS_PRESETS)}")
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ConfigError(f"{parameter}_depth", f"must be an integer >= 1, got {depth!r}")
        return QosConfig(normalised, depth)


@dataclass(frozen=True)
class NodeConfig:
    """Everything the perception node reads from its parameters, validated."""

    model_manifest: str
    providers: tuple[str, ...]
    cameras: tuple[CameraConfig, ...]
    input_qos: QosConfig
    output_qos: QosConfig
    stall_timeout_s: float
    diagnostics_period_s: float
    enabled: bool
    pipeline: PipelineConfig

    def __post_init__(self):
        if not self.model_manifest:
            raise ConfigError("model_manifest", "is empty")
        if not self.providers:
            raise ConfigError("providers", "needs at least one of tensorrt, cuda, cpu")
        for name in ("stall_timeout_s", "diagnostics_period_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(name, f"must be a finite number > 0, got {value}")
