"""The managed perception node over real rclpy + DDS, driven through its lifecycle services by a client node."""

import os
import sys
import threading
import time
import traceback

import pytest
import rclpy
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from vljepa_msgs.msg import Embedding
from vljepa_ros.nodes.perception_lifecycle_node import PerceptionLifecycleNode
from vljepa_ros.nodes.ros_conversions import time_to_ns
from vljepa_ros.nodes.spinning import NodeSpinner

from support.camera_messages import PERIOD_NS, rgb8_msg
from support.perception_fixtures import moving_frame, preferred_manifest
from support.polling import wait_until

pytestmark = pytest.mark.ros

NODE = "/vljepa_perception"
CAM = "/cam_a/image_raw"
# Process memory growth allowed over 18 configure/cleanup cycles: far below one model load per cycle.
RSS_GROWTH_BOUND = 16 * 2**20


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return str(preferred_manifest(tmp_path_factory))


class LifecycleRig:
    """The lifecycle node plus a client node that changes its state, publishes frames and records embeddings."""

    def __init__(self, manifest):
        params = dict(
            model_manifest=manifest, providers=["cpu"], camera_topics=[CAM], input_qos="DEFAULT", input_qos_depth=200
        )
        params.update(queue_depth=100, transition_horizon_s=0.0, diagnostics_period_s=0.2)
        self.perception = PerceptionLifecycleNode(
            parameter_overrides=[Parameter(k, value=v) for k, v in params.items()]
        )
        self.node = rclpy.create_node("lifecycle_test_client")
        self.change = self.node.create_client(ChangeState, f"{NODE}/change_state")
        self.get = self.node.create_client(GetState, f"{NODE}/get_state")
        self.pub = self.node.create_publisher(Image, CAM, 200)
        self.embeddings = []
        self.node.create_subscription(Embedding, f"{NODE}/embedding", self.embeddings.append, 100)
        self.spinner = NodeSpinner([self.perception, self.node])
        self.spinner.start()
        assert self.change.wait_for_service(timeout_sec=10) and self.get.wait_for_service(timeout_sec=10)
        self.next_stamp = time.time_ns()

    def close(self):
        self.spinner.shutdown()
        self.perception.destroy_node()
        self.node.destroy_node()

    def transition(self, transition_id):
        future = self.change.call_async(ChangeState.Request(transition=Transition(id=transition_id)))
        assert wait_until(future.done, 60), f"no answer to transition {transition_id}; threads:{_thread_stacks()}"
        return future.result().success

    def state(self):
        future = self.get.call_async(GetState.Request())
        assert wait_until(future.done, 10)
        return future.result().current_state.id

    def publish(self, seconds):
        """`seconds` of 30 Hz frames, stamps continuing from the last call."""
        for _ in range(int(seconds * 1e9 / PERIOD_NS)):
            self.pub.publish(rgb8_msg(moving_frame(self.next_stamp / 1e9), self.next_stamp, "cam_a_optical"))
            self.next_stamp += PERIOD_NS
            time.sleep(PERIOD_NS / 4e9)

    def settle(self):
        """Wait until the node has run every clip it took (no output is on its way)."""
        assert wait_until(lambda: self.perception.pipeline.queue.pending() == 0, 10)
        time.sleep(0.5)


def test_configure_fails_with_the_reason_on_a_bad_manifest(ros, tmp_path):
    bad = tmp_path / "manifest.yaml"
    bad.write_text("model_id: [not, a, manifest\n")
    rig = LifecycleRig(str(bad))
    try:
        assert rig.state() == State.PRIMARY_STATE_UNCONFIGURED
        assert not rig.transition(Transition.TRANSITION_CONFIGURE)
        assert rig.state() == State.PRIMARY_STATE_UNCONFIGURED
        assert rig.perception.last_failure and "\n" not in rig.perception.last_failure
        assert rig.perception.pipeline is None
    finally:
        rig.close()


def test_configure_activate_deactivate_activate_cleanup(ros, manifest):
    rig = LifecycleRig(manifest)
    try:
        assert rig.perception.pipeline is None  # unconfigured: no model loaded yet
        assert rig.transition(Transition.TRANSITION_CONFIGURE)
        assert rig.state() == State.PRIMARY_STATE_INACTIVE and rig.perception.pipeline is not None
        assert rig.perception.count_subscribers(CAM) == 0  # inactive: no camera subscription

        assert rig.transition(Transition.TRANSITION_ACTIVATE)
        assert rig.state() == State.PRIMARY_STATE_ACTIVE
        assert wait_until(
            lambda: rig.pub.get_subscription_count() > 0 and rig.node.count_publishers(f"{NODE}/embedding"), 10
        )
        time.sleep(0.3)
        rig.publish(3.0)
        assert wait_until(lambda: len(rig.embeddings) > 0, 20)

        assert rig.transition(Transition.TRANSITION_DEACTIVATE)
        assert rig.state() == State.PRIMARY_STATE_INACTIVE
        rig.settle()
        before = len(rig.embeddings)
        paused_from = rig.next_stamp
        rig.publish(3.0)
        time.sleep(0.5)
        assert len(rig.embeddings) == before
        assert all(time_to_ns(m.header.stamp) < paused_from for m in rig.embeddings)

        assert rig.transition(Transition.TRANSITION_ACTIVATE)
        assert wait_until(lambda: rig.pub.get_subscription_count() > 0, 10)
        time.sleep(0.3)
        resumed_from = rig.next_stamp
        rig.publish(3.0)
        assert wait_until(lambda: any(time_to_ns(m.header.stamp) >= resumed_from for m in rig.embeddings), 20)
        # No clip spans the pause: every embedding after it starts after it.
        assert all(time_to_ns(m.clip_start) >= resumed_from for m in rig.embeddings[before:])

        assert rig.transition(Transition.TRANSITION_DEACTIVATE)
        assert rig.transition(Transition.TRANSITION_CLEANUP)
        assert rig.state() == State.PRIMARY_STATE_UNCONFIGURED and rig.perception.pipeline is None
        assert wait_until(lambda: rig.node.count_publishers(f"{NODE}/embedding") == 0, 10)
        assert rig.transition(Transition.TRANSITION_CONFIGURE)  # configures again after a cleanup
        assert rig.transition(Transition.TRANSITION_INACTIVE_SHUTDOWN)
        assert rig.state() == State.PRIMARY_STATE_FINALIZED and rig.perception.pipeline is None
    finally:
        rig.close()


