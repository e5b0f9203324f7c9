"""The decoder node under hostile input: bounded streams, counted input loss, diagnostics without /clock, short logs."""

import array

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from vljepa_msgs.msg import DecodeStatistics, Embedding
from vljepa_ros.nodes.decoder_node import NODE_NAME, DecoderNode
from vljepa_ros.nodes.rclpy_compat import MESSAGE_INFO_HAS_PUBLISHER_GID

from support.rig_fixtures import rig_factory, spin_executor_until
from support.selective_streams import BANK_PATH, NS, load_bank

pytestmark = pytest.mark.ros

BANK = load_bank()
PARAMS = dict(bank_path=str(BANK_PATH), statistics_period_s=0.1, diagnostics_period_s=0.1)


def embedding(camera: str, k: int, kind=Embedding.KIND_PREDICTED) -> Embedding:
    msg = Embedding()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(100 * NS + k * NS // 4, NS)
    msg.kind, msg.camera, msg.model_version, msg.query = kind, camera, "v1", "describe the scene"
    vec = np.ascontiguousarray(BANK.embeddings[k % len(BANK)], dtype=np.float32)
    msg.shape = array.array("I", [vec.size])
    msg.data = array.array("f", vec.tobytes())
    return msg


class Rig:
    def __init__(self, publisher_depth=50, **overrides):
        params = dict(PARAMS, **overrides)
        self.node = DecoderNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        self.peer = rclpy.create_node("decoder_limits_peer")
        self.pub = self.peer.create_publisher(Embedding, "/vljepa_decoder/embedding", QoSProfile(depth=publisher_depth))
        self.clock_pub = self.peer.create_publisher(
            Clock, "/clock", QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        )
        self.statistics, self.diagnostics = [], []
        self.peer.create_subscription(
            DecodeStatistics, "/vljepa_decoder/decode_statistics", self.statistics.append, 100
        )
        self.peer.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 100)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.executor.add_node(self.peer)
        self.spin_until(lambda: self.pub.get_subscription_count() > 0)

    def spin_until(self, done, timeout_s=30.0):
        spin_executor_until(self.executor, done, timeout_s, "the decoder node")

    def taken(self) -> int:
        """Embeddings the node's callback has taken (decoded, rejected, ignored or refused)."""
        cameras = self.node._cameras
        used = sum(sum(info.ignored.values()) for _, info in cameras.items())
        used += sum(self.node.pipeline.statistics(c).embeddings_seen for c in self.node.pipeline.cameras)
        return used + cameras.refused_full + sum(self.node.core.refused.values())

    def send(self, msg):
        before = self.taken()
        self.pub.publish(msg)
        self.spin_until(lambda: self.taken() > before)

    def spin_diagnostics(self, count: int):
        """Spin until `count` more /diagnostics arrays arrived (the test's clock: counts, not seconds)."""
        target = len(self.diagnostics) + count
        self.spin_until(lambda: len(self.diagnostics) >= target)

    def node_values(self) -> dict:
        status = self.node_status()
        return {kv.key: kv.value for kv in status.values}

    def node_status(self) -> DiagnosticStatus:
        return next(s for s in self.diagnostics[-1].status if s.name == f"{NODE_NAME}: decoder")

    def camera_statuses(self) -> set[str]:
        prefix = f"{NODE_NAME}: camera "
        return {s.name.removeprefix(prefix) for s in self.diagnostics[-1].status if s.name.startswith(prefix)}

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()
        self.peer.destroy_node()


@pytest.fixture
def rig():
    yield from rig_factory(Rig)


def test_a_new_camera_beyond_max_streams_is_refused_and_counted(rig):
    r = rig(max_streams=3, stream_expiry_s=3600.0)
    for k, camera in enumerate(["a", "b", "c", "d", "e", "a"]):
        r.send(embedding(camera, k))
    assert sorted(r.node._cameras) == ["a", "b", "c"] and r.node.pipeline.cameras == ["a", "b", "c"]
    r.spin_diagnostics(2)
    values = r.node_values()
    assert values["streams_full"] == "2" and values["cameras"] == "3" and values["max_streams"] == "3"
    assert values["streams_expired"] == "0"
    assert r.camera_statuses() == {"a", "b", "c"}


def test_an_idle_stream_expires_and_its_statistics_and_status_stop(rig):
    r = rig(max_streams=1, stream_expiry_s=0.05)
    r.send(embedding("a", 0))
    r.spin_until(lambda: r.node._cameras.expired == 1)
    assert r.node.pipeline.cameras == [] and len(r.node._cameras) == 0
    r.spin_diagnostics(3)
    assert r.camera_statuses() == set() and r.node_values()["streams_expired"] == "1"
    assert sum(s.camera == "a" for s in r.statistics) <= 1  # one embedding: at most one, none after expiry
    r.pub.publish(embedding("b", 1))  # the slot is free again
    r.spin_until(lambda: "b" in r.node._cameras or r.node._cameras.expired == 2)
    assert r.node._cameras.refused_full == 0


