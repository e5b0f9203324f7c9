"""Fuzz: seeded malformed Image / CompressedImage inputs against the conversion core and the running node.

The core gets thousands of inputs (fast, no DDS); the real `perception_node` process gets a few hundred over
real DDS and must count every malformed one on /diagnostics, exactly by reason, stay alive, and still
produce embeddings for good frames afterwards.
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter

import cv2
import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from vljepa_msgs.msg import Embedding
from vljepa_ros.nodes.ros_conversions import ns_to_time, time_to_ns
from vljepa_ros.perception.image_conversion import (
    CORRUPT_COMPRESSED,
    REASONS,
    ImageConversionError,
    check_image,
    compressed_to_rgb,
    image_to_rgb,
)
from vljepa_ros.tools.node_process import node_command, stop_process

from support.perception_fixtures import moving_frame, tiny_random_manifest
from support.reliability_fixtures import (
    IMAGE_DEFECTS,
    CompressedFields,
    ImageFields,
    expected_counts,
    image_corpus,
    malformed_compressed,
    mutated_compressed,
)

CORE_IMAGES = 6000
CORE_COMPRESSED = 2000
NODE_IMAGES = 400
NODE_COMPRESSED = 120


def _outcome(fn, *args):
    """('ok', result) or ('error', reason); any other exception propagates and fails the test."""
    try:
        return "ok", fn(*args)
    except ImageConversionError as err:
        assert err.reason in REASONS
        return "error", err.reason


def test_image_conversion_survives_thousands_of_malformed_images_with_the_right_reason():
    corpus = image_corpus(seed=1234, count=CORE_IMAGES)
    seen = Counter()
    for item in corpus:
        kind, value = _outcome(image_to_rgb, *item.args())
        checked, reason = _outcome(
            check_image, item.encoding, item.height, item.width, item.step, item.is_bigendian, len(item.data)
        )
        if item.expected is None:
            assert kind == "ok" and checked == "ok", (item.encoding, item.height, item.width, item.step, value)
            assert value.shape == (item.height, item.width, 3) and value.dtype == np.uint8
        else:
            # The O(1) check the node runs on every frame and the full conversion agree on the reason.
            assert (kind, value) == ("error", item.expected), (item.encoding, item.height, item.width, item.step)
            assert (checked, reason) == ("error", item.expected)
        seen[item.expected] += 1
    assert set(IMAGE_DEFECTS) <= set(seen) and seen[None] > 500


def test_compressed_decoding_survives_corrupt_and_mutated_payloads():
    rng = np.random.default_rng(99)
    corrupt = [malformed_compressed(rng) for _ in range(CORE_COMPRESSED)]
    for item in corrupt:
        assert _outcome(compressed_to_rgb, item.format, item.data) == ("error", item.expected), item.data[:16]
    assert len(expected_counts(corrupt)) == 3
    decoded = 0
    for item in (mutated_compressed(rng) for _ in range(CORE_COMPRESSED // 2)):
        kind, value = _outcome(compressed_to_rgb, item.format, item.data)
        if kind == "ok":
            decoded += 1
            assert value.ndim == 3 and value.shape[2] == 3 and value.dtype == np.uint8
        else:
            assert value == CORRUPT_COMPRESSED
    assert 0 < decoded < CORE_COMPRESSED // 2  # both outcomes were exercised


# ----- the running node ----------------------------------------------------------------------------------

RAW_TOPIC = "/fuzz_raw/image_raw"
JPEG_TOPIC = "/fuzz_jpeg/image_raw/compressed"
NODE = "/vljepa_perception"
PERIOD_NS = 300_000_000  # > 1/4 Hz: every compressed frame is due for sampling, so every payload is decoded


def _wire_safe(item: ImageFields) -> bool:
    # A NUL or non-ASCII character does not survive a ROS string field unchanged ("rgb8\0" arrives as "rgb8").
    return item.encoding.isascii() and "\x00" not in item.encoding


def image_msg(item: ImageFields, stamp_ns: int) -> Image:
    msg = Image()
    msg.header.stamp = ns_to_time(stamp_ns)
    msg.header.frame_id = "fuzz_raw"
    msg.encoding = item.encoding
    msg.height, msg.width, msg.step = item.height, item.width, item.step
    msg.is_bigendian = int(item.is_bigendian)
    msg.data = item.data
    return msg


def compressed_msg(item: CompressedFields, stamp_ns: int) -> CompressedImage:
    msg = CompressedImage()
    msg.header.stamp = ns_to_time(stamp_ns)
    msg.header.frame_id = "fuzz_jpeg"
    msg.format = item.format
    msg.data = item.data
    return msg


class FuzzRig:
    """The real perception_node console-script process plus an in-test node that publishes and listens."""

    def __init__(self, manifest, log_path):
        args = {
            "model_manifest": manifest,
            "providers": "[cpu]",
            "camera_topics": f"[{RAW_TOPIC},{JPEG_TOPIC}]",
            "camera_names": "[raw,jpeg]",
            "input_qos": "DEFAULT",
            "input_qos_depth": "1000",
            "queue_depth": "100",
            "transition_horizon_s": "0.0",
            "diagnostics_period_s": "0.2",
            "stall_timeout_s": "30.0",
        }
        command = node_command("vljepa_ros.nodes.perception_node", args)
        self.log = open(log_path, "w")  # noqa: SIM115 (closed when the process is stopped)
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        self.node = rclpy.create_node("fuzz_rig")
        qos = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
        self.raw = self.node.create_publisher(Image, RAW_TOPIC, qos)
        self.jpeg = self.node.create_publisher(CompressedImage, JPEG_TOPIC, qos)
        self.statuses: dict[str, dict[str, str]] = {}
        self.embeddings: list[Embedding] = []
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.node.create_subscription(Embedding, f"{NODE}/embedding", self.embeddings.append, 100)

    def _on_diagnostics(self, array: DiagnosticArray) -> None:
        for status in array.status:
            camera = status.name.rsplit(" ", 1)[-1]
            self.statuses[camera] = {kv.key: kv.value for kv in status.values}

    def spin_until(self, condition, timeout_s=60.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"perception_node exited with {self.process.returncode}"
            rclpy.spin_once(self.node, timeout_sec=0.05)
            if condition():
                return True
        return False

    def received(self, camera: str) -> int:
        return int(self.statuses.get(camera, {}).get("frames_received", -1))

    def close(self) -> int | None:
        returncode = stop_process(self.process, timeout_s=20)
        self.node.destroy_node()
        self.log.close()
        return returncode


@pytest.mark.ros
def test_running_node_counts_every_malformed_message_and_keeps_working(ros, tmp_path_factory, tmp_path):
    manifest = str(tiny_random_manifest(tmp_path_factory))
    images = [i for i in image_corpus(seed=4321, count=NODE_IMAGES, malformed_fraction=0.85) if _wire_safe(i)]
    rng = np.random.default_rng(5)
    good_jpeg = CompressedFields("jpeg", cv2.imencode(".jpg", moving_frame(0.0))[1].tobytes(), None)
    compressed = [malformed_compressed(rng) if rng.random() < 0.85 else good_jpeg for _ in range(NODE_COMPRESSED)]
    rig = FuzzRig(manifest, tmp_path / "perception_node.log")
    try:
        assert rig.spin_until(
            lambda: (
                rig.raw.get_subscription_count()
                and rig.jpeg.get_subscription_count()
                and rig.received("raw") == 0
                and rig.received("jpeg") == 0
            )
        ), "node did not come up"
        stamp = 1_000 * 1_000_000_000
        sent = {"raw": 0, "jpeg": 0}
        # Chunks, each waited for, so the reliable queues never overflow: counts can be compared exactly.
        for start in range(0, max(len(images), len(compressed)), 50):
            for image, item in zip(images[start : start + 50], compressed[start : start + 50]):
                stamp += PERIOD_NS
                rig.raw.publish(image_msg(image, stamp))
                rig.jpeg.publish(compressed_msg(item, stamp))
                sent["raw"] += 1
                sent["jpeg"] += 1
            for image in images[max(start, len(compressed)) : start + 50]:
                stamp += PERIOD_NS
                rig.raw.publish(image_msg(image, stamp))
                sent["raw"] += 1
            assert rig.spin_until(
                lambda: rig.received("raw") == sent["raw"] and rig.received("jpeg") == sent["jpeg"]
            ), (sent, rig.statuses)

        for camera, items in (("raw", images), ("jpeg", compressed)):
            values = rig.statuses[camera]
            reported = Counter({k.split(".", 1)[1]: int(v) for k, v in values.items() if k.startswith("malformed.")})
            assert reported == expected_counts(items), camera
            assert int(values["malformed_total"]) == sum(expected_counts(items).values())
            assert int(values["drops_total"]) == 0, values

        # Good frames after the storm still become embeddings on both cameras.
        storm_end_ns = stamp
        for _ in range(12):
            stamp += PERIOD_NS
            frame = moving_frame(stamp / 1e9)
            rig.raw.publish(
                image_msg(
                    ImageFields(
                        "rgb8", frame.shape[0], frame.shape[1], frame.shape[1] * 3, False, frame.tobytes(), None
                    ),
                    stamp,
                )
            )
            rig.jpeg.publish(compressed_msg(good_jpeg, stamp))
        after = lambda: {m.camera for m in rig.embeddings if time_to_ns(m.header.stamp) > storm_end_ns}  # noqa: E731
        assert rig.spin_until(lambda: after() == {"raw", "jpeg"}), rig.statuses
        assert rig.process.poll() is None
    finally:
        returncode = rig.close()
    assert returncode == 0, (tmp_path / "perception_node.log").read_text()[-2000:]
