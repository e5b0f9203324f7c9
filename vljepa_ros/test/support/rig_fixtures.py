"""Test rigs that spin an in-process node on an executor: waiting on a condition, and a fixture's factory."""

import time
from collections.abc import Callable, Iterator

import rclpy
from rclpy.executors import Executor


def spin_executor_until(executor: Executor, done: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Spin `executor` until `done()`; fail the test after `timeout_s`, saying it was waiting for `what`."""
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        executor.spin_once(timeout_sec=0.05)


def rig_factory(make: Callable) -> Iterator[Callable]:
    """For a fixture to `yield from`: a fresh rclpy context and a factory `make(**kw)`; every rig made is closed
    before rclpy shuts down."""
    rclpy.init()
    rigs = []

    def factory(**kwargs):
        rigs.append(make(**kwargs))
        return rigs[-1]

    yield factory
    for rig in rigs:
        rig.close()
    rclpy.shutdown()
