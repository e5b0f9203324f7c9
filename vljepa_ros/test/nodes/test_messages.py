"""vljepa_msgs cross a process boundary over real DDS with every field intact."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, QoSReliabilityPolicy

from support.message_samples import sample_messages

pytestmark = pytest.mark.ros

TEST_ROOT = Path(__file__).resolve().parents[1]


def _fields(msg) -> dict:
    """Message -> plain dict (recursively), so whole messages compare with ==."""
    if not hasattr(msg, "get_fields_and_field_types"):
        if hasattr(msg, "tolist"):
            return msg.tolist()
        return list(msg) if isinstance(msg, (list, tuple)) or type(msg).__name__ == "array" else msg
    return {name: _fields(getattr(msg, name)) for name in msg.get_fields_and_field_types()}


def test_every_message_round_trips_between_processes():
    env = dict(os.environ, PYTHONPATH=f"{TEST_ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "support.message_publisher_process"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    rclpy.init()
    node = rclpy.create_node("vljepa_msgs_sample_listener")
    received: dict = {}
    qos = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)
    for key, msg in sample_messages(0).items():
        node.create_subscription(type(msg), f"/vljepa_test/{key}", lambda m, key=key: received.setdefault(key, m), qos)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        deadline = time.monotonic() + 30.0
        while len(received) < 4 and time.monotonic() < deadline and proc.poll() is None:
            executor.spin_once(timeout_sec=0.1)
    finally:
        proc.kill()
        output = proc.communicate()[0]
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown()
    assert set(received) == {"embedding", "transition", "caption", "statistics"}, output
    for key, msg in received.items():
        seq = msg.header.stamp.sec - sample_messages(0)[key].header.stamp.sec
        assert _fields(msg) == _fields(sample_messages(seq)[key]), key
