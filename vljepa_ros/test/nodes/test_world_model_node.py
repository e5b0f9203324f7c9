"""The world model node over real rclpy and DDS, on the small random V-JEPA 2-AC export: steps from camera +
state topics, `~/surprise` per step with an executed action, `~/plan_to_goal` with feedback per CEM iteration,
cancellation, refusals, counters on /diagnostics, and a start-up refusal in one line."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import rclpy
from action_msgs.msg import GoalStatus
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.action import ActionClient
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import Float32MultiArray

from vljepa_msgs.action import PlanToGoal
from vljepa_msgs.msg import Surprise
from vljepa_ros.nodes.world_model_node import WorldModelNode

from support.polling import wait_until
from support.vjepa2_ac_fixture import export_small_world_model

pytestmark = pytest.mark.ros
TIMEOUT_S = 30.0


def rgb_image(seed: int, stamp_ns: int) -> Image:
    pixels = np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    msg = Image(height=48, width=64, encoding="rgb8", step=64 * 3, data=pixels.tobytes())
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    msg.header.frame_id = "camera"
    return msg


class Rig:
    """The node and a test node (publishers, subscribers, an action client), each spinning on its own thread."""

    def __init__(self, manifest, **params):
        overrides = {"model_path": str(manifest), "providers": "cpu", "min_step_interval_s": 0.0}
        overrides |= {"max_state_age_s": 60.0, "cem.samples": 16, "cem.topk": 4, "cem.iterations": 3, **params}
        self.node = WorldModelNode(parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])
        self.test = rclpy.create_node("world_model_test")
        self.image = self.test.create_publisher(Image, "image", 10)
        self.state = self.test.create_publisher(Float32MultiArray, "ee_state", 10)
        self.action = self.test.create_publisher(Float32MultiArray, "executed_action", 10)
        self.surprises: list[Surprise] = []
        self.diagnostics: list[DiagnosticArray] = []
        self.test.create_subscription(Surprise, "/vljepa_world_model/surprise", self.surprises.append, 10)
        self.test.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)
        self.client = ActionClient(self.test, PlanToGoal, "/vljepa_world_model/plan_to_goal")
        self.executors = []
        for node in (self.node, self.test):
            executor = MultiThreadedExecutor(num_threads=2)
            executor.add_node(node)
            threading.Thread(target=executor.spin, daemon=True).start()
            self.executors.append(executor)
        assert wait_until(lambda: self.image.get_subscription_count() and self.action.get_subscription_count(), 10)
        assert wait_until(lambda: self.node.surprise_pub.get_subscription_count() > 0, 10)

    def step(self, seed: int, state=(0.0,) * 7, action=None) -> int:
        """One step (state, optional executed action, then a frame stamped now); returns the frame's stamp."""
        self.state.publish(Float32MultiArray(data=list(state)))
        assert wait_until(lambda: self.node.state is not None and list(self.node.state[1]) == list(state), TIMEOUT_S)
        if action is not None:
            before = self.node.tracker.pending
            self.action.publish(Float32MultiArray(data=list(action)))
            assert wait_until(lambda: self.node.tracker.pending is not before, TIMEOUT_S)
        steps = self.node.counts["steps"]
        stamp_ns = time.time_ns()
        self.image.publish(rgb_image(seed, stamp_ns))
        assert wait_until(lambda: self.node.counts["steps"] == steps + 1, TIMEOUT_S), dict(self.node.counts)
        return stamp_ns

    def close(self) -> None:
        for executor in self.executors:
            executor.shutdown()
        self.client.destroy()
        self.test.destroy_node()
        self.node.destroy_node()


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return export_small_world_model(tmp_path_factory.mktemp("wm") / "model")


@pytest.fixture
def rig(ros, manifest):
    r = Rig(manifest)
    yield r
    r.close()


def test_surprise_per_step_with_the_frame_stamp(rig):
    rig.step(0)
    stamp_ns = rig.step(1, action=(0.02, 0, 0, 0, 0, 0, 0))
    assert wait_until(lambda: len(rig.surprises) == 1, TIMEOUT_S)
    msg = rig.surprises[0]
    assert (
        msg.surprise > 0
        and msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == stamp_ns
        and msg.header.frame_id == "camera"
    )
    assert np.isclose(msg.action[0], 0.02) and msg.context_steps == 1
    rig.step(2)  # no executed action: no surprise, counted
    rig.action.publish(Float32MultiArray(data=[0.0, 0.0]))  # wrong size: counted, the node keeps going
    assert wait_until(lambda: rig.node.counts["bad_action"] == 1, TIMEOUT_S)

    def counted():
        values = {kv.key: kv.value for a in rig.diagnostics for s in a.status for kv in s.values}
        return values.get("no_action") == "1" and values.get("bad_action") == "1" and values.get("steps") == "3"

    assert wait_until(counted, TIMEOUT_S), rig.diagnostics[-1:] if rig.diagnostics else "no diagnostics"
    assert len(rig.surprises) == 1


def test_plan_to_goal_gives_feedback_per_iteration_and_an_action(rig):
    assert rig.client.wait_for_server(timeout_sec=10)
    refused = rig.client.send_goal_async(PlanToGoal.Goal(goal_image=rgb_image(9, 0)))
    assert wait_until(refused.done, TIMEOUT_S) and not refused.result().accepted  # nothing observed yet
    rig.step(0)
    feedback = []
    sent = rig.client.send_goal_async(PlanToGoal.Goal(goal_image=rgb_image(9, 0)), feedback_callback=feedback.append)
    assert wait_until(sent.done, TIMEOUT_S) and sent.result().accepted
    result = sent.result().get_result_async()
    assert wait_until(result.done, 60)
    assert result.result().status == GoalStatus.STATUS_SUCCEEDED
    out = result.result().result
    assert out.iterations == 3 and out.horizon == 2 and len(out.plan) == 14
    assert np.all(np.abs(np.asarray(out.action)[:3]) <= 0.05) and np.allclose(out.action, out.plan[:7])
    assert wait_until(lambda: len(feedback) == 3, TIMEOUT_S)
    assert [f.feedback.iteration for f in feedback] == [0, 1, 2] and feedback[0].feedback.iterations == 3


def test_plan_can_be_cancelled_between_iterations(ros, manifest):
    rig = Rig(manifest, **{"cem.iterations": 200})
    try:
        rig.step(0)
        assert rig.client.wait_for_server(timeout_sec=10)
        feedback = []
        sent = rig.client.send_goal_async(
            PlanToGoal.Goal(goal_image=rgb_image(9, 0)), feedback_callback=feedback.append
        )
        assert wait_until(sent.done, TIMEOUT_S) and sent.result().accepted
        assert wait_until(lambda: len(feedback) >= 1, TIMEOUT_S)
        cancel = sent.result().cancel_goal_async()
        assert wait_until(cancel.done, TIMEOUT_S)
        result = sent.result().get_result_async()
        assert wait_until(result.done, 60)
        assert result.result().status == GoalStatus.STATUS_CANCELED
        assert 1 <= result.result().result.iterations < 200
    finally:
        rig.close()


def test_refuses_to_start_in_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "vljepa_ros.nodes.world_model_node", "--ros-args", "-p", "cem.samples:=0", "-p"]
        + [f"model_path:={tmp_path}/none.yaml"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "vljepa_world_model: refusing to start: cem.samples must be a positive integer, got 0"
