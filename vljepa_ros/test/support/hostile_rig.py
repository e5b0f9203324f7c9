"""The hostile-input fuzz against the node PROCESSES, shared by test_fuzz_hostile.py and
benchmarks/bench_hostile_input.py: what was sent by category, what /diagnostics counted by reason, the
process's memory (VmRSS / VmHWM from /proc) before, during and after.

Every message is published RELIABLE with a history deeper than a chunk and the node's subscription is as deep,
and each chunk is waited for until the node reports it received, so nothing is lost in transport and the
counts must match exactly (the decoder also reports lost_in_transport, which must stay 0).
"""

from __future__ import annotations

import array
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field

import cv2
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from vljepa_msgs.msg import Caption, Embedding
from vljepa_ros.nodes.ros_conversions import BAD_STAMP
from vljepa_ros.tools.node_process import node_command, stop_process

from support.hostile_inputs import (
    BAD_NANOSEC,
    INT32_MAX,
    INT32_MIN,
    NS_PER_S,
    compressed_bombs,
    corrupt_body_jpeg,
    huge_raw_headers,
    real_png,
    thin_frames,
)
from support.perception_fixtures import moving_frame
from support.reliability_fixtures import (
    CompressedFields,
    ImageFields,
    image_corpus,
    malformed_compressed,
    rgb8_fields,
)
from support.selective_streams import BANK_PATH, load_bank, make_stream

PERCEPTION = "vljepa_perception"
DECODER = "vljepa_decoder"
FRAME_RATE_HZ = 10.0
PERIOD_NS = int(NS_PER_S / FRAME_RATE_HZ)  # every frame sent this far after the last sampled one is due
BETWEEN_NS = 1_000_000  # a frame this soon after a sampled one is sub-sampled: its payload is never decoded
MAX_PIXELS = 1024 * 1024  # test limits (node parameters), small enough to send the largest frames quickly
MAX_BYTES = 4 * 2**20
CLIP_FRAMES = 8  # the tiny model's clip
CHUNK = 40
QOS_DEPTH = 1000
LARGE_MESSAGE_BYTES = 256 * 1024
SAMPLED, SUBSAMPLED = "sampled", "subsampled"


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak so far) of process ``pid`` in MiB, from /proc/<pid>/status."""
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024  # kB
    return values


@dataclass
class Sent:
    """A message to publish and what the node must count it as (SAMPLED, SUBSAMPLED or malformed.<reason>)."""

    camera: str
    category: str
    stamp: tuple[int, int]  # (sec, nanosec), written as is
    fields: ImageFields | CompressedFields
    outcome: str


@dataclass
class Schedule:
    """Messages per camera in send order, with stamps placed so each one's sampling outcome is known."""

    messages: list[Sent] = field(default_factory=list)
    clock_ns: dict[str, int] = field(default_factory=dict)

    def due(self, camera: str, category: str, fields, start_ns: int = 1_000 * NS_PER_S) -> None:
        """A frame stamped one period after the camera's previous one: sampled unless malformed."""
        stamp_ns = self.clock_ns.get(camera, start_ns - PERIOD_NS) + PERIOD_NS
        self.clock_ns[camera] = stamp_ns
        outcome = SAMPLED if fields.expected is None else f"malformed.{fields.expected}"
        self.messages.append(Sent(camera, category, divmod(stamp_ns, NS_PER_S), fields, outcome))

    def between(self, camera: str, category: str, fields) -> None:
        """A frame just after the camera's previous (sampled) one: sub-sampled unless its header is refused."""
        stamp_ns = self.clock_ns[camera] + BETWEEN_NS
        outcome = SUBSAMPLED if fields.expected is None else f"malformed.{fields.expected}"
        self.messages.append(Sent(camera, category, divmod(stamp_ns, NS_PER_S), fields, outcome))

    def bad_stamp(self, camera: str, category: str, fields, nanosec: int) -> None:
        """A valid frame whose nanosec is out of range: malformed.bad_stamp whatever its pixels."""
        sec = self.clock_ns[camera] // NS_PER_S
        self.messages.append(Sent(camera, category, (sec, nanosec), fields, f"malformed.{BAD_STAMP}"))

    def exact(self, camera: str, category: str, fields, sec: int, nanosec: int) -> None:
        """A valid frame with exactly this stamp (the caller keeps the camera's stamps a period apart)."""
        self.messages.append(Sent(camera, category, (sec, nanosec), fields, SAMPLED))


