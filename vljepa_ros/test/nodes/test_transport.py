"""The shipped DDS transport carries a camera driver's frames to the perception node: a best-effort 640x480
rgb8 publisher at 30 Hz in its own process, the node in another, (nearly) every frame arrives and every clip the
sampler owes comes out.

Counts only, no timing. Without the profile a 640x480 best-effort frame goes as UDP fragments and most are lost
(docs/benchmarks.md); with it they go through shared memory. The test fails when the profile is not set, missing
or does not parse, so a lossy fallback cannot pass unnoticed.
"""

import json
import os
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray

from vljepa_msgs.msg import Embedding
from vljepa_ros.nodes.dds_transport import PROFILE_VARIABLE, transport_defaults
from vljepa_ros.nodes.spinning import NodeSpinner
from vljepa_ros.perception.clip_buffer import SAMPLE, ClipBuffer
from vljepa_ros.runtime.manifest import load_manifest
from vljepa_ros.tools.node_process import node_command

from support.perception_fixtures import preferred_manifest
from support.polling import wait_until

pytestmark = pytest.mark.ros

PUBLISHER = Path(__file__).resolve().parents[1] / "support" / "camera_publisher_process.py"
TOPIC = "/transport_test/image_raw"
CAMERA = "transport_test"
FRAMES = 150
# Best effort may still lose a frame to a busy machine (the reader's queue of 5 overflows while the node's
# thread is descheduled); the default transport loses 80-96% of them, so 97% separates the two with margin.
MIN_RECEIVED = 0.97
FASTDDS_NAMESPACE = "{http://www.eprosima.com}"


class Monitor:
    """The node's /diagnostics counters for the test camera and the stamps of its ~/embedding outputs."""

    def __init__(self):
        self.node = rclpy.create_node("vljepa_transport_monitor")
        self.lock = threading.Lock()
        self.counters: dict[str, str] = {}
        self.output_stamps: set[int] = set()
        self.last_output = time.monotonic()
        self.node.create_subscription(Embedding, "/vljepa_perception/embedding", self._on_embedding, 200)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)
        self.spinner = NodeSpinner([self.node])
        self.spinner.start()

    def _on_embedding(self, msg) -> None:
        with self.lock:
            self.output_stamps.add(msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec)
            self.last_output = time.monotonic()

    def _on_diagnostics(self, array) -> None:
        for status in array.status:
            if status.name.rsplit(" ", 1)[-1] == CAMERA:
                with self.lock:
                    self.counters = {kv.key: kv.value for kv in status.values}

    def counter(self, key: str) -> int:
        with self.lock:
            return int(self.counters.get(key, 0))

    def quiet_for(self, seconds: float) -> bool:
        with self.lock:
            return time.monotonic() - self.last_output >= seconds

    def close(self) -> None:
        self.spinner.shutdown()
        self.node.destroy_node()


def expected_clip_stamps(stamps: list[int], frames: int, frame_rate_hz: float) -> set[int]:
    """The stamps at which the node's sampler (the same ClipBuffer) closes a clip, given every frame sent."""
    sampler = ClipBuffer(CAMERA, frames=frames, frame_rate_hz=frame_rate_hz)
    return {s for s in stamps if sampler.check(s) == SAMPLE and sampler.add(s, CAMERA, None) is not None}


def profile_of(pid: int) -> str | None:
    """FASTDDS_DEFAULT_PROFILES_FILE in the environment a running process was started with."""
    entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    values = dict(e.decode(errors="replace").partition("=")[::2] for e in entries if b"=" in e)
    return values.get(PROFILE_VARIABLE)


def assert_shipped_profile(path: str | None) -> None:
    """`path` is the package's profile, the file exists and it is a Fast DDS profile with a default participant."""
    shipped = transport_defaults()[PROFILE_VARIABLE]
    assert path == shipped, f"{PROFILE_VARIABLE}={path!r}, expected the shipped profile {shipped}"
    root = ET.parse(path).getroot()
    participants = root.iter(f"{FASTDDS_NAMESPACE}participant")
    assert any(p.get("is_default_profile") == "true" for p in participants), f"{path}: no default participant"


def test_shipped_transport_delivers_a_30hz_640x480_camera(ros, tmp_path, tmp_path_factory):
    manifest = preferred_manifest(tmp_path_factory)
    clip = load_manifest(manifest, check_files=False).clip
    env = dict(os.environ)
    assert env.get("ROS_AUTOMATIC_DISCOVERY_RANGE") == "LOCALHOST"  # DDS traffic never leaves the host
    assert_shipped_profile(env.get(PROFILE_VARIABLE))

    log_path = tmp_path / "perception_node.log"
    params = {
        "model_manifest": str(manifest),
        "providers": "[cpu]",
        "camera_topics": f"[{TOPIC}]",
        "camera_names": f"[{CAMERA}]",
        "input_qos": "SENSOR_DATA",
        "diagnostics_period_s": "0.25",
        "publish_visual_state": "false",
    }
    command = node_command("vljepa_ros.nodes.perception_node", params)
    monitor = Monitor()
    with open(log_path, "w") as log:
        node_process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    camera = None
    try:
        assert wait_until(lambda: monitor.counters or node_process.poll() is not None, 120), log_path.read_text()
        assert node_process.poll() is None, log_path.read_text()
        # Read once the node is up: right after Popen the child may be between the exec of Python and the ROS
        # wheels' re-exec of it, when /proc/<pid>/environ can read empty (seen once in CI).
        assert_shipped_profile(profile_of(node_process.pid))
        camera = subprocess.run(
            [sys.executable, str(PUBLISHER), "--topic", TOPIC, "--frames", str(FRAMES), "--rate", "30"],
            capture_output=True,
            text=True,
            timeout=90,
            env=env,
        )
        assert camera.returncode == 0, camera.stderr[-3000:]
        sent = json.loads(camera.stdout.strip().splitlines()[-1])
        assert sent["matched"] and sent["sent"] == FRAMES
        wait_until(lambda: monitor.counter("frames_received") >= FRAMES, 5)
        wait_until(lambda: monitor.quiet_for(1.5), 15)
        time.sleep(0.5)  # one more diagnostics period after the last output
        received = monitor.counter("frames_received")
        expected = expected_clip_stamps(sent["stamps"], clip.frames, clip.frame_rate_hz)
        with monitor.lock:
            outputs = set(monitor.output_stamps)
    finally:
        monitor.close()
        node_process.terminate()
        node_process.wait(timeout=20)

    node_log = log_path.read_text()
    problems = [text for text in ("XMLPARSER", "XML file", "Error parsing") if text in node_log + camera.stderr]
    assert not problems, f"Fast DDS did not load the profile: {problems}\n{node_log[-2000:]}"
    assert received >= MIN_RECEIVED * FRAMES, f"node received {received}/{FRAMES} frames\n{node_log[-2000:]}"
    lost = FRAMES - received
    # Each lost frame changes at most the one clip it would have closed (the sampling grid does not move).
    assert len(expected) >= 10
    assert outputs <= set(sent["stamps"]), "an embedding for a frame that was never sent"
    behind = monitor.counter("drops.worker_behind")
    assert len(outputs & expected) >= len(expected) - lost, (
        f"{len(outputs & expected)}/{len(expected)} clips out, {lost} frames lost, worker_behind {behind}"
    )
