"""The perception node's debug images: ``~/debug_image/<camera>`` (sensor_msgs/Image, rgb8), one topic per camera.

Each sampled frame of a camera whose debug topic has a subscriber is drawn by perception/debug_overlay.py with
the camera's current state and published with the frame's stamp and frame_id. Without a subscriber nothing is
kept, drawn or published: the node asks ``wanted`` (the publisher's subscription count) before any of it.

The state drawn: the newest caption of the camera from ``~/caption`` (vljepa_msgs/Caption; the launch file and
bringup remap it to the decoder's ``vljepa_decoder/caption``), the newest world-state transition (change score
and top action), and the camera's input/output rates and median latencies from the pipeline's statistics.
``~/caption`` is subscribed for as long as debug images are on, not only while someone watches: the decoder
publishes a caption only when the scene's meaning changes, so a subscription made on demand would show no
caption until the next change. Keeping the newest caption per camera is one assignment per caption; captions
naming a camera this node does not serve are ignored, so a publisher cannot make the table grow.
"""

from __future__ import annotations

import array
from collections.abc import Callable, Sequence

import numpy as np
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from vljepa_msgs.msg import Caption
from vljepa_ros.nodes.ros_conversions import time_to_ns
from vljepa_ros.perception.config import CameraConfig, ConfigError
from vljepa_ros.perception.debug_overlay import OverlayState, draw_overlay
from vljepa_ros.perception.pipeline import PerceptionPipeline
from vljepa_ros.perception.results import TransitionResult

TOPIC_PREFIX = "~/debug_image/"
CAPTION_TOPIC = "~/caption"
# Best effort matches caption writers of either reliability; captions are small and rare.
CAPTION_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)


def rgb8_image_msg(rgb: np.ndarray, header: Header) -> Image:
    """sensor_msgs/Image (rgb8, unpadded rows) of an RGB uint8 (H, W, 3) array, with ``header``'s stamp and
    frame_id. The pixels go in as one array.array copy: an ndarray takes rclpy's per-element path."""
    rgb = np.ascontiguousarray(rgb)
    msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", is_bigendian=0, step=rgb.shape[1] * 3)
    msg.header.stamp = header.stamp
    msg.header.frame_id = header.frame_id
    data = array.array("B")
    data.frombytes(memoryview(rgb).cast("B"))
    msg.data = data
    return msg


class DebugImages:
    """The debug-image publishers of one node's cameras, the ``~/caption`` subscription and the state drawn.

    ``create_publisher(msg_type, topic, qos)`` / ``destroy_publisher`` are the node's (a managed node passes
    its lifecycle publishers). Raises ConfigError (camera_names) when a camera name cannot be a topic name.
    Thread use: ``wanted`` and ``publish`` run in the camera callbacks, ``on_transitions`` on the worker; the
    newest caption and transition per camera are single dict entries replaced whole.
    """

    def __init__(
        self,
        node,
        pipeline: PerceptionPipeline,
        cameras: Sequence[CameraConfig],
        qos: QoSProfile,
        create_publisher: Callable,
        destroy_publisher: Callable,
    ):
        self._node = node
        self._pipeline = pipeline
        self._destroy_publisher = destroy_publisher
        self._captions: dict[str, Caption] = {}
        self._transitions: dict[str, TransitionResult] = {}
        self._publishers = {}
        self._caption_sub = None
        for camera in cameras:
            topic = TOPIC_PREFIX + camera.name
            try:
                node.resolve_topic_name(topic)
            except Exception as err:  # rclpy raises its own exception types for invalid names
                self.destroy()
                raise ConfigError(
                    "camera_names",
                    f"camera {camera.name!r} cannot name its debug image topic {topic!r} ({err}); "
                    "set camera_names or debug_image:=false",
                ) from None
            self._publishers[camera.name] = create_publisher(Image, topic, qos)
        self._caption_sub = node.create_subscription(Caption, CAPTION_TOPIC, self._on_caption, CAPTION_QOS)

    def topics(self) -> list[str]:
        """The resolved debug image topics, in camera order (for the node's log)."""
        return [publisher.topic_name for publisher in self._publishers.values()]

    def caption_topic(self) -> str:
        """The resolved caption input (remaps applied)."""
        return self._caption_sub.topic_name

    def wanted(self, camera: str) -> bool:
        """Whether anyone subscribes to ``camera``'s debug image (ask before converting or drawing anything)."""
        return self._publishers[camera].get_subscription_count() > 0

    def on_transitions(self, transitions: Sequence[TransitionResult]) -> None:
        """Remember the newest transition of each camera (called with every batch, subscribed or not)."""
        for transition in transitions:
            self._transitions[transition.camera] = transition

    def state(self, camera: str, stamp_ns: int) -> OverlayState:
        """What is drawn on ``camera``'s frame stamped ``stamp_ns``."""
        caption = self._captions.get(camera)
        transition = self._transitions.get(camera)
        pipeline = self._pipeline
        with pipeline.lock:  # the worker and the callbacks update these statistics concurrently
            stats = pipeline.stats_for(camera)
            now_ns = pipeline.clock_ns()
            input_hz, output_hz = stats.input_rate.rate_hz(now_ns), stats.output_rate.rate_hz(now_ns)
            latency_s, processing_s = stats.latency.percentile(50), stats.processing.percentile(50)
        top = transition is not None and len(transition.action_labels) > 0
        return OverlayState(
            camera=camera,
            caption=None if caption is None else caption.text,
            caption_score=None if caption is None else float(caption.score),
            caption_age_s=None if caption is None else (stamp_ns - time_to_ns(caption.header.stamp)) / 1e9,
            change_score=None if transition is None else transition.state_distance,
            top_action=transition.action_labels[0] if top else None,
            top_action_score=transition.action_scores[0] if top else None,
            input_hz=input_hz,
            output_hz=output_hz if stats.output_rate.total else None,
            latency_s=latency_s,
            processing_s=processing_s,
        )

    def publish(self, camera: str, header: Header, rgb: np.ndarray) -> None:
        """Draw ``camera``'s state on the frame ``rgb`` and publish it with ``header``'s stamp and frame_id."""
        image = draw_overlay(rgb, self.state(camera, time_to_ns(header.stamp)))
        self._publishers[camera].publish(rgb8_image_msg(image, header))

    def destroy(self) -> None:
        """Destroy the publishers and the caption subscription (safe to call twice)."""
        for publisher in self._publishers.values():
            self._destroy_publisher(publisher)
        self._publishers = {}
        if self._caption_sub is not None:
            self._node.destroy_subscription(self._caption_sub)
            self._caption_sub = None

    def _on_caption(self, msg: Caption) -> None:
        if msg.camera in self._publishers:
            self._captions[msg.camera] = msg
