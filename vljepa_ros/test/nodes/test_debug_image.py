"""The perception node's ~/debug_image/<camera> over real rclpy + DDS: drawn and published only while subscribed,
stamped like the frame it shows, with the caption the decoder published for the camera."""

import time

import cv2
import numpy as np
import pytest
import rclpy
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from vljepa_msgs.msg import Caption, Embedding
from vljepa_ros.nodes import debug_image
from vljepa_ros.nodes.debug_image import rgb8_image_msg
from vljepa_ros.nodes.perception_node import PerceptionNode
from vljepa_ros.nodes.ros_conversions import image_msg_to_rgb, ns_to_time, time_to_ns
from vljepa_ros.nodes.spinning import NodeSpinner
from vljepa_ros.perception.config import ConfigError
from vljepa_ros.perception.debug_overlay import MIN_WIDTH

from support.camera_messages import PERIOD_NS, rgb8_msg
from support.perception_fixtures import moving_frame, preferred_manifest
from support.polling import wait_until

pytestmark = pytest.mark.ros

NODE = "/vljepa_perception"
CAMERA_TOPIC = "/cam_a/image_raw"
DEBUG_TOPIC = f"{NODE}/debug_image/cam_a"
FRAME_ID = "cam_a_optical"


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return str(preferred_manifest(tmp_path_factory))


@pytest.fixture
def draw_calls(monkeypatch):
    """Every debug image drawn in the node, as (state, picture) (the real drawing runs)."""
    calls = []
    real = debug_image.draw_overlay

    def counting(rgb, state):
        calls.append((state, real(rgb, state)))
        return calls[-1][1]

    monkeypatch.setattr(debug_image, "draw_overlay", counting)
    return calls


class Rig:
    """The perception node on one raw camera, plus a helper node publishing frames and captions."""

    def __init__(self, manifest, **params):
        defaults = dict(
            model_manifest=manifest,
            providers=["cpu"],
            camera_topics=[CAMERA_TOPIC],
            input_qos="DEFAULT",
            input_qos_depth=200,
            queue_depth=100,
            transition_horizon_s=1.0,
        )
        defaults.update(params)
        self.perception = PerceptionNode(parameter_overrides=[Parameter(k, value=v) for k, v in defaults.items()])
        self.node = rclpy.create_node("debug_image_test_rig")
        self.camera = self.node.create_publisher(Image, CAMERA_TOPIC, 200)
        self.captions = self.node.create_publisher(Caption, f"{NODE}/caption", 10)
        self.embeddings, self.images = [], []
        self.node.create_subscription(Embedding, f"{NODE}/embedding", self.embeddings.append, 100)
        self.image_sub = None
        self.spinner = NodeSpinner([self.perception, self.node])
        self.spinner.start()
        self.published = []
        assert wait_until(
            lambda: self.camera.get_subscription_count() and self.node.count_publishers(f"{NODE}/embedding"), 20.0
        )
        time.sleep(0.3)  # discovery of the reverse direction (outputs) settles

    def close(self):
        self.spinner.shutdown()
        self.perception.destroy_node()
        self.node.destroy_node()

    def debug_subscribers(self) -> bool:
        return self.perception._debug.wanted("cam_a")

    def watch(self):
        """Subscribe to the debug image, as RViz would; returns once the node sees the subscriber."""
        self.image_sub = self.node.create_subscription(Image, DEBUG_TOPIC, self.images.append, 10)
        assert wait_until(lambda: self.debug_subscribers(), 20.0)
        time.sleep(0.3)

    def unwatch(self):
        self.node.destroy_subscription(self.image_sub)
        assert wait_until(lambda: not self.debug_subscribers(), 20.0)

    def publish(self, seconds):
        """`seconds` of 30 Hz frames, about 4x faster than real time; stamps go on from the last call's (a gap
        would restart the clips) and start at the wall clock."""
        start_ns = self.published[-1] + PERIOD_NS if self.published else time.time_ns()
        for i in range(int(seconds * 1e9 / PERIOD_NS)):
            stamp = start_ns + i * PERIOD_NS
            self.camera.publish(rgb8_msg(moving_frame(stamp / 1e9), stamp, FRAME_ID))
            self.published.append(stamp)
            time.sleep(PERIOD_NS / 4e9)