def _good_rgb(t_s: float) -> ImageFields:
    return rgb8_fields(moving_frame(t_s))


def _jpeg(rgb: np.ndarray) -> CompressedFields:
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]))
    assert ok
    return CompressedFields("jpeg", buf.tobytes(), None)


def perception_schedule(large_png: bytes, scale: int = 1, seed: int = 7) -> Schedule:
    """The hostile messages for the perception node, a good camera interleaved every few messages.

    Cameras: ``raw`` (Image: the seeded malformed corpus, thin frames, huge headers, bad stamps, frames between
    samples), ``jpeg`` (CompressedImage: corrupt payloads, bombs by header, the large PNG, sound-header payloads
    between samples), ``good`` (a normal rgb8 camera), ``stamp_min`` / ``stamp_max`` (a clip at sec = -2^31
    and at sec = 2^31 - 1, whose outputs must carry the stamp field for field).
    """
    rng = np.random.default_rng(seed)
    plan = Schedule()
    hostile = Schedule()
    good_jpeg = _jpeg(moving_frame(0.0))
    for item in image_corpus(seed=seed, count=200 * scale, malformed_fraction=0.8):
        if item.encoding.isascii() and "\x00" not in item.encoding:  # what survives a ROS string unchanged
            hostile.due("raw", "corpus", item)
    for item in thin_frames(MAX_PIXELS, MAX_BYTES):
        hostile.due("raw", "thin", item)
    for item in huge_raw_headers():
        hostile.due("raw", "huge_header", item)
    valid = _good_rgb(0.5)
    for nanosec in BAD_NANOSEC * scale:
        hostile.due("raw", "valid", valid)
        hostile.bad_stamp("raw", "bad_stamp", valid, nanosec)
        hostile.between("raw", "between", valid)
    for _ in range(80 * scale):
        item = malformed_compressed(rng) if rng.random() < 0.8 else good_jpeg
        hostile.due("jpeg", "corrupt", item)
    bombs = compressed_bombs(large_png, MAX_PIXELS)
    for _ in range(3 * scale):
        for bomb in bombs:
            hostile.due("jpeg", "bomb", bomb)  # due for sampling, refused by header before any decoding
            hostile.due("jpeg", "good", good_jpeg)
            hostile.between("jpeg", "between", CompressedFields("jpeg", corrupt_body_jpeg(), None))
            hostile.between("jpeg", "bomb", bomb)
    hostile.due("jpeg", "large_png_within_limit", CompressedFields("png", real_png(1000, 1000), None))
    # Stamps at the int32 limits, each in a clip of its own camera (a camera's stamps only move forward).
    for k in range(CLIP_FRAMES):
        hostile.exact("stamp_min", "stamp_limit", _good_rgb(k / FRAME_RATE_HZ), INT32_MIN, k * PERIOD_NS)
    for k in range(CLIP_FRAMES):
        nanosec = NS_PER_S - 1 - (CLIP_FRAMES - 1 - k) * PERIOD_NS  # the newest at the largest stamp there is
        hostile.exact("stamp_max", "stamp_limit", _good_rgb(k / FRAME_RATE_HZ), INT32_MAX, nanosec)
    for i, message in enumerate(hostile.messages):
        if i % 5 == 0:
            t_s = len(plan.messages) / 10
            plan.due("good", "good_camera", _good_rgb(t_s))
        plan.messages.append(message)
    for k in range(2 * CLIP_FRAMES):  # the good camera after the storm
        plan.due("good", "good_camera", _good_rgb(100 + k / FRAME_RATE_HZ))
    return plan


