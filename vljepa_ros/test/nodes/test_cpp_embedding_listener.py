"""A C++ consumer reads the perception node's embeddings: examples/embedding_listener_cpp, built with
scripts/cpp_listener.sh against this distro's vljepa_msgs, receives over DDS exactly what an rclpy subscriber
receives from the running node (every field, the vector bit for bit), and applies a consumer's checks (a shape
that does not match the data is refused; a model_version change forgets the camera's previous vector).

The node writes its Embedding messages as CDR bytes by hand (nodes/embedding_cdr.py); this is the check that the
C++ type support, which planners use, reads those bytes as the same message.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy

from vljepa_msgs.msg import Embedding
from vljepa_ros.nodes.spinning import NodeSpinner
from vljepa_ros.tools.node_process import node_command

from support.cpp_listener import EMBEDDINGS, expected_line, running_listener, stamp_text
from support.perception_fixtures import preferred_manifest
from support.polling import wait_until

pytestmark = pytest.mark.ros

PUBLISHER = Path(__file__).resolve().parents[1] / "support" / "camera_publisher_process.py"
# Names of this run only: another run on the host with the same domain id publishes on the same topic.
CAMERA_TOPIC = f"/cpp_listener_test_{os.getpid()}/image_raw"
CAMERA = f"cpp_listener_test_{os.getpid()}"
CRAFTED = f"crafted_{os.getpid()}"


def test_a_cpp_subscriber_reads_the_nodes_embeddings_as_rclpy_does(ros, tmp_path, tmp_path_factory):
    manifest = preferred_manifest(tmp_path_factory)
    with running_listener(tmp_path / "listener.log") as listener:
        seen: dict[str, Embedding] = {}
        monitor = rclpy.create_node("vljepa_cpp_listener_monitor")
        monitor.create_subscription(
            Embedding,
            EMBEDDINGS,
            lambda m: seen.setdefault(stamp_text(m.header.stamp), m) if m.camera == CAMERA else None,
            100,
        )
        publisher = monitor.create_publisher(Embedding, EMBEDDINGS, 10)
        spinner = NodeSpinner([monitor])
        spinner.start()
        node_log = tmp_path / "perception_node.log"
        params = {
            "model_manifest": str(manifest),
            "providers": "[cpu]",
            "camera_topics": f"[{CAMERA_TOPIC}]",
            "camera_names": f"[{CAMERA}]",
            "input_qos": "SENSOR_DATA",
            "publish_visual_state": "false",
        }
        with open(node_log, "w") as log:
            node = subprocess.Popen(node_command("vljepa_ros.nodes.perception_node", params), stdout=log, stderr=log)
        try:
            # The first run of the script compiles the listener (tens of seconds).
            assert wait_until(lambda: listener.parsed("listening") or listener.process.poll() is not None, 240), (
                tmp_path / "listener.log"
            ).read_text()
            assert listener.process.poll() is None, (tmp_path / "listener.log").read_text()
            assert wait_until(lambda: publisher.get_subscription_count() >= 2, 60)  # the listener and the monitor
            camera = subprocess.run(
                [sys.executable, str(PUBLISHER), "--topic", CAMERA_TOPIC, "--frames", "120", "--rate", "30"],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert camera.returncode == 0, camera.stderr[-3000:]
            assert json.loads(camera.stdout.strip().splitlines()[-1])["matched"], node_log.read_text()[-3000:]
            assert wait_until(lambda: len(seen) >= 3, 60), node_log.read_text()[-3000:]
            wait_until(lambda: len(mine(listener, "embedding", CAMERA)) >= len(seen), 15)

            # A consumer's checks, on messages the test writes to the same topic: a shape that does not match the
            # data, then the same camera under a new model version.
            vector = np.ones(4, np.float32) / 2.0
            for version, shape in (("v1", [4]), ("v1", [5]), ("v1", [4]), ("v2", [4])):
                msg = Embedding(camera=CRAFTED, kind=Embedding.KIND_PREDICTED, model_id="m", model_version=version)
                msg.shape, msg.normalized, msg.data = shape, True, vector.tolist()
                publisher.publish(msg)
                time.sleep(0.05)
            assert wait_until(lambda: mine(listener, "model_changed", CRAFTED), 20), listener.lines[-10:]
        finally:
            node.terminate()
            node.wait(timeout=20)
            spinner.shutdown()
            monitor.destroy_node()
            listener.stop()

    # The node's writer may match the listener a moment after the monitor: from the first embedding the listener
    # got, it must have every one the monitor got, each the same.
    received = {f["stamp"]: f for f in mine(listener, "embedding", CAMERA)}
    assert received, (tmp_path / "listener.log").read_text()
    first = min(received, key=float)
    expected_stamps = {stamp for stamp in seen if float(stamp) >= float(first)}
    assert len(expected_stamps) >= 3 and set(received) == expected_stamps, (sorted(received), sorted(seen))
    for stamp in expected_stamps:
        expected = expected_line(seen[stamp])
        got = {key: received[stamp][key] for key in expected}
        assert got == expected, f"stamp {stamp}: C++ {got} vs rclpy {expected}"
        assert abs(float(received[stamp]["norm"]) - 1.0) < 1e-4 and seen[stamp].normalized
    # Consecutive clips of one camera are compared by cosine: the first has nothing before it.
    cosines = [f["cos_prev"] for f in sorted(received.values(), key=lambda f: float(f["stamp"]))]
    assert cosines[0] == "none" and all(-1.0 <= float(c) <= 1.000001 for c in cosines[1:])

    crafted = mine(listener, "embedding", CRAFTED)
    assert [f["model_version"] for f in crafted] == ["v1", "v1", "v2"]
    assert [f["cos_prev"] for f in crafted] == ["none", "1.000000", "none"]  # a new model forgets the old vector
    assert [f["reason"] for f in mine(listener, "rejected", CRAFTED)] == ["shape"]
    assert mine(listener, "model_changed", CRAFTED) == [{"camera": CRAFTED, "from": "v1", "to": "v2"}]
    summary = listener.parsed("summary")
    assert summary and int(summary[0]["rejected"]) >= 1 and int(summary[0]["accepted"]) >= len(received) + 3


def mine(listener, word: str, camera: str) -> list[dict]:
    """The listener's `word` lines about `camera`."""
    return [fields for fields in listener.parsed(word) if fields.get("camera") == camera]
