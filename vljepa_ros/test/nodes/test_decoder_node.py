"""The decoder node over real rclpy + DDS: Embedding messages in, Caption / DecodeStatistics / diagnostics out."""

import array
import os
import subprocess
import time
from dataclasses import asdict

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile

from vljepa_msgs.msg import Caption, DecodeStatistics, Embedding
from vljepa_ros.decoding.change_detection import ChangeDetectorConfig, DecodeReason
from vljepa_ros.decoding.config import detector_values_from_parameters
from vljepa_ros.decoding.decoder_core import KIND_PREDICTED, online_captions
from vljepa_ros.decoding.decoders import RetrievalDecoder
from vljepa_ros.nodes.decoder_node import NODE_NAME, DecoderNode
from vljepa_ros.perception.results import EmbeddingResult
from vljepa_ros.runtime.text_bank import TextBank
from vljepa_ros.tools.node_process import node_command
from vljepa_ros.tools.replay import embedding_input, replay_decoder_core

from support.rig_fixtures import rig_factory, spin_executor_until
from support.selective_streams import BANK_PATH, NS, load_bank, make_stream

pytestmark = pytest.mark.ros

BANK = load_bank()
WALK = [
    "an empty floor",
    "a blue cube on the floor",
    "a blue cube on the floor in the dark",
    "an empty floor in the dark",
]
PARAMS = dict(
    bank_path=str(BANK_PATH),
    trigger="change",  # these tests describe the change detector; the margin test switches at runtime
    window=3,
    threshold=0.03,
    settle=2,
    min_interval_s=1.0,
    provisional=False,
    reconfirm_s=0.0,
    statistics_period_s=0.2,
    diagnostics_period_s=0.2,
)


def idx(text):
    return BANK.texts.index(text)


def embedding_msg(
    stamp_ns,
    vector,
    camera="front",
    frame_id="front_optical",
    kind=Embedding.KIND_PREDICTED,
    version="v1",
    shape=None,
    query="describe the scene",
):
    msg = Embedding()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(stamp_ns), NS)
    msg.header.frame_id = frame_id
    msg.kind = kind
    msg.camera = camera
    msg.model_id = "vljepa-test"
    msg.model_version = version
    msg.query = query
    msg.num_frames = 8
    vec = np.ascontiguousarray(vector, dtype=np.float32)
    msg.shape = array.array("I", [vec.size] if shape is None else shape)
    msg.normalized = True
    msg.data = array.array("f", vec.tobytes())
    return msg


def stamp_ns(t):
    return t.sec * NS + t.nanosec


class Harness:
    """The decoder node plus a test node that publishes embeddings and records every output."""

    def __init__(self, **overrides):
        params = dict(PARAMS, **overrides)
        self.node = DecoderNode(parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        self.peer = rclpy.create_node("decoder_test_peer")
        self.pub = self.peer.create_publisher(Embedding, "/vljepa_decoder/embedding", QoSProfile(depth=50))
        self.captions, self.statistics, self.diagnostics = [], [], []
        self.peer.create_subscription(Caption, "/vljepa_decoder/caption", self.captions.append, 50)
        self.peer.create_subscription(DecodeStatistics, "/vljepa_decoder/decode_statistics", self.statistics.append, 50)
        self.peer.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 50)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.executor.add_node(self.peer)
        self.spin_until(lambda: self.pub.get_subscription_count() > 0)

    def spin_until(self, done, timeout_s=20.0):
        spin_executor_until(self.executor, done, timeout_s, "the decoder node")

    def handled(self):
        """Embeddings the node has taken in (used, rejected or ignored), from its diagnostics-facing state."""
        used = sum(
            s.embeddings_seen + sum(s.rejected.values())
            for s in map(self.node.pipeline.statistics, self.node.pipeline.cameras)
        )
        return used + sum(sum(c.ignored.values()) for _, c in self.node._cameras.items())

    def send(self, msg):
        before = self.handled()
        self.pub.publish(msg)
        self.spin_until(lambda: self.handled() > before)

    def send_stream(self, stream, **kwargs):
        for stamp, vec in zip(stream.stamps_ns, stream.vectors):
            self.send(embedding_msg(stamp, vec, **kwargs))
        # Captions go out in the callback; give DDS a moment to deliver the last ones.
        self.spin_until(lambda: True)
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.05)

    def camera_status(self, camera):
        name = f"{NODE_NAME}: camera {camera}"
        for arr in reversed(self.diagnostics):
            for status in arr.status:
                if status.name == name:
                    return status
        return None

    def close(self):
        self.executor.shutdown()
        self.node.destroy_node()
        self.peer.destroy_node()