def test_full_table_expires_the_least_recently_active_idle_stream_for_a_new_camera(rig):
    r = rig(max_streams=2, stream_expiry_s=0.05, diagnostics_period_s=3600.0)  # no periodic expiry
    r.send(embedding("a", 0))
    r.send(embedding("b", 1))
    steady_ns = r.node._steady.now

    r.spin_until(lambda: r.node._cameras.idle_seconds("b", steady_ns().nanoseconds) > 0.05)
    r.pub.publish(embedding("c", 2))
    r.spin_until(lambda: "c" in r.node._cameras)
    assert sorted(r.node._cameras) == ["b", "c"] and r.node.pipeline.cameras == ["b", "c"]
    assert r.node._cameras.expired == 1 and r.node._cameras.refused_full == 0


def test_statistics_go_out_once_per_period_only_for_streams_that_received_input(rig):
    r = rig(statistics_period_s=0.05, diagnostics_period_s=0.05)
    for k, camera in enumerate(["a", "b"]):
        r.send(embedding(camera, k))
    r.spin_until(lambda: {s.camera for s in r.statistics} == {"a", "b"})
    r.spin_diagnostics(10)  # ten diagnostics periods, as many statistics periods, no input
    assert sorted(s.camera for s in r.statistics) == ["a", "b"]
    r.send(embedding("a", 2))
    r.spin_until(lambda: len(r.statistics) == 3)
    r.spin_diagnostics(5)
    assert sorted(s.camera for s in r.statistics) == ["a", "a", "b"]


def test_embeddings_lost_in_the_subscription_queue_are_counted(rig):
    """Kilted's rclpy names each sample's publisher, so every gap is counted as lost_in_transport. Jazzy's does not
    (rclpy_compat): there no loss is claimed and every embedding counts as without a usable sequence number."""
    r = rig(publisher_depth=500, input_qos_depth=10, stream_expiry_s=3600.0)
    r.send(embedding("a", 0))  # the publisher's first sample sets the baseline
    burst = 300
    for k in range(1, burst + 1):
        r.pub.publish(embedding("a", k))  # nobody spins: the reader history (depth 10) overflows
    if MESSAGE_INFO_HAS_PUBLISHER_GID:
        r.spin_until(lambda: r.node._input_loss.lost + r.taken() - 1 == burst)
    r.spin_diagnostics(2)  # the reader's queue is drained long before two statistics periods
    received = r.taken() - 1
    values = r.node_values()
    assert 0 < received < burst and "dds_message_lost" in values
    if MESSAGE_INFO_HAS_PUBLISHER_GID:
        assert r.node._input_loss.lost == burst - received
        assert values["lost_in_transport"] == str(burst - received)
        assert values["embeddings_without_sequence_number"] == "0"
    else:
        assert values["lost_in_transport"] == "0"
        assert values["embeddings_without_sequence_number"] == str(received + 1)


def test_diagnostics_report_before_the_first_clock_and_say_whether_clock_arrives(rig):
    r = rig(use_sim_time=True)
    r.spin_diagnostics(3)  # sim time stands at 0: a ROS-time timer would never fire
    values = r.node_values()
    assert values["use_sim_time"] == "True" and values["clock_received"] == "False"
    assert r.node_status().level == DiagnosticStatus.WARN and "no /clock" in r.node_status().message
    msg = Clock()
    msg.clock.sec = 1000

    def clock_seen():
        r.clock_pub.publish(msg)
        return r.diagnostics and r.node_values().get("clock_received") == "True"

    r.spin_until(clock_seen)
    assert int(r.node_values()["clock_messages"]) >= 1 and r.node_values()["seconds_since_last_clock"] != "n/a"


def test_very_long_camera_names_and_values_are_clipped_in_the_log(rig, capfd):
    r = rig(max_streams=1, stream_expiry_s=3600.0)
    r.send(embedding("c" * 10_000, 0))  # refused: longer than the 256-byte camera-name limit
    r.send(embedding("e" * 250, 0, kind=Embedding.KIND_VISUAL_STATE))  # ignored (logs a warning), takes the slot
    r.send(embedding("d" * 250, 1))  # refused: streams_full
    refused = r.node.set_parameters([Parameter("bank_path", value="b" * 10_000)])[0]
    assert not refused.successful and len(refused.reason) < 400
    r.node.set_parameters([Parameter("threshold", value=0.05)])
    log = capfd.readouterr().err
    assert "(10000 chars)" in log and "camera_name_too_long" in log and "streams_full" in log
    assert all(len(line) < 600 for line in log.splitlines())
