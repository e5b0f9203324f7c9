"""ROS 2 managed (lifecycle) node `vljepa_perception`: the perception node driven by lifecycle transitions.

Console script `perception_lifecycle_node`, beside the plain `perception_node` (still the default). A separate
executable rather than a parameter: the node's class decides which services it offers (the lifecycle ones:
~/change_state, ~/get_state, ...) before any parameter is read, and launch_ros' LifecycleNode action, as
yolo_ros and Isaac ROS users use it, names an executable.

Transitions run the plain node's set-up steps (nodes/perception_node.PerceptionSteps):
configure = load and check the model (a failure is a failed transition, reason logged in one line);
activate = subscribe to the cameras and enable the outputs; deactivate = unsubscribe (paused; the model stays
loaded); cleanup = free the model's sessions; shutdown = all of it, from any state. ``~/enable`` works as in the
plain node while active.
"""

from __future__ import annotations

import sys

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from vljepa_ros.nodes.node_main import run_node
from vljepa_ros.nodes.perception_node import NODE_NAME, PerceptionSteps, make_executor


class PerceptionLifecycleNode(PerceptionSteps, LifecycleNode):
    """The perception node as a managed node; starts unconfigured. ``kwargs`` go to rclpy LifecycleNode."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self.declare_interface()
        self.last_failure = ""  # the reason of the last failed configure, "" after a successful one

    def _create_output_publisher(self, msg_type, topic: str, qos):
        return self.create_lifecycle_publisher(msg_type, topic, qos)

    def _destroy_output_publisher(self, publisher) -> None:
        self.destroy_lifecycle_publisher(publisher)

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load and check the model; on failure free what was made and report the reason in one line."""
        try:
            self.load_model()
        except Exception as err:  # any load failure is a failed transition with its reason, as at start-up
            self.free_model()
            self.last_failure = str(err)
            self.get_logger().error(f"configure failed: {err}")
            return TransitionCallbackReturn.FAILURE
        self.last_failure = ""
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Enable the outputs, then take frames."""
        result = super().on_activate(state)
        if result == TransitionCallbackReturn.SUCCESS:
            self.subscribe_cameras()
        return result

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop taking frames (the model stays loaded), then disable the outputs."""
        self.unsubscribe_cameras()
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Free the model's sessions, the outputs and the worker."""
        result = super().on_cleanup(state)
        self.free_model()
        return result

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        """End from any state."""
        self.free_model()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        """A transition raised: free everything and go back to unconfigured."""
        self.free_model()
        return TransitionCallbackReturn.SUCCESS

    def destroy_node(self):
        """Stop the worker before the publishers go away, then leave the ROS graph."""
        self.free_model()
        super().destroy_node()
        # rclpy's destroy_node leaves the lifecycle state machine (its services, ~/transition_event and with them
        # the node itself) in the graph until garbage collection: a later node of this name would share them.
        self._state_machine.destroy_when_not_in_use()


def main(args=None) -> int:
    """Console script `perception_lifecycle_node`: spin until shutdown (configure with the lifecycle services)."""
    return run_node(PerceptionLifecycleNode, NODE_NAME, make_executor, args)


if __name__ == "__main__":
    sys.exit(main())