def test_the_managed_node_offers_debug_images_from_configure_to_cleanup(ros, manifest):
    debug_topic = f"{NODE}/debug_image/cam_a"
    rig = LifecycleRig(manifest)
    images = []
    try:
        assert rig.transition(Transition.TRANSITION_CONFIGURE)
        assert wait_until(lambda: rig.node.count_publishers(debug_topic) == 1, 10)
        rig.node.create_subscription(Image, debug_topic, images.append, 10)
        assert rig.transition(Transition.TRANSITION_ACTIVATE)
        assert wait_until(lambda: rig.pub.get_subscription_count() > 0 and rig.perception._debug.wanted("cam_a"), 10)
        time.sleep(0.3)
        rig.publish(2.0)
        assert wait_until(lambda: len(images) >= 3, 20)
        assert all(m.header.frame_id == "cam_a_optical" and m.encoding == "rgb8" for m in images)
        assert rig.transition(Transition.TRANSITION_DEACTIVATE)
        assert rig.transition(Transition.TRANSITION_CLEANUP)
        assert wait_until(lambda: rig.node.count_publishers(debug_topic) == 0, 10)
        assert not any(s.topic_name.endswith("/caption") for s in rig.perception.subscriptions)
    finally:
        rig.close()


def test_a_destroyed_managed_node_leaves_the_graph(ros, manifest):
    """rclpy's destroy_node alone leaves a managed node's state machine (~/change_state and the other lifecycle
    services, ~/transition_event) and the node itself in the graph until garbage collection, so the next node of
    that name would share its service names with a node nobody spins."""
    rig = LifecycleRig(manifest)
    try:
        assert rig.transition(Transition.TRANSITION_CONFIGURE)
        assert rig.node.count_services(f"{NODE}/change_state") == 1  # no leftover from the tests before
    finally:
        rig.close()
    assert rig.perception is not None  # still referenced: only destroy_node can take it out of the graph
    observer = rclpy.create_node("lifecycle_graph_observer")
    try:

        def left():
            return (
                observer.count_services(f"{NODE}/change_state") == 0
                and observer.count_publishers(f"{NODE}/transition_event") == 0
                and NODE.lstrip("/") not in observer.get_node_names()
            )

        assert wait_until(left, 20)
    finally:
        observer.destroy_node()


def _thread_stacks() -> str:
    """Every thread's Python stack: where the node's executor and worker were when an answer did not come."""
    frames = sys._current_frames()
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    return "".join(
        f"\n{names.get(ident, ident)}:\n" + "".join(traceback.format_stack(frame)) for ident, frame in frames.items()
    )


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _footprint(rig) -> dict:
    """What the node holds: its endpoints as rclpy and the ROS graph see them, and its timers."""
    node = rig.perception
    # Per topic rather than per node name: a node of the same name from an earlier test may linger in the graph.
    writers = {}
    for topic, _ in rig.node.get_topic_names_and_types():
        mine = [
            info
            for info in rig.node.get_publishers_info_by_topic(topic)
            if info.node_name == node.get_name() and info.node_namespace == node.get_namespace()
        ]
        if mine:
            writers[topic] = len(mine)
    return {
        "publishers": len(list(node.publishers)),
        "subscriptions": len(list(node.subscriptions)),
        "timers": len(list(node.timers)),
        "graph_publishers": writers,
    }


def test_twenty_lifecycle_cycles_leave_what_one_leaves(ros, manifest):
    """configure/activate/deactivate/cleanup 20 times: the node's publishers, subscriptions, timers, graph
    endpoints and the process's memory end where one cycle leaves them (a leak per cycle shows 19-fold)."""
    rig = LifecycleRig(manifest)
    try:

        def cycle():
            for transition in (
                Transition.TRANSITION_CONFIGURE,
                Transition.TRANSITION_ACTIVATE,
                Transition.TRANSITION_DEACTIVATE,
                Transition.TRANSITION_CLEANUP,
            ):
                assert rig.transition(transition)
            assert rig.state() == State.PRIMARY_STATE_UNCONFIGURED

        def settled_footprint(expected):
            # The graph learns of destroyed endpoints through discovery: poll until it agrees (or time is up).
            wait_until(lambda: _footprint(rig) == expected, 30)
            return _footprint(rig)

        cycle()
        cycle()  # the second cycle's end is the baseline: allocator pools and caches are warm by then
        one = _footprint(rig)
        for _ in range(5):  # the baseline too waits for discovery to settle
            now = settled_footprint(one)
            if now == one:
                break
            one = now
        rss_one = _rss_bytes()
        for _ in range(18):
            cycle()
        assert settled_footprint(one) == one
        assert "/diagnostics" not in one["graph_publishers"]  # cleaned up: nothing of load_model's is left
        assert one["graph_publishers"]  # the graph does show the node (its parameter events, rosout, transitions)
        growth = _rss_bytes() - rss_one
        assert growth < RSS_GROWTH_BOUND, f"RSS grew {growth / 2**20:.1f} MiB over 18 cycles"
    finally:
        rig.close()