def _image_msg(sent: Sent) -> Image | CompressedImage:
    f = sent.fields
    msg = CompressedImage() if isinstance(f, CompressedFields) else Image()
    msg.header.stamp.sec, msg.header.stamp.nanosec = sent.stamp
    msg.header.frame_id = sent.camera
    if isinstance(f, CompressedFields):
        msg.format = f.format
    else:
        msg.encoding, msg.height, msg.width, msg.step = f.encoding, f.height, f.width, f.step
        msg.is_bigendian = int(f.is_bigendian)
    msg.data = f.data
    return msg


PERCEPTION_CAMERAS = {
    "raw": "/hostile_raw/image_raw",
    "jpeg": "/hostile_jpeg/image_raw/compressed",
    "good": "/hostile_good/image_raw",
    "stamp_min": "/hostile_stamp_min/image_raw",
    "stamp_max": "/hostile_stamp_max/image_raw",
}


class _ProcessRig:
    """A node process plus an in-test node that publishes, listens to /diagnostics and samples memory."""

    def __init__(self, command: list[str], log_path, name: str):
        self.log_path = log_path
        self.log = open(log_path, "w")  # noqa: SIM115 (closed in close())
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        self.node = rclpy.create_node(name)
        self.qos = QoSProfile(depth=QOS_DEPTH, reliability=ReliabilityPolicy.RELIABLE)
        self.statuses: dict[str, dict[str, str]] = {}
        self.arrays: list[DiagnosticArray] = []
        self.rss_max_mb = 0.0
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 100)

    def _on_diagnostics(self, array: DiagnosticArray) -> None:
        self.arrays.append(array)
        for status in array.status:
            self.statuses[status.name] = {kv.key: kv.value for kv in status.values}

    def memory(self) -> dict[str, float]:
        values = memory_mb(self.process.pid)
        self.rss_max_mb = max(self.rss_max_mb, values["VmRSS"])
        return values

    def spin_until(self, condition, timeout_s: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"node exited with {self.process.returncode}: {self.log_tail()}"
            rclpy.spin_once(self.node, timeout_sec=0.02)
            if condition():
                return True
        return False

    def log_tail(self) -> str:
        self.log.flush()
        return self.log_path.read_text()[-3000:]

    def close(self) -> int | None:
        returncode = stop_process(self.process, timeout_s=20)
        self.node.destroy_node()
        self.log.close()
        return returncode


def _count(values: dict[str, str], key: str) -> int:
    return int(values.get(key, -1))


def run_perception_fuzz(manifest, log_path, large_png: bytes, scale: int = 1) -> dict:
    """Run the hostile schedule against a perception_node process; returns sent / counted / memory / outputs."""
    params = {
        "model_manifest": manifest,
        "providers": "[cpu]",
        "camera_topics": "[" + ",".join(PERCEPTION_CAMERAS.values()) + "]",
        "camera_names": "[" + ",".join(PERCEPTION_CAMERAS) + "]",
        "input_qos": "DEFAULT",
        "input_qos_depth": str(QOS_DEPTH),
        "queue_depth": "100",
        "frame_rate_hz": str(FRAME_RATE_HZ),
        "max_frame_pixels": str(MAX_PIXELS),
        "max_frame_bytes": str(MAX_BYTES),
        "transition_horizon_s": "0.0",
        "publish_visual_state": "false",
        "diagnostics_period_s": "0.2",
        "stall_timeout_s": "60.0",
    }
    plan = perception_schedule(large_png, scale)
    rig = _ProcessRig(node_command("vljepa_ros.nodes.perception_node", params), log_path, "hostile_perception_rig")
    embeddings: list[Embedding] = []
    rig.node.create_subscription(Embedding, f"/{PERCEPTION}/embedding", embeddings.append, QOS_DEPTH)
    publishers = {
        camera: rig.node.create_publisher(CompressedImage if camera == "jpeg" else Image, topic, rig.qos)
        for camera, topic in PERCEPTION_CAMERAS.items()
    }
    status = lambda camera: rig.statuses.get(f"{PERCEPTION}: camera {camera}", {})  # noqa: E731
    sent = Counter()
    try:
        assert rig.spin_until(
            lambda: (
                all(p.get_subscription_count() for p in publishers.values())
                and all(_count(status(c), "frames_received") == 0 for c in PERCEPTION_CAMERAS)
            )
        ), f"perception node did not come up: {rig.log_tail()}"
        before = rig.memory()

        def wait_received() -> None:
            assert rig.spin_until(
                lambda: all(_count(status(c), "frames_received") == sent[c] for c in PERCEPTION_CAMERAS)
            ), (dict(sent), {c: status(c).get("frames_received") for c in PERCEPTION_CAMERAS}, rig.log_tail())
            rig.memory()

        for start in range(0, len(plan.messages), CHUNK):
            for message in plan.messages[start : start + CHUNK]:
                publishers[message.camera].publish(_image_msg(message))
                sent[message.camera] += 1
                if len(message.fields.data) > LARGE_MESSAGE_BYTES:
                    wait_received()  # one multi-megabyte frame in flight at a time, as a camera would send them
            wait_received()
        good_clips = sum(1 for m in plan.messages if m.camera == "good") - CLIP_FRAMES + 1
        assert rig.spin_until(
            lambda: (
                sum(1 for e in embeddings if e.camera == "good") >= good_clips
                and {e.camera for e in embeddings} >= {"stamp_min", "stamp_max"}
            )
        ), ({c: status(c) for c in ("good", "stamp_min", "stamp_max")}, rig.log_tail())
        rig.spin_until(lambda: False, timeout_s=0.5)  # one more diagnostics period with the final counts
        after = rig.memory()
        alive = rig.process.poll() is None
    finally:
        returncode = rig.close()
    return {
        "sent": _sent_summary(plan),
        "counted": {c: status(c) for c in PERCEPTION_CAMERAS},
        "memory_mb": {
            "before_rss": before["VmRSS"],
            "peak_rss": after["VmHWM"],
            "during_max_rss": rig.rss_max_mb,
            "after_rss": after["VmRSS"],
        },
        "embeddings": embeddings,
        "alive_at_end": alive,
        "returncode": returncode,
        "expected_good_clips": good_clips,
    }


def _sent_summary(plan: Schedule) -> dict:
    """camera -> {"by_category": Counter, "by_outcome": Counter}."""
    summary: dict[str, dict[str, Counter]] = {}
    for message in plan.messages:
        entry = summary.setdefault(message.camera, {"by_category": Counter(), "by_outcome": Counter()})
        entry["by_category"][message.category] += 1
        entry["by_outcome"][message.outcome] += 1
    return summary


# ----- decoder ------------------------------------------------------------------------------------------


def _embedding(camera: str, stamp_ns: int, vector: np.ndarray) -> Embedding:
    msg = Embedding()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(stamp_ns), NS_PER_S)
    msg.header.frame_id = "hostile"
    msg.kind, msg.camera, msg.model_version, msg.query = Embedding.KIND_PREDICTED, camera, "v1", "describe"
    vector = np.ascontiguousarray(vector, dtype=np.float32)
    msg.shape = array.array("I", [vector.size])
    msg.data = array.array("f", vector.tobytes())
    return msg


