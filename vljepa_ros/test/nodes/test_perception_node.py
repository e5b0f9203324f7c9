"""The perception node over real rclpy + DDS: cameras in, stamped embeddings and transitions out.

A rig node in this process publishes camera frames (stamps spaced like a 30 Hz camera, sent faster than real
time: sampling follows stamps, not arrival) and records what the perception node publishes.
"""

import subprocess
import time

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_srvs.srv import SetBool

from vljepa_msgs.msg import Embedding, WorldStateTransition
from vljepa_ros.nodes.perception_node import PerceptionNode
from vljepa_ros.nodes.ros_conversions import embedding_from_msg, ns_to_time, time_to_ns
from vljepa_ros.nodes.spinning import NodeSpinner
from vljepa_ros.tools.node_process import node_command

from support.camera_messages import PERIOD_NS, jpeg_msg, rgb8_msg
from support.counting_runtime import CountingRuntime
from support.perception_fixtures import moving_frame, preferred_manifest
from support.polling import wait_until

pytestmark = pytest.mark.ros

MS = 1_000_000
NODE = "/vljepa_perception"
CAM_A = "/cam_a/image_raw"
CAM_B = "/cam_b/image_raw/compressed"


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return str(preferred_manifest(tmp_path_factory))


class Rig:
    """The perception node plus a helper node that publishes frames and records outputs, spinning in a thread."""

    def __init__(self, manifest, reliable_input=True, **params):
        defaults = dict(
            model_manifest=manifest,
            providers=["cpu"],
            camera_topics=[CAM_A, CAM_B],
            input_qos="DEFAULT",
            input_qos_depth=200,
            queue_depth=100,
            transition_horizon_s=1.0,
            stall_timeout_s=1.0,
            diagnostics_period_s=0.2,
        )
        defaults.update(params)
        self.perception = PerceptionNode(parameter_overrides=[Parameter(k, value=v) for k, v in defaults.items()])
        self.node = rclpy.create_node("perception_test_rig")
        reliability = ReliabilityPolicy.RELIABLE if reliable_input else ReliabilityPolicy.BEST_EFFORT
        qos = QoSProfile(depth=200, reliability=reliability)
        self.pub_a = self.node.create_publisher(Image, CAM_A, qos)
        self.pub_b = self.node.create_publisher(CompressedImage, CAM_B, qos)
        self.embeddings, self.visual, self.transitions, self.diagnostics = [], [], [], []
        self.node.create_subscription(Embedding, f"{NODE}/embedding", self.embeddings.append, 100)
        self.node.create_subscription(Embedding, f"{NODE}/visual_embedding", self.visual.append, 100)
        self.node.create_subscription(
            WorldStateTransition, f"{NODE}/world_state_transition", self.transitions.append, 100
        )
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)
        self.enable_client = self.node.create_client(SetBool, f"{NODE}/enable")
        self.spinner = NodeSpinner([self.perception, self.node])
        self.spinner.start()
        self.published = {"a": [], "b": []}

    def close(self):
        self.spinner.shutdown()
        self.perception.destroy_node()
        self.node.destroy_node()

    def wait_for(self, condition, timeout_s=20.0):
        return wait_until(condition, timeout_s)

    def wait_connected(self):
        assert self.wait_for(
            lambda: (
                self.pub_a.get_subscription_count()
                and self.pub_b.get_subscription_count()
                and self.node.count_publishers(f"{NODE}/embedding")
            )
        )
        assert self.wait_for(lambda: self.node.count_subscribers(CAM_A) and self.node.count_subscribers(CAM_B))
        time.sleep(0.3)  # discovery of the reverse direction (outputs) settles

    def wait_connected_a(self):
        """``wait_connected`` for a rig whose node subscribes to camera A only."""
        assert self.wait_for(
            lambda: self.pub_a.get_subscription_count() and self.node.count_publishers(f"{NODE}/embedding")
        )
        time.sleep(0.3)

    def publish(self, seconds, start_ns=None, b=True):
        """Publish `seconds` of 30 Hz frames on camera A (rgb8) and B (jpeg), about 4x faster than real time.

        Stamps start at `start_ns` (default: now on the wall clock, as a live camera would stamp).
        """
        start_ns = time.time_ns() if start_ns is None else start_ns
        for i in range(int(seconds * 1e9 / PERIOD_NS)):
            stamp = start_ns + i * PERIOD_NS
            frame = moving_frame(stamp / 1e9)
            self.pub_a.publish(rgb8_msg(frame, stamp, "cam_a_optical"))
            self.published["a"].append(stamp)
            if b:
                self.pub_b.publish(jpeg_msg(frame[:, ::-1], stamp + 7 * MS, "cam_b_optical"))
                self.published["b"].append(stamp + 7 * MS)
            time.sleep(PERIOD_NS / 4e9)

    def camera_status(self, camera):
        for array in reversed(self.diagnostics):
            for status in array.status:
                if status.name.endswith(f"camera {camera}"):
                    return status, {kv.key: kv.value for kv in status.values}
        return None, {}