@pytest.fixture
def ros():
    yield from rig_factory(Harness)


def test_static_stream_gives_one_caption(ros):
    h = ros()
    stream = make_stream(BANK, [idx(WALK[1])], [40.0], noise=0.2, seed=1)
    h.send_stream(stream)
    assert len(h.captions) == 1
    cap = h.captions[0]
    assert cap.text == WALK[1] and cap.reason == Caption.REASON_FIRST
    assert cap.header.frame_id == "front_optical" and cap.camera == "front"
    assert (cap.model_id, cap.model_version) == ("vljepa-test", "v1")
    assert stamp_ns(cap.header.stamp) == stream.stamps_ns[2]  # the first decode waits `settle` embeddings
    assert cap.num_embeddings == 3 and len(cap.alternatives) == len(cap.alternative_scores) == 2
    h.spin_until(lambda: any(s.embeddings_seen == len(stream.stamps_ns) for s in h.statistics))
    stats = [s for s in h.statistics if s.embeddings_seen == len(stream.stamps_ns)][-1]
    assert stats.decodes == 1 and stats.camera == "front" and stats.uniform_rate_hz == 1.0
    assert stats.uniform_decodes == int((stream.stamps_ns[-1] - stream.stamps_ns[0]) // NS) + 1
    assert stats.reduction_factor == pytest.approx(stats.uniform_decodes)
    assert stamp_ns(stats.header.stamp) == stream.stamps_ns[-1]


def test_each_scene_change_gives_one_caption_stamped_inside_its_segment(ros):
    h = ros()
    stream = make_stream(BANK, [idx(t) for t in WALK], [15.0, 12.0, 10.0, 14.0], noise=0.2, seed=2)
    h.send_stream(stream)
    assert [c.text for c in h.captions] == WALK
    assert [c.reason for c in h.captions] == [Caption.REASON_FIRST] + [Caption.REASON_CHANGE] * 3
    for k, cap in enumerate(h.captions):
        stamp = stamp_ns(cap.header.stamp)
        assert stream.caption_at(stamp) == idx(WALK[k])
        assert stamp_ns(cap.segment_start) <= stamp <= stamp_ns(cap.segment_end)
        if k:
            assert stamp > stream.change_ns[k - 1]
            assert cap.change_score >= 0.03
        assert cap.score > max(cap.alternative_scores)


def test_cameras_are_separate_streams(ros):
    h = ros()
    a = make_stream(BANK, [idx(WALK[0]), idx(WALK[1])], [10.0, 10.0], noise=0.2, seed=3)
    b = make_stream(BANK, [idx(WALK[3])], [20.0], noise=0.2, seed=4)
    for (sa, va), (sb, vb) in zip(zip(a.stamps_ns, a.vectors), zip(b.stamps_ns, b.vectors)):
        h.send(embedding_msg(sa, va, camera="left", frame_id="left_optical"))
        h.send(embedding_msg(sb, vb, camera="right", frame_id="right_optical"))
    h.spin_until(lambda: len(h.captions) == 3)
    by_camera = {(c.camera, c.header.frame_id, c.text) for c in h.captions}
    assert by_camera == {
        ("left", "left_optical", WALK[0]),
        ("left", "left_optical", WALK[1]),
        ("right", "right_optical", WALK[3]),
    }


def test_bad_embeddings_are_counted_on_diagnostics_and_the_stream_goes_on(ros):
    h = ros()
    stream = make_stream(BANK, [idx(WALK[0]), idx(WALK[2])], [10.0, 10.0], noise=0.2, seed=5)
    first = stream.stamps_ns[:20]
    for stamp, vec in zip(first, stream.vectors[:20]):
        h.send(embedding_msg(stamp, vec))
    h.send(embedding_msg(first[-1] + 1, np.ones(7)))  # wrong dimension
    h.send(embedding_msg(first[-1] + 2, stream.vectors[0], shape=[3, 3]))  # shape does not match data
    h.send(embedding_msg(first[-1] + 3, stream.vectors[0], kind=Embedding.KIND_VISUAL_STATE))
    h.send(embedding_msg(first[-1] - NS // 4, stream.vectors[0]))  # older than the previous one (not a restart)
    for stamp, vec in zip(stream.stamps_ns[20:], stream.vectors[20:]):
        h.send(embedding_msg(stamp, vec))
    h.spin_until(lambda: len(h.captions) == 2)
    assert [c.text for c in h.captions] == [WALK[0], WALK[2]]

    def reported():
        status = h.camera_status("front")
        return status is not None and {kv.key: kv.value for kv in status.values}.get("embeddings_seen") == "40"

    h.spin_until(reported)
    status = h.camera_status("front")
    values = {kv.key: kv.value for kv in status.values}
    assert status.level == DiagnosticStatus.WARN
    assert values["rejected.dimension"] == "1" and values["rejected.shape"] == "1"
    assert values["rejected.stamp_backwards"] == "1" and values["ignored.kind"] == "1"
    assert values["decodes"] == "2" and values["last_caption"] == WALK[2]


def test_a_threshold_under_the_noise_floor_is_reported_on_diagnostics(ros):
    h = ros(threshold=0.001)
    h.send_stream(make_stream(BANK, [idx(WALK[1])], [70.0], rate_hz=1.0, noise=0.3, seed=10))

    def warned():
        status = h.camera_status("front")
        return status is not None and "raise it" in status.message

    h.spin_until(warned)
    assert h.camera_status("front").level == DiagnosticStatus.WARN
    assert len(h.captions) == 1


def test_runtime_parameters_are_validated_and_the_bank_can_change(ros, tmp_path):
    h = ros()
    refused = h.node.set_parameters([Parameter("threshold", value=-0.5)])[0]
    assert not refused.successful and "threshold" in refused.reason
    assert h.node.get_parameter("threshold").value == 0.03 and h.node.pipeline.config.threshold == 0.03
    refused = h.node.set_parameters([Parameter("max_interval_s", value=0.5)])[0]  # below min_interval_s
    assert not refused.successful and "max_interval_s" in refused.reason
    missing = h.node.set_parameters([Parameter("bank_path", value=str(tmp_path / "none.npz"))])[0]
    assert not missing.successful and "bank_path" in missing.reason

    keep = [i for i, t in enumerate(BANK.texts) if "blue cube" not in t]
    subset = TextBank.from_embeddings([BANK.texts[i] for i in keep], BANK.embeddings[keep]).save(tmp_path / "b.npz")
    assert h.node.set_parameters([Parameter("bank_path", value=str(subset))])[0].successful
    assert h.node.set_parameters([Parameter("window", value=2), Parameter("settle", value=1)])[0].successful
    assert h.node.pipeline.config.window == 2 and h.node.pipeline.config.settle == 1
    h.send_stream(make_stream(BANK, [idx(WALK[1])], [5.0], noise=0.1, seed=6))
    assert len(h.captions) == 1 and "blue cube" not in h.captions[0].text


def test_the_margin_trigger_is_selected_at_runtime_and_publishes_only_new_text(ros):
    h = ros()
    refused = h.node.set_parameters([Parameter("trigger", value="nearest")])[0]
    assert not refused.successful and "trigger" in refused.reason and h.node.pipeline.config.trigger == "change"
    refused = h.node.set_parameters([Parameter("drift_floor", value=3.0)])[0]
    assert not refused.successful and "drift_floor" in refused.reason
    switch = [Parameter("trigger", value="margin"), Parameter("min_interval_s", value=0.0)]
    assert h.node.set_parameters(switch)[0].successful
    h.send_stream(make_stream(BANK, [idx(t) for t in WALK], [15.0, 12.0, 10.0, 14.0], noise=0.2, seed=2))
    texts = [c.text for c in h.captions]
    assert texts[0] == WALK[0] and texts[-1] == WALK[-1]
    assert all(a != b for a, b in zip(texts, texts[1:]))  # a drift decode that keeps the caption is not published
    stats = h.node.pipeline.statistics("front")
    assert stats.decodes == len(h.captions) + stats.confirmed_silently

    def node_values():
        for arr in reversed(h.diagnostics):
            for status in arr.status:
                values = {kv.key: kv.value for kv in status.values}
                if "trigger" in values:
                    return values
        return None

    h.spin_until(lambda: (node_values() or {}).get("trigger") == "margin")
    assert node_values()["drift_floor"] == f"{ChangeDetectorConfig().drift_floor:g}"


def test_model_version_change_restarts_the_stream(ros):
    h = ros()
    stream = make_stream(BANK, [idx(WALK[0])], [20.0], noise=0.2, seed=7)
    h.send_stream(stream)
    h.send_stream(make_stream(BANK, [idx(WALK[0])], [5.0], noise=0.2, seed=8, start_ns=2_000 * NS), version="v2")
    assert [(c.reason, c.model_version) for c in h.captions] == [
        (Caption.REASON_FIRST, "v1"),
        (Caption.REASON_FIRST, "v2"),
    ]
    assert h.node._cameras.get("front").stream_resets == 1


@pytest.mark.parametrize("detector", ["change detector", "shipped defaults"])
def test_the_node_and_replay_run_the_same_core_on_one_stream(ros, detector):
    """One stream with a model change, a query change, a bad vector and a clock jump: the node over DDS and
    replay's decoding path (replay_decoder_core fed through replay.embedding_input) give the same captions,
    with this module's change-detector settings and with the node's shipped defaults (the margin trigger)."""
    overrides = asdict(ChangeDetectorConfig()) if detector == "shipped defaults" else {}
    stream = make_stream(BANK, [idx(t) for t in WALK] * 2, [8.0, 8.0, 8.0, 8.0] * 2, noise=0.2, seed=21)
    n = len(stream.stamps_ns)
    plan = []  # (stamp, vector, model_version, query)
    for k, (stamp, vec) in enumerate(zip(stream.stamps_ns, stream.vectors)):
        version = "v1" if k < n // 4 else "v2"  # a model change
        query = "describe the scene" if k < n // 2 else "what is on the floor"  # a query change
        if k >= 3 * n // 4:
            stamp = stamp - 200 * NS  # the camera's clock jumped back (a bag loop): its stream restarts
        plan.append((int(stamp), vec, version, query))
        if k == n // 3:
            plan.append((int(stamp) + 1, np.full(vec.size, np.nan, np.float32), version, query))  # a bad vector
    h = ros(**overrides)
    for stamp, vec, version, query in plan:
        before = h.node._embeddings_received
        h.pub.publish(embedding_msg(stamp, vec, version=version, query=query))
        h.spin_until(lambda before=before: h.node._embeddings_received > before)
    node_stats = h.node.pipeline.statistics("front")
    h.spin_until(lambda: len(h.captions) >= node_stats.decodes - node_stats.confirmed_silently)

    decoder = RetrievalDecoder(BANK, num_alternatives=2)
    values = detector_values_from_parameters(dict(PARAMS, **overrides))
    core = replay_decoder_core(decoder, values, cameras=1, uniform_rate_hz=1.0)
    results = [
        EmbeddingResult("front", "front_optical", stamp, stamp - 2 * NS, 8, query, vec, None, "vljepa-test", version)
        for stamp, vec, version, query in plan
    ]
    replayed = online_captions(core, [embedding_input(r) for r in results])

    def key(stamp, text, reason):
        return stamp, text, int(reason)

    node_side = [key(stamp_ns(c.header.stamp), c.text, c.reason) for c in h.captions]
    replay_side = [key(e.stamp_ns, e.text, e.reason) for e in replayed]
    assert node_side == replay_side
    reasons = [r for _, _, r in replay_side]
    assert reasons.count(Caption.REASON_FIRST) == 4  # start, model change, query change, clock jump
    assert reasons.count(Caption.REASON_CHANGE) >= 3
    assert core.pipeline.statistics("front").rejected == node_stats.rejected == {"non_finite": 1}
    assert core.cameras.get("front").stream_resets == h.node._cameras.get("front").stream_resets == 2


def test_camera_names_over_the_limit_are_refused_and_never_become_a_status(ros):
    h = ros()
    stream = make_stream(BANK, [idx(WALK[0])], [3.0], noise=0.2, seed=22)
    long_name = "c" * 10_000
    for stamp, vec in zip(stream.stamps_ns, stream.vectors):
        before = h.node._embeddings_received
        h.pub.publish(embedding_msg(stamp, vec, camera=long_name))
        h.spin_until(lambda before=before: h.node._embeddings_received > before)
    count = str(len(stream.stamps_ns))

    def node_values():
        for arr in reversed(h.diagnostics):
            for status in arr.status:
                if status.name == f"{NODE_NAME}: decoder":
                    return {kv.key: kv.value for kv in status.values}, status
        return {}, None

    h.spin_until(lambda: node_values()[0].get("rejected.camera_name_too_long") == count)
    values, status = node_values()
    assert status.level == DiagnosticStatus.WARN and "rejected.camera_name_too_long" in status.message
    assert values["cameras"] == "0" and h.captions == []
    assert all(len(s.name.encode()) < 1_000 for arr in h.diagnostics for s in arr.status)


def test_embedding_kind_constant_matches_the_core():
    assert Embedding.KIND_PREDICTED == KIND_PREDICTED
    assert int(DecodeReason.CONFIRM) == Caption.REASON_CONFIRM


def _env():
    return dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")


def test_console_script_refuses_to_start_with_one_line_naming_the_parameter(tmp_path):
    result = subprocess.run(
        node_command("vljepa_ros.nodes.decoder_node", {"bank_path": tmp_path / "missing.npz"}),
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(),
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "bank_path" in lines[0] and "refusing to start" in lines[0]


def test_console_script_with_remapped_input_captions_a_stream():
    proc = subprocess.Popen(
        node_command(
            "vljepa_ros.nodes.decoder_node",
            {
                "bank_path": BANK_PATH,
                "threshold": "0.03",
                "window": "3",
                "settle": "2",
                "provisional": "false",
                "reconfirm_s": "0.0",
            },
            ros_args=["-r", "~/embedding:=/vljepa_perception/embedding"],
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
    )
    rclpy.init()
    peer = rclpy.create_node("decoder_process_peer")
    captions = []
    pub = peer.create_publisher(Embedding, "/vljepa_perception/embedding", QoSProfile(depth=100))
    peer.create_subscription(Caption, "/vljepa_decoder/caption", captions.append, 10)
    executor = SingleThreadedExecutor()
    executor.add_node(peer)
    try:
        deadline = time.monotonic() + 30
        while (
            (pub.get_subscription_count() == 0 or peer.count_publishers("/vljepa_decoder/caption") == 0)
            and time.monotonic() < deadline
            and proc.poll() is None
        ):
            executor.spin_once(timeout_sec=0.1)
        stream = make_stream(BANK, [idx(WALK[0]), idx(WALK[3])], [10.0, 10.0], noise=0.2, seed=9)
        for stamp, vec in zip(stream.stamps_ns, stream.vectors):
            pub.publish(embedding_msg(stamp, vec))
            executor.spin_once(timeout_sec=0.02)  # pace the publisher a little; reliable QoS does the rest
        while len(captions) < 2 and time.monotonic() < deadline and proc.poll() is None:
            executor.spin_once(timeout_sec=0.1)
    finally:
        proc.terminate()
        output = proc.communicate(timeout=20)[0]
        executor.shutdown()
        peer.destroy_node()
        rclpy.shutdown()
    assert [c.text for c in captions] == [WALK[0], WALK[3]], output
