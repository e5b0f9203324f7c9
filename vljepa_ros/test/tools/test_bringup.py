"""bringup: both nodes in one process from config/vljepa.yaml, wired over real DDS: frames in, captions out."""

import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import numpy as np
import pytest
import rclpy
from rclpy.action import ActionClient
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from vljepa_msgs.action import PlanToGoal
from vljepa_msgs.msg import Caption, Embedding
from vljepa_ros.nodes.ros_conversions import ns_to_time, time_to_ns
from vljepa_ros.tools.bringup import Bringup, BringupOptions, build_parser, options_from_args, rclpy_args
from vljepa_ros.tools.params_file import default_params_file, node_parameters

from support.perception_fixtures import tiny_random_manifest
from support.polling import wait_until

pytestmark = pytest.mark.ros

CAMERA = "/bringup_test/image_raw"
PERIOD_NS = 100_000_000
T0_NS = 1_700_000_000_000_000_000


@contextmanager
def bringup_in_own_context(options: BringupOptions, ros_args=()):
    """rclpy initialised in a context of its own with bringup's arguments, and a Bringup in it; both torn
    down afterwards, whatever the test did."""
    context = rclpy.Context()
    rclpy.init(args=rclpy_args(options, ros_args), context=context)
    bringup = None
    try:
        bringup = Bringup(options, context=context)
        yield bringup, context
    finally:
        if bringup is not None:
            bringup.destroy()
        rclpy.try_shutdown(context=context)