DECODER_MAX_STREAMS = 64
DECODER_EXPIRY_S = 2.0


def run_decoder_flood(log_path, names: int = 3000, good_every: int = 30) -> dict:
    """Flood a decoder_node process with ``names`` distinct camera names (one embedding each), a good stream
    interleaved; then, after the flood's streams went idle for longer than stream_expiry_s, a second smaller
    flood that finds them expired. Returns sent / counted / memory / captions."""
    params = {
        "bank_path": str(BANK_PATH),
        "max_streams": str(DECODER_MAX_STREAMS),
        "stream_expiry_s": str(DECODER_EXPIRY_S),
        "input_qos_depth": str(QOS_DEPTH),
        "diagnostics_period_s": "0.2",
        "statistics_period_s": "0.5",
    }
    bank = load_bank()
    good = make_stream(bank, [0, 5, 10, 15], [20.0, 20.0, 20.0, 20.0], rate_hz=2.0, noise=0.3)
    rng = np.random.default_rng(3)
    rig = _ProcessRig(node_command("vljepa_ros.nodes.decoder_node", params), log_path, "hostile_decoder_rig")
    captions: list[Caption] = []
    rig.node.create_subscription(Caption, f"/{DECODER}/caption", captions.append, QOS_DEPTH)
    publisher = rig.node.create_publisher(Embedding, f"/{DECODER}/embedding", rig.qos)
    node_status = lambda: rig.statuses.get(f"{DECODER}: decoder", {})  # noqa: E731
    sent = Counter()
    good_index = 0

    def send_good() -> None:
        nonlocal good_index
        i = good_index % len(good.stamps_ns)
        publisher.publish(_embedding("good", good.stamps_ns[i], good.vectors[i]))
        good_index += 1
        sent["good"] += 1

    def flood(prefix: str, count: int) -> None:
        for i in range(count):
            vector = bank.embeddings[int(rng.integers(len(bank)))]
            publisher.publish(_embedding(f"{prefix}{i:05d}", 1_000 * NS_PER_S + i, vector))
            sent["flood"] += 1
            if i % good_every == 0:
                send_good()
            if (i + 1) % (CHUNK * 5) == 0:
                wait_received()

    def wait_received() -> None:
        assert rig.spin_until(lambda: _count(node_status(), "embeddings_received") == sum(sent.values())), (
            dict(sent),
            node_status(),
            rig.log_tail(),
        )
        rig.memory()

    try:
        assert rig.spin_until(
            lambda: publisher.get_subscription_count() and _count(node_status(), "embeddings_received") == 0
        ), f"decoder node did not come up: {rig.log_tail()}"
        before = rig.memory()
        flood("flood_a_", names)
        wait_received()
        # The good stream alone for longer than the expiry: the flood's streams go idle and expire.
        deadline = time.monotonic() + DECODER_EXPIRY_S * 1.5
        while time.monotonic() < deadline:
            send_good()
            rig.spin_until(lambda: False, timeout_s=0.1)
        flood("flood_b_", max(names // 10, DECODER_MAX_STREAMS * 2))
        wait_received()
        rig.spin_until(lambda: False, timeout_s=0.5)
        after = rig.memory()
        alive = rig.process.poll() is None
    finally:
        returncode = rig.close()
    most_streams = max(
        (
            max(
                int(s.values[[kv.key for kv in s.values].index("cameras")].value)
                for s in a.status
                if s.name == f"{DECODER}: decoder"
            )
            for a in rig.arrays
            if any(s.name == f"{DECODER}: decoder" for s in a.status)
        ),
        default=0,
    )
    most_camera_statuses = max(
        (sum(1 for s in a.status if s.name.startswith(f"{DECODER}: camera ")) for a in rig.arrays), default=0
    )
    return {
        "sent": dict(sent),
        "counted": node_status(),
        "good_camera": rig.statuses.get(f"{DECODER}: camera good", {}),
        "most_streams_reported": most_streams,
        "most_camera_statuses_in_one_array": most_camera_statuses,
        "memory_mb": {
            "before_rss": before["VmRSS"],
            "peak_rss": after["VmHWM"],
            "during_max_rss": rig.rss_max_mb,
            "after_rss": after["VmRSS"],
        },
        "good_captions": [c for c in captions if c.camera == "good"],
        "alive_at_end": alive,
        "returncode": returncode,
    }