@pytest.fixture
def rig(ros, manifest):
    rig = Rig(manifest)
    yield rig
    rig.close()


def test_two_cameras_produce_embeddings_stamped_with_their_input_frames(rig):
    model = rig.perception.pipeline.runtime.manifest
    for part in (rig.perception.pipeline.runtime.encoder, rig.perception.pipeline.runtime.predictor):
        assert part.session.get_session_options().intra_op_num_threads == 1  # the default reached ONNX Runtime
    rig.wait_connected()
    rig.publish(3.5)
    assert rig.wait_for(lambda: {m.camera for m in rig.embeddings} == {"cam_a", "cam_b"} and len(rig.transitions) >= 2)
    rig.wait_for(lambda: rig.perception.pipeline.queue.pending() == 0)
    time.sleep(0.3)
    for msg in rig.embeddings:
        camera = msg.camera[-1]
        assert time_to_ns(msg.header.stamp) in rig.published[camera]
        assert time_to_ns(msg.clip_start) in rig.published[camera]
        assert msg.header.frame_id == f"cam_{camera}_optical"
        assert msg.kind == Embedding.KIND_PREDICTED and msg.query == model.queries["caption"]
        assert msg.num_frames == model.clip.frames and list(msg.shape) == [model.embedding_dim] and msg.normalized
        assert np.linalg.norm(embedding_from_msg(msg)) == pytest.approx(1.0, abs=1e-4)
        assert msg.model_id == model.model_id and msg.model_version == model.version
    assert {m.camera for m in rig.visual} == {"cam_a", "cam_b"}
    assert all(m.kind == Embedding.KIND_VISUAL_STATE for m in rig.visual)
    # Camera B shows the mirrored scene: the two cameras' embeddings for one moment differ.
    a = {time_to_ns(m.header.stamp): embedding_from_msg(m) for m in rig.embeddings if m.camera == "cam_a"}
    b = {time_to_ns(m.header.stamp) - 7 * MS: embedding_from_msg(m) for m in rig.embeddings if m.camera == "cam_b"}
    common = set(a) & set(b)
    assert common and any(float(a[s] @ b[s]) < 0.9999 for s in common)


def test_transitions_appear_only_after_the_horizon(rig):
    rig.wait_connected()
    rig.publish(4.0, b=False)  # first clip ends at 1.75 s, first transition at 2.75 s
    assert rig.wait_for(lambda: len(rig.transitions) >= 3)
    first_output = min(time_to_ns(m.header.stamp) for m in rig.embeddings)
    for msg in rig.transitions:
        after, before = time_to_ns(msg.after_stamp), time_to_ns(msg.before_stamp)
        assert time_to_ns(msg.header.stamp) == after and after in rig.published["a"] and before in rig.published["a"]
        assert after - before == pytest.approx(1000 * MS, abs=PERIOD_NS)
        assert before >= first_output - PERIOD_NS  # nothing compared against a clip that never existed
        dim = rig.perception.pipeline.runtime.manifest.embedding_dim
        assert 0.0 <= msg.state_distance <= 2.0 and msg.dim == dim and len(msg.transition_embedding) == dim
        assert len(msg.action_labels) == 3 and len(msg.action_scores) == 3
        assert msg.camera == "cam_a" and msg.header.frame_id == "cam_a_optical"