@contextmanager
def spinning_rig(context, name: str):
    """A test node in `context`, spun by its own executor thread; stopped and destroyed afterwards."""
    rig = rclpy.create_node(name, context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(rig)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        yield rig
    finally:
        executor.shutdown()
        spinner.join(timeout=5)
        rig.destroy_node()


def _image(index: int) -> Image:
    message = Image()
    message.header.stamp = ns_to_time(T0_NS + index * PERIOD_NS)
    message.header.frame_id = "test_optical_frame"
    message.height, message.width, message.encoding, message.step = 48, 64, "rgb8", 64 * 3
    # The scene switches colour halfway, so there is something to caption twice at most.
    frame = np.full((48, 64, 3), (200, 30, 30) if index < 30 else (30, 30, 200), np.uint8)
    frame[10:20, (index % 40) : (index % 40) + 8] = 255
    message.data = frame.tobytes()
    return message


def test_nodes_start_from_the_yaml_and_caption_a_camera(tmp_path_factory):
    manifest = str(tiny_random_manifest(tmp_path_factory))
    options = BringupOptions(camera_topics=(CAMERA,), model_manifest=manifest)
    with bringup_in_own_context(options) as (bringup, context):
        bringup.spin_in_background()
        # Values come from config/vljepa.yaml, overrides from the options.
        perception = node_parameters(default_params_file(), "vljepa_perception")
        decoder = node_parameters(default_params_file(), "vljepa_decoder")
        assert bringup.perception.get_parameter("transition_horizon_s").value == perception["transition_horizon_s"]
        assert bringup.perception.get_parameter("camera_topics").value == [CAMERA]
        assert bringup.perception.get_parameter("model_manifest").value == manifest
        assert bringup.decoder.get_parameter("threshold").value == decoder["threshold"]

        with spinning_rig(context, "bringup_test_rig") as rig:
            publisher = rig.create_publisher(Image, CAMERA, qos_profile_sensor_data)
            embeddings, captions = [], []
            rig.create_subscription(Embedding, "/vljepa_perception/embedding", embeddings.append, 100)
            rig.create_subscription(Caption, "/vljepa_decoder/caption", captions.append, 100)
            assert wait_until(lambda: publisher.get_subscription_count() > 0, 10)
            assert wait_until(lambda: rig.count_publishers("/vljepa_decoder/caption") > 0, 10)
            sent = []
            for index in range(60):
                message = _image(index)
                sent.append(time_to_ns(message.header.stamp))
                publisher.publish(message)
                time.sleep(0.03)
            assert wait_until(lambda: len(captions) >= 1 and len(embeddings) >= 5, 30)

    assert {time_to_ns(m.header.stamp) for m in embeddings} <= set(sent)
    assert all(m.header.frame_id == "test_optical_frame" and m.camera == "bringup_test" for m in embeddings)
    first = captions[0]
    assert first.reason == Caption.REASON_FIRST and first.text
    assert time_to_ns(first.header.stamp) in {time_to_ns(m.header.stamp) for m in embeddings}


def test_bad_configuration_is_refused_with_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "vljepa_ros.tools.bringup", "--model", str(tmp_path / "missing.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("bringup: refusing to start:") and "model_manifest" in lines[-1]
    result = subprocess.run(
        [sys.executable, "-m", "vljepa_ros.tools.bringup", "--camera-names", "a"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "camera_names" in result.stderr


def test_the_yaml_applies_in_a_namespace(tmp_path, tmp_path_factory):
    """A robot runs the nodes under a namespace: the file's values must still reach them, and the decoder must
    listen to the perception node of its own namespace."""
    params = tmp_path / "vljepa.yaml"
    params.write_text(default_params_file().read_text().replace("    top_k: 3\n", "    top_k: 5\n"))
    assert node_parameters(params, "vljepa_perception")["top_k"] == 5
    options = BringupOptions(params_file=params, model_manifest=str(tiny_random_manifest(tmp_path_factory)))
    with bringup_in_own_context(options, ["--ros-args", "-r", "__ns:=/robot1"]) as (bringup, _):
        assert bringup.perception.get_fully_qualified_name() == "/robot1/vljepa_perception"
        assert bringup.perception.get_parameter("top_k").value == 5
        assert {s.topic_name for s in bringup.decoder.subscriptions} == {"/robot1/vljepa_perception/embedding"}
        # The debug images' captions come from the decoder in the same namespace.
        assert "/robot1/vljepa_decoder/caption" in {s.topic_name for s in bringup.perception.subscriptions}


def test_lifecycle_bringup_configures_and_activates_the_managed_node_from_the_same_description(tmp_path_factory):
    from vljepa_ros.nodes.perception_lifecycle_node import PerceptionLifecycleNode

    manifest = str(tiny_random_manifest(tmp_path_factory))
    options = BringupOptions(camera_topics=(CAMERA,), model_manifest=manifest, lifecycle=True)
    with bringup_in_own_context(options) as (bringup, _):
        assert isinstance(bringup.perception, PerceptionLifecycleNode)
        assert bringup.perception.pipeline is not None  # configured: the model is loaded
        assert CAMERA in {s.topic_name for s in bringup.perception.subscriptions}  # active: cameras subscribed
        assert bringup.decoder.get_parameter("model_manifest").value == manifest


def test_bringup_world_model_starts_the_world_model_node_on_the_first_camera(tmp_path_factory):
    args = ["--world-model", "--no-decoder", "--camera-topics", CAMERA, "--ee-state-topic", "/bringup_test/ee_state"]
    args += ["--model", str(tiny_random_manifest(tmp_path_factory))]
    options = options_from_args(build_parser().parse_args(args))
    assert options.world_model and options.ee_state_topic == "/bringup_test/ee_state"
    with bringup_in_own_context(options) as (bringup, context):
        bringup.spin_in_background()
        assert bringup.world_model.get_name() == "vljepa_world_model"
        assert bringup.world_model.get_parameter("cem.samples").value == 400  # from config/vljepa.yaml
        with spinning_rig(context, "bringup_world_model_rig") as rig:

            def graph_has_world_model() -> bool:
                topics = dict(rig.get_topic_names_and_types())
                subscribers = {i.node_name for i in rig.get_subscriptions_info_by_topic(CAMERA)}
                states = {i.node_name for i in rig.get_subscriptions_info_by_topic("/bringup_test/ee_state")}
                return (
                    topics.get("/vljepa_world_model/surprise") == ["vljepa_msgs/msg/Surprise"]
                    and {"vljepa_perception", "vljepa_world_model"} <= subscribers
                    and "vljepa_world_model" in states
                )

            assert wait_until(graph_has_world_model, 30)
            client = ActionClient(rig, PlanToGoal, "/vljepa_world_model/plan_to_goal")
            assert client.wait_for_server(timeout_sec=30)
            client.destroy()
