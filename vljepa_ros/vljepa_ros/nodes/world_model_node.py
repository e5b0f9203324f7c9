"""`world_model_node` (node vljepa_world_model): V-JEPA 2-AC surprise per step and goal planning as an action.

Topics (relative names, remap them to the robot's):
- `image` (sensor_msgs/Image, SENSOR_DATA QoS): the camera. A frame becomes a step when at least
  `min_step_interval_s` has passed since the last step and an end-effector state close to its stamp is known.
- `ee_state` (std_msgs/Float32MultiArray, 7 floats: x y z [m], roll pitch yaw [rad, extrinsic xyz], gripper
  closedness in [0, 1]): the end-effector state; the latest one is used, stamped on arrival.
- `executed_action` (std_msgs/Float32MultiArray, 7 floats: the deltas the arm executed, same layout): actions
  arriving between two steps are summed into the action that led from one to the other.
- `~/surprise` (vljepa_msgs/Surprise): per step, how far the prediction for the executed action was from what
  the camera then showed; computed only while someone subscribes.
- `~/plan_to_goal` (vljepa_msgs/action/PlanToGoal): goal image in, the next action out, feedback per CEM
  iteration, cancellable between iterations; one goal at a time, refused before the first step.
- `/diagnostics`: steps, surprise values and every refused frame or message counted by reason.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Float32MultiArray

from vljepa_msgs.action import PlanToGoal
from vljepa_msgs.msg import Surprise
from vljepa_ros.nodes.diagnostics import diagnostic_status
from vljepa_ros.nodes.node_main import run_node
from vljepa_ros.nodes.ros_conversions import image_msg_to_rgb, time_to_ns
from vljepa_ros.perception.image_conversion import ImageConversionError
from vljepa_ros.runtime.onnx_session import SessionConfig
from vljepa_ros.world_model.cem import CEMIteration
from vljepa_ros.world_model.model import WorldModel, preprocess_image
from vljepa_ros.world_model.node_config import (
    NODE_PARAMETERS,
    cem_parameters,
    node_config_from_parameters,
    step_refusal,
)
from vljepa_ros.world_model.planning import plan_to_goal
from vljepa_ros.world_model.tracker import StepTracker, check_vector

NODE_NAME = "vljepa_world_model"
DIAGNOSTICS_PERIOD_S = 1.0
BAD_IMAGE, BAD_STATE, BAD_ACTION, BAD_GOAL = "bad_image", "bad_state", "bad_action", "bad_goal"


class WorldModelNode(Node):
    """Wires the camera, state and action topics, `~/surprise` and `~/plan_to_goal` to the world model core.

    Raises ValueError (naming the parameter) or ManifestError from the constructor; `main` makes it one line.
    """

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        for name, (default, description) in {**NODE_PARAMETERS, **cem_parameters()}.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description, read_only=True))
        names = [*NODE_PARAMETERS, *cem_parameters()]
        self.config = node_config_from_parameters({n: self.get_parameter(n).value for n in names})
        sessions = SessionConfig(providers=self.config.providers, intra_op_threads=self.config.intra_op_threads)
        self.model = WorldModel.load(self.config.model_path, sessions)
        self.tracker = StepTracker(self.model, self.config.context_steps)
        self.rng = np.random.default_rng(self.config.seed)
        self.lock = threading.Lock()  # the tracker, between the topic callbacks and a running plan
        self.counts: Counter[str] = Counter()
        self.last_surprise: float | None = None
        self.state: tuple[int, np.ndarray] | None = None
        self.last_step_ns: int | None = None
        self.planning = False

        topics = MutuallyExclusiveCallbackGroup()
        self.surprise_pub = self.create_publisher(Surprise, "~/surprise", QoSProfile(depth=10))
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", QoSProfile(depth=10))
        self.image_sub = self.create_subscription(
            Image, "image", self.on_image, qos_profile_sensor_data, callback_group=topics
        )
        self.create_subscription(Float32MultiArray, "ee_state", self.on_state, 10, callback_group=topics)
        self.create_subscription(Float32MultiArray, "executed_action", self.on_action, 10, callback_group=topics)
        self.action_server = ActionServer(
            self,
            PlanToGoal,
            "~/plan_to_goal",
            execute_callback=self.execute_plan,
            goal_callback=self.accept_goal,
            cancel_callback=lambda _goal: CancelResponse.ACCEPT,
            callback_group=ReentrantCallbackGroup(),
        )
        self.create_timer(DIAGNOSTICS_PERIOD_S, self.publish_diagnostics, callback_group=topics)
        self.get_logger().info(
            f"world model {self.model.manifest.model_id} ({self.model.encoder.provider}); camera "
            f"{self.image_sub.topic_name}, surprise on {self.surprise_pub.topic_name}, planning on "
            f"{self.resolve_topic_name('~/plan_to_goal')}"
        )

    # ------------------------------------------------------------------ topics
    def on_state(self, msg: Float32MultiArray) -> None:
        try:
            self.state = (self.get_clock().now().nanoseconds, check_vector("ee_state", msg.data))
        except ValueError:
            self.counts[BAD_STATE] += 1

    def on_action(self, msg: Float32MultiArray) -> None:
        try:
            with self.lock:
                self.tracker.on_action(msg.data)
        except ValueError:
            self.counts[BAD_ACTION] += 1

    def on_image(self, msg: Image) -> None:
        frame_ns = time_to_ns(msg.header.stamp) or self.get_clock().now().nanoseconds
        state_ns, state = self.state if self.state is not None else (None, None)
        reason = step_refusal(frame_ns, self.last_step_ns, state_ns, self.config)
        if reason is not None:
            self.counts[reason] += 1
            return
        try:
            image = preprocess_image(image_msg_to_rgb(msg), self.model.manifest)
        except (ImageConversionError, ValueError):
            self.counts[BAD_IMAGE] += 1
            return
        want_surprise = self.surprise_pub.get_subscription_count() > 0
        with self.lock:
            result = self.tracker.on_step(image, state, predict=want_surprise)
        self.last_step_ns = frame_ns
        self.counts["steps"] += 1
        if result.surprise is None:
            return
        self.last_surprise = result.surprise
        out = Surprise(surprise=result.surprise, context_steps=result.context_steps)
        out.header = msg.header
        out.action = result.action.tolist()
        self.surprise_pub.publish(out)

    # ------------------------------------------------------------------ planning
    def accept_goal(self, _goal) -> GoalResponse:
        with self.lock:
            ready = bool(self.tracker.tokens) and not self.planning
            self.planning = self.planning or ready
        if not ready:
            self.get_logger().warning("plan_to_goal refused: a plan is running or no step has been observed yet")
        return GoalResponse.ACCEPT if ready else GoalResponse.REJECT

    def execute_plan(self, goal_handle):
        result = PlanToGoal.Result()
        try:
            try:
                goal_image = preprocess_image(image_msg_to_rgb(goal_handle.request.goal_image), self.model.manifest)
            except (ImageConversionError, ValueError) as err:
                self.counts[BAD_GOAL] += 1
                self.get_logger().warning(f"plan_to_goal aborted: goal image: {err}")
                goal_handle.abort()
                return result
            goal = self.model.encode(goal_image[None])[0]
            with self.lock:
                context = self.tracker.context()

            def feedback(it: CEMIteration) -> None:
                goal_handle.publish_feedback(
                    PlanToGoal.Feedback(
                        iteration=it.iteration,
                        iterations=self.config.cem.iterations,
                        best_cost=it.best_cost,
                        elite_cost=it.elite_cost,
                        first_action=it.first_action.tolist(),
                    )
                )

            start = time.monotonic()
            plan = plan_to_goal(
                self.model, context, goal, self.config.cem, self.rng, feedback, lambda: goal_handle.is_cancel_requested
            )
            result.action = plan.first_action.tolist()
            result.plan = plan.actions.reshape(-1).tolist()
            result.horizon = plan.actions.shape[0]
            result.iterations = len(plan.iterations)
            result.cost = plan.iterations[-1].best_cost if plan.iterations else float("nan")
            self.counts["plans_cancelled" if plan.cancelled else "plans"] += 1
            self.get_logger().info(
                f"plan_to_goal: {len(plan.iterations)} iterations in {time.monotonic() - start:.2f} s"
                f"{' (cancelled)' if plan.cancelled else ''}"
            )
            goal_handle.canceled() if plan.cancelled else goal_handle.succeed()
            return result
        finally:
            self.planning = False

    # ------------------------------------------------------------------ diagnostics
    def publish_diagnostics(self) -> None:
        values = {key: str(count) for key, count in sorted({**self.counts, **self.tracker.counts}.items())}
        values["last_surprise"] = "" if self.last_surprise is None else f"{self.last_surprise:.4f}"
        status = diagnostic_status(
            DiagnosticStatus.OK, f"{self.get_name()}: world model", "ok", self.model.manifest.model_id, values
        )
        array = DiagnosticArray(status=[status])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(array)


def make_executor(context=None) -> MultiThreadedExecutor:
    """Two threads: the topics on one, a running plan on the other."""
    return MultiThreadedExecutor(num_threads=2, context=context)


def main(args=None) -> int:
    """Console script `world_model_node`."""
    return run_node(WorldModelNode, NODE_NAME, make_executor, args)


if __name__ == "__main__":
    raise SystemExit(main())