def test_transitions_are_computed_only_while_someone_subscribes(ros, manifest):
    """With a ~/world_state_transition subscriber every clip past the horizon costs a transition clip and a second
    predictor call; without one, one clip and one call: counted per clip (one camera: one clip per batch)."""
    rig = Rig(manifest, camera_topics=[CAM_A])
    try:
        counting = CountingRuntime(rig.perception.pipeline.runtime)
        rig.perception.pipeline.runtime = counting
        rig.wait_connected_a()
        start_ns = time.time_ns()
        rig.publish(4.0, start_ns=start_ns, b=False)  # first clip ends at 1.75 s, first transition at 2.75 s
        assert rig.wait_for(lambda: len(rig.transitions) >= 3)

        def settled():  # every result of the model has arrived (one camera: one clip per encoder call)
            time.sleep(0.5)
            calls = counting.calls
            return len(rig.embeddings) == calls["encode"] and len(rig.transitions) == calls["predict"] - calls["encode"]

        assert rig.wait_for(settled)
        with_reader = dict(counting.calls)
        clips, transitions = len(rig.embeddings), len(rig.transitions)
        # Each transition: its clip encoded in the same call (plus look-back clips the worker had dropped).
        assert transitions >= 3 and with_reader["encoded_clips"] >= clips + transitions

        (subscription,) = [s for s in rig.node.subscriptions if s.topic_name.endswith("world_state_transition")]
        rig.node.destroy_subscription(subscription)
        assert rig.wait_for(lambda: rig.perception._transition_pub.get_subscription_count() == 0)
        before = dict(counting.calls)
        rig.publish(3.0, start_ns=start_ns + 4_000_000_000, b=False)
        assert rig.wait_for(lambda: len(rig.embeddings) >= clips + 8)
        assert rig.wait_for(settled)
        new_clips = len(rig.embeddings) - clips
        per_clip = {name: counting.calls[name] - before[name] for name in before}
        assert per_clip == {"encode": new_clips, "encoded_clips": new_clips, "predict": new_clips}
        assert len(rig.transitions) == transitions
    finally:
        rig.close()


def test_malformed_frames_are_counted_on_diagnostics_and_the_node_keeps_working(rig):
    rig.wait_connected()
    good = moving_frame(0)
    T0 = time.time_ns() - 10**9  # a stamp before the good stream
    truncated = rgb8_msg(good, T0, "cam_a_optical")
    truncated.data = bytes(truncated.data)[:-100]
    bad_step = rgb8_msg(good, T0 + PERIOD_NS, "cam_a_optical")
    bad_step.step = 10
    unknown = rgb8_msg(good, T0 + 2 * PERIOD_NS, "cam_a_optical")
    unknown.encoding = "rgb77"
    corrupt = jpeg_msg(good, T0, "cam_b_optical")
    corrupt.data = b"\xff\xd8\xff\xe0 broken"
    empty = Image()
    empty.header.stamp = ns_to_time(T0 + 3 * PERIOD_NS)
    for msg in (truncated, bad_step, unknown, empty):
        rig.pub_a.publish(msg)
    rig.pub_b.publish(corrupt)
    rig.publish(2.5)

    def counted():
        _, a = rig.camera_status("cam_a")
        _, b = rig.camera_status("cam_b")
        return (
            a.get("malformed.truncated") == "1"
            and a.get("malformed.bad_step") == "1"
            and a.get("malformed.unknown_encoding") == "1"
            and a.get("malformed.zero_size") == "1"
            and b.get("malformed.corrupt_compressed") == "1"
        )

    assert rig.wait_for(counted, timeout_s=8), str((rig.camera_status("cam_a")[1], rig.camera_status("cam_b")[1]))
    assert rig.wait_for(lambda: {m.camera for m in rig.embeddings} == {"cam_a", "cam_b"})
    # The newest /diagnostics array may predate the first published clip: wait for one that counts it.
    assert rig.wait_for(lambda: rig.camera_status("cam_a")[1].get("clips_published", "0") != "0", timeout_s=8)
    status, values = rig.camera_status("cam_a")
    assert values["malformed_total"] == "4" and values["execution_provider"] == "CPUExecutionProvider"
    assert int(values["frames_subsampled"]) > 0 and int(values["frames_received"]) > int(values["frames_subsampled"])
    assert float(values["input_rate_hz"]) > 0 and values["latency_p50_ms"] != "n/a"


def test_query_change_takes_effect_and_bad_values_are_refused(rig):
    rig.wait_connected()
    refused = rig.perception.set_parameters([Parameter("query", value="zebra quokka")])[0]
    assert not refused.successful and "query" in refused.reason
    assert rig.perception.get_parameter("query").value == ""
    assert rig.perception.pipeline.query == rig.perception.pipeline.default_query("caption")
    read_only = rig.perception.set_parameters([Parameter("camera_topics", value=["/x"])])[0]
    assert not read_only.successful
    new_query = rig.perception.pipeline.default_query("transition")  # a query the model can read
    assert rig.perception.set_parameters([Parameter("query", value=new_query)])[0].successful
    rig.publish(2.5, b=False)
    assert rig.wait_for(lambda: any(m.query == new_query for m in rig.embeddings))
    assert all(m.query == new_query for m in rig.embeddings)


