"""Faults a deployed node meets, each injected for real: broken model files, an execution provider that cannot
start, a camera that stalls and comes back, a bag whose clock jumps, and invalid parameter values.

Start-up faults run the real console-script processes (`perception_node`, `replay`) and read what a user
sees: the exit code and the lines on the terminal.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from vljepa_msgs.msg import Embedding
from vljepa_ros.bags import bag_io
from vljepa_ros.nodes.perception_node import PerceptionNode
from vljepa_ros.nodes.ros_conversions import ns_to_time, time_to_ns
from vljepa_ros.nodes.spinning import NodeSpinner
from vljepa_ros.tools import replay
from vljepa_ros.tools.node_process import node_command, stop_process

from support.perception_fixtures import moving_frame, tiny_random_manifest
from support.polling import wait_until
from support.reliability_fixtures import BagFrame, rgb8_fields, write_camera_bag
from support.selective_streams import BANK_PATH

MS = 1_000_000
S = 1_000 * MS


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    return tiny_random_manifest(tmp_path_factory)


def model_copy(manifest: Path, dest: Path) -> Path:
    """A private copy of the model folder to break; returns its manifest path."""
    shutil.copytree(manifest.parent, dest)
    return dest / manifest.name


def non_empty_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def run_node_once(params: dict[str, object], timeout_s: float = 120) -> subprocess.CompletedProcess:
    """Run the perception_node process with ``-p`` parameters until it exits by itself."""
    command = node_command("vljepa_ros.nodes.perception_node", params)
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)


def run_replay_cli(bag: Path, out: Path, model: Path) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "-m",
        "vljepa_ros.tools.replay",
        str(bag),
        "--out",
        str(out),
        "--model",
        str(model),
        "--no-report",
        "--quiet",
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def small_bag(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("faults") / "small"
    write_camera_bag(
        path,
        [
            BagFrame("/camera/image_raw", t, t, rgb8_fields(moving_frame(t / 1e9)))
            for t in range(100 * S, 103 * S, 100 * MS)
        ],
    )
    return path


# ----- broken model files --------------------------------------------------------------------------------


def _missing_predictor(model: Path) -> str:
    (model.parent / "predictor.onnx").unlink()
    return "predictor.onnx"


def _garbage_encoder_with_matching_hash(model: Path) -> str:
    """Corrupt bytes whose sha256 the manifest is updated to carry: only parsing the graph can catch it."""
    encoder = model.parent / "encoder.onnx"
    old = hashlib.sha256(encoder.read_bytes()).hexdigest()
    garbage = b"\x08\x07\x12\x04junk" + bytes(range(256)) * 40
    encoder.write_bytes(garbage)
    model.write_text(model.read_text().replace(old, hashlib.sha256(garbage).hexdigest()))
    return "encoder.onnx"


def _truncated_manifest(model: Path) -> str:
    text = model.read_text()
    model.write_text(text[: len(text) // 3] + "\n  - [unclosed")
    return "manifest"


BREAKAGES = {
    "missing_file": _missing_predictor,
    "corrupt_onnx": _garbage_encoder_with_matching_hash,
    "corrupt_manifest": _truncated_manifest,
}


@pytest.mark.ros
@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_broken_model_makes_node_and_replay_refuse_with_one_line(breakage, manifest, small_bag, tmp_path):
    model = model_copy(manifest, tmp_path / "model")
    named = BREAKAGES[breakage](model)

    node = run_node_once({"model_manifest": model, "providers": "[cpu]"})
    assert node.returncode == 2, node.stderr
    lines = non_empty_lines(node.stderr)
    assert len(lines) == 1 and "refusing to start" in lines[0] and named in lines[0], node.stderr
    assert "Traceback" not in node.stdout + node.stderr

    tool = run_replay_cli(small_bag, tmp_path / "out", model)
    assert tool.returncode == 2, tool.stderr
    lines = non_empty_lines(tool.stderr)
    assert len(lines) == 1 and lines[0].startswith("replay:") and named in lines[0], tool.stderr
    assert not (tmp_path / "out" / "bag").exists()  # nothing half-written


# ----- execution provider that cannot start ----------------------------------------------------------------


@pytest.mark.ros
def test_unavailable_gpu_providers_fall_back_to_cpu_and_say_why(manifest, tmp_path):
    log = tmp_path / "node.log"
    params = {"model_manifest": manifest, "providers": "[tensorrt,cuda,cpu]"}
    command = node_command("vljepa_ros.nodes.perception_node", params)
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and "CPUExecutionProvider" not in log.read_text():
                assert process.poll() is None, log.read_text()
                time.sleep(0.2)
            time.sleep(0.5)
            assert process.poll() is None, log.read_text()  # it runs: the fallback is not a refusal
        finally:
            stop_process(process, timeout_s=30)
    text = log.read_text()
    assert process.returncode == 0, text
    assert "CPUExecutionProvider" in text
    # The user is told which preferred providers were skipped and why, not just where it ended up.
    for provider in ("tensorrt", "cuda"):
        assert any(provider in line.lower() and "not available" in line for line in text.splitlines()), text


# ----- in-process node over DDS ---------------------------------------------------------------------------


class NodeRig:
    """The perception node and a helper node (camera publisher, diagnostics listener) spinning in a thread."""

    TOPIC = "/fault_cam/image_raw"

    def __init__(self, manifest: Path, **params):
        values = dict(
            model_manifest=str(manifest),
            providers=["cpu"],
            camera_topics=[self.TOPIC],
            input_qos="DEFAULT",
            input_qos_depth=50,
            diagnostics_period_s=0.2,
            transition_horizon_s=0.0,
        )
        values.update(params)
        self.perception = PerceptionNode(parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
        self.node = rclpy.create_node("fault_rig")
        self.camera = self.node.create_publisher(
            Image, self.TOPIC, QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        )
        self.statuses: list[tuple[float, DiagnosticStatus]] = []
        self.embeddings: list[Embedding] = []
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)
        self.node.create_subscription(Embedding, "/vljepa_perception/embedding", self.embeddings.append, 50)
        self.spinner = NodeSpinner([self.perception, self.node])
        self.spinner.start()

    def _on_diagnostics(self, array: DiagnosticArray) -> None:
        for status in array.status:
            if status.name.endswith("camera fault_cam"):
                self.statuses.append((time.monotonic(), status))

    def wait_for(self, condition, timeout_s=30.0) -> bool:
        return wait_until(condition, timeout_s)

    def stream(self, seconds: float, start_ns: int) -> int:
        """Publish a live 20 Hz camera for ``seconds`` of wall time; returns the next stamp."""
        stamp, end = start_ns, time.monotonic() + seconds
        while time.monotonic() < end:
            frame = moving_frame(stamp / 1e9, 48, 64)
            msg = Image(encoding="rgb8", height=48, width=64, step=64 * 3, data=frame.tobytes())
            msg.header.stamp = ns_to_time(stamp)
            self.camera.publish(msg)
            stamp += 50 * MS
            time.sleep(0.05)
        return stamp

    def close(self) -> None:
        self.spinner.shutdown()
        self.perception.destroy_node()
        self.node.destroy_node()


def _byte(value) -> int:
    return value[0] if isinstance(value, bytes) else int(value)


def _level(status: DiagnosticStatus) -> int:
    return _byte(status.level)


OK, WARN = _byte(DiagnosticStatus.OK), _byte(DiagnosticStatus.WARN)


@pytest.mark.ros
def test_camera_stall_warns_on_diagnostics_and_clears_when_frames_resume(ros, manifest):
    rig = NodeRig(manifest, stall_timeout_s=1.0)
    try:
        assert rig.wait_for(lambda: rig.camera.get_subscription_count() > 0 and rig.statuses)
        assert "no frame yet" in rig.statuses[-1][1].message and _level(rig.statuses[-1][1]) == WARN
        stamp = rig.stream(2.0, 10 * S)
        assert rig.wait_for(lambda: _level(rig.statuses[-1][1]) == OK), [
            (_level(s), s.message) for _, s in rig.statuses[-3:]
        ]
        ok_at = time.monotonic()

        def stall_warnings():  # the camera is now quiet for longer than stall_timeout_s
            return [s for t, s in rig.statuses if t > ok_at and _level(s) == WARN]

        # Waiting for the WARN rather than sleeping a fixed time: a loaded machine may delay the timer.
        assert rig.wait_for(stall_warnings), [s.message for _, s in rig.statuses[-5:]]
        assert "no frame for" in stall_warnings()[-1].message, [s.message for _, s in rig.statuses[-5:]]
        resumed_at = time.monotonic()
        rig.stream(1.5, stamp)
        assert rig.wait_for(lambda: rig.statuses[-1][0] > resumed_at and _level(rig.statuses[-1][1]) == OK)
        assert rig.statuses[-1][1].message == "ok"
        assert rig.wait_for(lambda: any(time_to_ns(m.header.stamp) >= stamp for m in rig.embeddings))
    finally:
        rig.close()


@pytest.mark.ros
def test_invalid_parameter_values_are_rejected_with_a_reason_and_the_old_value_kept(ros, manifest):
    rig = NodeRig(manifest)
    client = AsyncParameterClient(rig.node, "vljepa_perception")
    try:
        assert client.wait_for_services(timeout_sec=20)

        def set_remote(*params):
            future = client.set_parameters(list(params))
            assert rig.wait_for(future.done)
            return future.result().results

        before = dict(
            query=rig.perception.pipeline.query,
            transition=rig.perception.pipeline.transition_query,
            actions=rig.perception.pipeline.action_vocabulary,
        )
        cases = [
            ([Parameter("query", value="qwzx vbnm")], "query"),  # no word the model knows
            ([Parameter("action_vocabulary", value=["pick up", "   "])], "action_vocabulary"),
            ([Parameter("transition_query", value="x " * 400)], "transition_query"),  # longer than max_tokens
            ([Parameter("query", value=42)], "query"),  # wrong type
            ([Parameter("max_batch", value=0)], "max_batch"),  # read-only after start
        ]
        for params, name in cases:
            result = set_remote(*params)[0]
            assert not result.successful and result.reason, (name, result)
            assert name in result.reason or "read-only" in result.reason or "type" in result.reason.lower(), (
                result.reason
            )
        # All or nothing: a valid change sent atomically with an invalid one is not applied either.
        future = client.set_parameters_atomically(
            [Parameter("query", value="what changed"), Parameter("transition_query", value="qwzx")]
        )
        assert rig.wait_for(future.done)
        assert not future.result().result.successful and "transition_query" in future.result().result.reason
        after = dict(
            query=rig.perception.pipeline.query,
            transition=rig.perception.pipeline.transition_query,
            actions=rig.perception.pipeline.action_vocabulary,
        )
        assert after == before
        future = client.get_parameters(["query", "transition_query", "max_batch"])
        assert rig.wait_for(future.done)
        values = [v.string_value for v in future.result().values[:2]] + [future.result().values[2].integer_value]
        assert values == ["", "", 8]
        # The node is still serving with the old values.
        rig.stream(3.0, 50 * S)
        assert rig.wait_for(lambda: len(rig.embeddings) > 0)
        assert {m.query for m in rig.embeddings} == {before["query"]}
    finally:
        rig.close()


# ----- a bag whose clock jumps ---------------------------------------------------------------------------


def jumping_bag(path: Path) -> dict:
    """30 Hz frames in four runs: normal; +1 h forward jump; a 0.4 s step back; a 2 h jump back (clock reset).

    Returns the stamps of each run.
    """
    runs = {"start": 1_000 * S, "forward": 4_600 * S, "back_small": 4_600 * S + 3 * S - 400 * MS, "reset": 100 * S}
    stamps, frames, bag_time = {}, [], 1
    for name, start in runs.items():
        stamps[name] = [start + i * 33 * MS for i in range(90)]  # 3 s each
        for stamp in stamps[name]:
            bag_time += MS
            frames.append(
                BagFrame("/camera/image_raw", bag_time, stamp, rgb8_fields(moving_frame(stamp / 1e9, 48, 64)))
            )
    write_camera_bag(path, frames)
    return stamps


def test_bag_with_clock_jumps_replays_with_every_frame_accounted_and_no_clip_across_a_jump(manifest, tmp_path):
    stamps = jumping_bag(tmp_path / "jumps")
    assert (
        replay.main(
            [
                str(tmp_path / "jumps"),
                "--out",
                str(tmp_path / "out"),
                "--model",
                str(manifest),
                "--no-report",
                "--quiet",
            ]
        )
        == 0
    )
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    camera = summary["cameras"]["camera"]
    assert summary["all_frames_accounted"] and camera["frames_read"] == 4 * 90
    # Only the frames stamped before what was already sampled are late; the rest of that run is used.
    late = camera["frames_by_fate"].get("dropped.out_of_order", 0)
    assert 0 < late <= 13
    store = bag_io.make_typestore()
    clip_span_ns = 7 * 250 * MS
    run_of = {s: name for name, run in stamps.items() for s in run}
    outputs = [m for _, m in bag_io.read_messages(tmp_path / "out" / "bag", replay.TOPIC_EMBEDDING, store)]
    for msg in outputs:
        start, end = time_to_ns(msg.clip_start), time_to_ns(msg.header.stamp)
        assert 0 < end - start <= clip_span_ns + 33 * MS, (start, end)  # a clip never spans a jump
        assert run_of[start] == run_of[end] or {run_of[start], run_of[end]} == {"forward", "back_small"}
    # Every run after a jump produces output again.
    assert {run_of[time_to_ns(m.header.stamp)] for m in outputs} == set(stamps)
    for _, msg in bag_io.read_messages(tmp_path / "out" / "bag", replay.TOPIC_TRANSITION, store):
        before, after = time_to_ns(msg.before_stamp), time_to_ns(msg.after_stamp)
        assert 0 < after - before <= 2 * S + 250 * MS, (before, after)


def test_selective_decoding_resumes_after_a_camera_clock_restart():
    from vljepa_ros.decoding.change_detection import ChangeDetectorConfig
    from vljepa_ros.decoding.decoders import RetrievalDecoder
    from vljepa_ros.decoding.pipeline import DecodingPipeline, RejectedEmbedding

    bank = BANK_PATH
    decoder = RetrievalDecoder.from_file(bank)
    pipeline = DecodingPipeline(decoder, ChangeDetectorConfig())
    vectors = decoder.bank.embeddings
    events, rejected = [], 0
    for start_s in (1_000, 100):  # the camera clock restarts 900 s earlier
        for i in range(40):
            try:
                event = pipeline.feed("cam", "cam", start_s * S + i * 250 * MS, vectors[(i // 20) % len(vectors)])
            except RejectedEmbedding:
                rejected += 1
                continue
            if event is not None:
                events.append((start_s, event))
    assert rejected == 0
    assert any(start_s == 100 for start_s, _ in events)  # captions resume on the new clock
