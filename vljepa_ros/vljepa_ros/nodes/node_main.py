"""The console-script life cycle shared by the nodes: start, spin until shutdown, refuse start-up in one line."""

from __future__ import annotations

import sys
from collections.abc import Callable

import rclpy
from rclpy.executors import Executor, ExternalShutdownException
from rclpy.node import Node


def run_node(create: Callable[[], Node], name: str, make_executor: Callable[[], Executor], args=None) -> int:
    """Run one node to shutdown; return 0, or 2 after printing why the node refused to start.

    A robot operator reads the start-up failure in a launch log: one line naming the problem (a missing model,
    an invalid parameter) is what they need, not a traceback.
    """
    rclpy.init(args=args)
    try:
        node = create()
    except Exception as err:  # any start-up failure becomes one clear line
        print(f"{name}: refusing to start: {err}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    executor = make_executor()
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