def test_enable_service_pauses_and_resumes(rig):
    rig.wait_connected()
    assert rig.enable_client.wait_for_service(timeout_sec=10)
    future = rig.enable_client.call_async(SetBool.Request(data=False))
    assert rig.wait_for(future.done) and future.result().success
    rig.publish(2.5, b=False)
    time.sleep(0.5)
    assert rig.embeddings == []
    assert rig.wait_for(
        lambda: rig.camera_status("cam_a")[0] is not None and rig.camera_status("cam_a")[0].message == "disabled"
    )
    # A "disabled" status may predate the frames published while disabled: wait for one that counts them.
    assert rig.wait_for(lambda: int(rig.camera_status("cam_a")[1].get("drops.disabled", "0")) > 0, timeout_s=8)
    future = rig.enable_client.call_async(SetBool.Request(data=True))
    assert rig.wait_for(future.done) and future.result().success
    rig.publish(2.5, b=False)
    assert rig.wait_for(lambda: len(rig.embeddings) > 0)


def test_silent_camera_and_incompatible_qos_warn_on_diagnostics(ros, manifest):
    rig = Rig(manifest, reliable_input=False)  # best-effort publishers vs. a reliable subscription
    try:
        assert rig.wait_for(lambda: rig.camera_status("cam_a")[1].get("incompatible_qos_events", "0") != "0")
        status, _ = rig.camera_status("cam_a")
        assert status.level == b"\x01" or status.level == 1
        assert "incompatible QoS" in status.message and "no frame yet" in status.message
    finally:
        rig.close()


