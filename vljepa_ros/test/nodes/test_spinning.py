"""NodeSpinner over real rclpy: each executor stops after its callback in flight, and a callback that never
returns is reported with its stack instead of hanging the caller or having its node destroyed under it."""

import threading

import pytest
import rclpy

from vljepa_ros.nodes.spinning import NodeSpinner, SpinnerStuckError

from support.polling import wait_until

pytestmark = pytest.mark.ros


def test_shutdown_stops_every_executor_thread(ros):
    nodes = [rclpy.create_node(f"spinner_test_{i}") for i in range(2)]
    calls = []
    for node, name in zip(nodes, ("spinner_test_0", "spinner_test_1")):
        node.create_timer(0.01, lambda name=name: calls.append(name))
    spinner = NodeSpinner(nodes)
    spinner.start()
    try:
        assert wait_until(lambda: {"spinner_test_0", "spinner_test_1"} <= set(calls), 30)
    finally:
        spinner.shutdown()
        for node in nodes:
            node.destroy_node()
    assert not any(thread.is_alive() for thread in threading.enumerate() if thread.name.startswith("spinner_test_"))
    count = len(calls)
    assert not wait_until(lambda: len(calls) > count, 0.3)  # no callback runs after shutdown


def test_a_callback_that_never_returns_is_named_with_its_stack(ros):
    node = rclpy.create_node("spinner_stuck_test")
    entered, release = threading.Event(), threading.Event()

    def blocked_callback():
        entered.set()
        release.wait()

    timer = node.create_timer(0.01, blocked_callback)
    spinner = NodeSpinner([node])
    spinner.start()
    try:
        assert entered.wait(30)
        with pytest.raises(SpinnerStuckError) as stuck:
            spinner.shutdown(timeout_s=0.5)
        assert "spinner_stuck_test_executor" in str(stuck.value)
        assert "blocked_callback" in str(stuck.value)  # the stack shows where it waits
    finally:
        node.destroy_timer(timer)
        release.set()
    spinner.shutdown(timeout_s=30)  # once the callback returns, the thread ends
    node.destroy_node()