@pytest.fixture
def rig(ros, manifest):
    rig = Rig(manifest)
    yield rig
    rig.close()


def test_nothing_is_drawn_without_a_subscriber_and_images_follow_a_subscriber(rig, draw_calls):
    rig.publish(3.0)
    start = rig.published[0]
    assert wait_until(lambda: len(rig.embeddings) >= 3, 30.0)
    assert not rig.debug_subscribers()
    assert draw_calls == [], "a debug image was drawn while nobody subscribed"

    rig.watch()
    caption = Caption(camera="cam_a", text="a red square moves right", score=0.8)
    caption.header.stamp = ns_to_time(start + 2 * 10**9)
    rig.captions.publish(caption)
    rig.captions.publish(Caption(camera="someone_else", text="ignored"))
    assert wait_until(lambda: rig.perception._debug.state("cam_a", start).caption == caption.text, 20.0)
    rig.publish(3.0)
    assert wait_until(lambda: len(rig.images) >= 5, 30.0)
    drawn = len(draw_calls)
    assert drawn >= len(rig.images)
    for msg in rig.images:
        assert time_to_ns(msg.header.stamp) in rig.published  # the sampled frame's stamp, copied
        assert msg.header.frame_id == FRAME_ID
        assert msg.encoding == "rgb8" and msg.width == MIN_WIDTH and msg.step == MIN_WIDTH * 3
        assert len(msg.data) == msg.height * msg.step
    states = [state for state, _ in draw_calls]
    assert {state.caption for state in states} == {caption.text}
    assert {state.camera for state in states} == {"cam_a"}
    assert any(state.change_score is not None and state.top_action for state in states)
    assert all(state.input_hz > 0 for state in states)
    assert rig.perception._debug.state("someone_else", start).caption is None

    rig.unwatch()
    drawn = len(draw_calls)
    embeddings = len(rig.embeddings)
    rig.publish(2.0)
    assert wait_until(lambda: len(rig.embeddings) >= embeddings + 3, 30.0)
    assert len(draw_calls) == drawn, "drawing went on after the subscriber left"


def test_the_published_picture_is_the_drawn_sampled_frame(rig, draw_calls):
    rig.watch()
    rig.publish(3.0)
    assert wait_until(lambda: len(rig.images) >= 2, 30.0)
    msg = rig.images[-1]
    shown = image_msg_to_rgb(msg)
    assert any(np.array_equal(shown, picture) for _, picture in draw_calls)
    # Between the bands: the frame with the message's stamp, scaled up; the bands differ from it.
    plain = cv2.resize(moving_frame(time_to_ns(msg.header.stamp) / 1e9), shown.shape[1::-1])
    middle = slice(shown.shape[0] // 3, 2 * shown.shape[0] // 3)
    assert np.array_equal(shown[middle], plain[middle])
    assert not np.array_equal(shown[:20], plain[:20]) and not np.array_equal(shown[-20:], plain[-20:])


def test_debug_image_false_creates_no_topic_and_no_caption_subscription(ros, manifest):
    rig = Rig(manifest, debug_image=False)
    try:
        names = {name for name, _ in rig.perception.get_topic_names_and_types()}
        assert rig.perception._debug is None
        assert not any("debug_image" in name for name in names)
        assert not any(s.topic_name.endswith("/caption") for s in rig.perception.subscriptions)
    finally:
        rig.close()


def test_a_camera_name_that_cannot_be_a_topic_is_refused_naming_the_parameter(ros, manifest):
    with pytest.raises(ConfigError, match="camera_names"):
        PerceptionNode(
            parameter_overrides=[
                Parameter("model_manifest", value=manifest),
                Parameter("providers", value=["cpu"]),
                Parameter("camera_topics", value=[CAMERA_TOPIC]),
                Parameter("camera_names", value=["front camera"]),
            ]
        )


def test_rgb8_image_msg_round_trips_and_copies_the_header():
    rgb = np.random.default_rng(1).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    header = Header(stamp=ns_to_time(1_700_000_000_123_456_789), frame_id="cam")
    msg = rgb8_image_msg(rgb, header)
    assert (msg.height, msg.width, msg.step, msg.encoding) == (7, 5, 15, "rgb8")
    assert msg.header.stamp == header.stamp and msg.header.frame_id == "cam"
    assert np.array_equal(image_msg_to_rgb(msg), rgb)
