"""Spinning test nodes the way the product does: one single-threaded executor per node, each on its own thread.

rclpy's MultiThreadedExecutor busy-loops in Python while a busy mutually exclusive callback group has data
waiting, which delays the perception node's camera callbacks (see bringup.py); tests must not add that.
"""

from __future__ import annotations

import threading

from rclpy.executors import SingleThreadedExecutor


class Spinner:
    """Spins ``nodes`` until ``shutdown``."""

    def __init__(self, *nodes):
        self._executors = []
        self._threads = []
        for node in nodes:
            executor = SingleThreadedExecutor()
            executor.add_node(node)
            thread = threading.Thread(target=executor.spin, name=f"{node.get_name()}_spin", daemon=True)
            thread.start()
            self._executors.append(executor)
            self._threads.append(thread)

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Stop every executor and join its thread (before the nodes are destroyed)."""
        for executor in self._executors:
            executor.shutdown()
        for thread in self._threads:
            thread.join(timeout_s)