def _run_node(*args):
    return subprocess.run(
        node_command("vljepa_ros.nodes.perception_node", ros_args=args),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_missing_model_refuses_to_start_with_one_line(tmp_path):
    proc = _run_node("-p", f"model_manifest:={tmp_path / 'nope' / 'manifest.yaml'}")
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "model_manifest" in lines[0] and "refusing to start" in lines[0]


def test_negative_thread_count_refuses_to_start_with_one_line(manifest):
    proc = _run_node("-p", f"model_manifest:={manifest}", "-p", "providers:=[cpu]", "-p", "intra_op_threads:=-1")
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "refusing to start" in lines[0] and "intra_op_threads" in lines[0], proc.stderr


def test_mismatched_model_refuses_to_start_with_one_line(tmp_path, manifest):
    import shutil
    from pathlib import Path

    copy = tmp_path / "model"
    shutil.copytree(Path(manifest).parent, copy)
    with open(copy / "encoder.onnx", "ab") as f:
        f.write(b"tampered")
    proc = _run_node("-p", f"model_manifest:={copy / 'manifest.yaml'}", "-p", "providers:=[cpu]")
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "refusing to start" in lines[0] and "sha256" in lines[0]


def test_trt_force_rebuild_clears_only_tensorrt_cache_files(tmp_path):
    from vljepa_ros.nodes.perception_node import clear_trt_cache

    for name in (
        "TensorrtExecutionProvider_TRTKernel_graph_1.engine",
        "TensorrtExecutionProvider_cache_sm90.timing",
        "TensorrtExecutionProvider_TRTKernel_graph_1.profile",
        "notes.txt",
    ):
        (tmp_path / name).write_text("x")
    assert clear_trt_cache(tmp_path) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    assert clear_trt_cache(tmp_path / "absent") == 0


def test_a_camera_too_slow_for_the_model_rate_is_named_on_diagnostics(ros, manifest):
    rig = Rig(manifest, camera_topics=[CAM_A])
    try:
        rig.wait_for(lambda: rig.pub_a.get_subscription_count() > 0)
        start = time.time_ns()
        for i in range(12):  # 1.5 Hz against a 4 Hz model: every frame is a gap of more than two periods
            rig.pub_a.publish(rgb8_msg(moving_frame(i), start + i * 666 * MS, "cam_a_optical"))
            time.sleep(0.05)

        def warned():
            status, values = rig.camera_status("cam_a")
            return (
                status is not None
                and "clips keep restarting" in status.message
                and int(values.get("clip_resets.gap", 0)) == 11
            )  # every frame after the first

        assert rig.wait_for(warned, timeout_s=10), rig.camera_status("cam_a")
        assert rig.embeddings == []
    finally:
        rig.close()


def _wait_value(rig, camera, key, expected, timeout_s=10):
    return rig.wait_for(lambda: rig.camera_status(camera)[1].get(key) == expected, timeout_s)


def test_stamps_are_copied_field_for_field_and_unpublishable_ones_are_refused(ros, manifest):
    rig = Rig(manifest, camera_topics=[CAM_A], transition_horizon_s=0.0)
    try:
        rig.wait_connected_a()
        bad = rgb8_msg(moving_frame(0), 0, "cam_a_optical")
        bad.header.stamp.sec, bad.header.stamp.nanosec = 100, 1_500_000_000  # not normalised by its sender
        rig.pub_a.publish(bad)
        # The last int32 second a stamp can carry: the stream runs right up to its end.
        last_sec = 2**31 - 1
        rig.publish(2.5, start_ns=last_sec * 10**9 + 999_999_999 - int(2.5e9), b=False)
        assert rig.wait_for(lambda: len(rig.embeddings) > 0)
        assert _wait_value(rig, "cam_a", "malformed.bad_stamp", "1")
        published = {(s // 10**9, s % 10**9) for s in rig.published["a"]}
        for msg in rig.embeddings:
            assert (msg.header.stamp.sec, msg.header.stamp.nanosec) in published
            assert (msg.clip_start.sec, msg.clip_start.nanosec) in published
        _, values = rig.camera_status("cam_a")
        assert values["drops.inference_error"] == "0" and values["drops.publish_error"] == "0"
    finally:
        rig.close()


def test_a_result_that_fails_to_publish_is_counted_under_the_counter_its_log_names(ros, manifest):
    rig = Rig(manifest, camera_topics=[CAM_A], transition_horizon_s=0.0)

    def broken(result):
        raise OverflowError("cannot serialise")

    try:
        rig.perception._serializer.predicted = broken
        rig.wait_connected_a()
        rig.publish(2.5, b=False)
        assert rig.wait_for(lambda: int(rig.camera_status("cam_a")[1].get("drops.publish_error", "0")) > 0)
        _, values = rig.camera_status("cam_a")
        assert values["drops.inference_error"] == "0" and rig.embeddings == []
    finally:
        rig.close()


def test_frame_limits_refuse_large_frames_and_every_corrupt_compressed_frame_is_counted(ros, manifest):
    rig = Rig(manifest, max_frame_pixels=100 * 100)  # the test frames are 128 x 96
    try:
        rig.wait_connected()
        start = time.time_ns()
        good = moving_frame(0)
        for i in range(12):  # 30 Hz stamps: the sampler would keep few of them, the header check sees all
            corrupt = jpeg_msg(good[:40, :40], start + i * PERIOD_NS, "cam_b_optical")
            corrupt.data = bytes(corrupt.data)[:20]
            rig.pub_b.publish(corrupt)
        rig.publish(0.5, start_ns=start + 12 * PERIOD_NS)
        sent = len(rig.published["a"])
        assert _wait_value(rig, "cam_b", "malformed.corrupt_compressed", "12")
        assert _wait_value(rig, "cam_a", "malformed.too_many_pixels", str(sent))
        assert _wait_value(rig, "cam_b", "malformed.too_many_pixels", str(sent))
        assert rig.embeddings == []
    finally:
        rig.close()


def test_invalid_frame_limit_refuses_to_start_naming_the_parameter(manifest):
    proc = _run_node("-p", f"model_manifest:={manifest}", "-p", "providers:=[cpu]", "-p", "max_frame_pixels:=0")
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "max_frame_pixels" in lines[0], proc.stderr


def test_with_sim_time_diagnostics_come_before_any_clock_and_count_clock_messages(ros, manifest):
    from rosgraph_msgs.msg import Clock

    rig = Rig(manifest, camera_topics=[CAM_A], use_sim_time=True)
    try:

        def clock_values():
            for array in reversed(rig.diagnostics):
                for status in array.status:
                    if status.name.endswith(": clock"):
                        return status, {kv.key: kv.value for kv in status.values}
            return None, {}

        assert rig.wait_for(lambda: clock_values()[0] is not None)
        status, values = clock_values()
        assert "no /clock" in status.message and values["clock_messages"] == "0"
        camera, _ = rig.camera_status("cam_a")
        assert "no frame yet on /cam_a/image_raw" in camera.message  # the stall check runs without /clock
        clock_pub = rig.node.create_publisher(Clock, "/clock", 10)
        assert rig.wait_for(lambda: clock_pub.get_subscription_count() > 0)
        for i in range(5):
            msg = Clock()
            msg.clock.sec = 100 + i
            clock_pub.publish(msg)
            time.sleep(0.05)
        assert rig.wait_for(lambda: clock_values()[1].get("clock_messages") == "5")
    finally:
        rig.close()


def test_frames_lost_in_transport_warn_with_the_lost_fraction_and_the_fix(ros, manifest):
    rig = Rig(manifest, camera_topics=[CAM_A], transition_horizon_s=0.0, stall_timeout_s=30.0)
    try:
        rig.wait_connected_a()
        start = time.time_ns()
        kept = [i for i in range(90) if i % 3 == 0 or i % 10 == 1]  # two thirds of a 30 Hz camera lost
        # A real loss: the camera keeps its 30 Hz pace and the lost frames never arrive (arrivals bear it out).
        for i in range(kept[-1] + 1):
            if i in kept:
                rig.pub_a.publish(rgb8_msg(moving_frame(i / 30), start + i * PERIOD_NS, "cam_a_optical"))
            time.sleep(PERIOD_NS / 1e9)

        def warned():
            status, values = rig.camera_status("cam_a")
            return (
                status is not None and "missing" in status.message and values.get("frames_received") == str(len(kept))
            )

        assert rig.wait_for(warned), rig.camera_status("cam_a")
        status, values = rig.camera_status("cam_a")
        missing = kept[-1] + 1 - len(kept)
        # Receive times jitter under load; the count is the smaller of what the stamps and the arrivals show.
        assert 0.8 * missing <= int(values["frames_missing"]) <= missing and "transport profile" in status.message
        assert float(values["lost_fraction"]) == pytest.approx(missing / kept[-1], abs=0.1)
    finally:
        rig.close()


def test_a_remapped_camera_topic_decides_the_message_type_and_the_names(ros, manifest, tmp_path):
    """`-r /camera/image_raw:=/front/image_raw/compressed` on the default camera_topics: a CompressedImage
    subscription on the resolved topic, named by it on /diagnostics (the launch file's camera_topic)."""
    resolved = "/front/image_raw/compressed"
    with open(tmp_path / "node.log", "w") as log:
        _check_remapped_node(manifest, resolved, log, tmp_path / "node.log")
    text = (tmp_path / "node.log").read_text()
    assert f"front on {resolved} (compressed)" in text and "/camera/image_raw" not in text


def _check_remapped_node(manifest, resolved, log, log_path):
    """Start the node with the default camera remapped to ``resolved``; check its outputs and diagnostics."""
    params = {
        "model_manifest": manifest,
        "providers": "[cpu]",
        "input_qos": "DEFAULT",
        "input_qos_depth": "200",
        "diagnostics_period_s": "0.2",
    }
    proc = subprocess.Popen(
        node_command("vljepa_ros.nodes.perception_node", params, ros_args=["-r", f"/camera/image_raw:={resolved}"]),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    node = rclpy.create_node("remap_test_rig")
    try:
        embeddings, diagnostics = [], []
        node.create_subscription(Embedding, f"{NODE}/embedding", embeddings.append, 100)
        node.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
        pub = node.create_publisher(CompressedImage, resolved, QoSProfile(depth=200))
        spinner = NodeSpinner([node])
        spinner.start()
        try:
            assert wait_until(lambda: pub.get_subscription_count() > 0, 60), log_path.read_text()
            time.sleep(0.5)
            start = time.time_ns()
            for i in range(int(3.0e9 / PERIOD_NS)):
                pub.publish(jpeg_msg(moving_frame(i / 30), start + i * PERIOD_NS, "front_optical"))
                time.sleep(PERIOD_NS / 4e9)
            assert wait_until(lambda: len(embeddings) > 0, 30), log_path.read_text()
            assert {m.camera for m in embeddings} == {"front"}
            statuses = [s for a in diagnostics for s in a.status if "camera" in s.name]
            assert statuses and all(s.hardware_id == resolved for s in statuses)
            assert all({kv.key: kv.value for kv in s.values}["topic"] == resolved for s in statuses)
            assert all("/camera/image_raw" not in s.message for s in statuses)
        finally:
            spinner.shutdown()
    finally:
        node.destroy_node()
        proc.terminate()
        proc.wait(30)
