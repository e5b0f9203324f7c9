"""Spin several nodes in one process: one single-threaded executor per node, each on its own thread.

Not rclpy's MultiThreadedExecutor: while a callback of a busy mutually exclusive group has new data waiting,
it busy-loops in Python and takes the GIL from the callbacks. In the demo the perception node then went
without camera frames for so long that frames were lost (see docs/architecture.md and docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence

from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node


class NodeSpinner:
    """``start`` spins every node on its own thread until ``shutdown`` (or rclpy shuts down on Ctrl-C)."""

    def __init__(self, nodes: Sequence[Node], context=None):
        self._executors = []
        for node in nodes:
            executor = SingleThreadedExecutor(context=context)
            executor.add_node(node)
            self._executors.append((node.get_name(), executor))
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start one spinning thread per node."""
        for name, executor in self._executors:
            thread = threading.Thread(target=_spin, args=(executor,), name=f"{name}_executor", daemon=True)
            thread.start()
            self._threads.append(thread)

    def wait(self) -> None:
        """Block until every executor has stopped; Ctrl-C (KeyboardInterrupt) still reaches the caller."""
        for thread in self._threads:
            while thread.is_alive():
                thread.join(0.2)

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Stop every executor and join its thread; call before destroying the nodes."""
        for _, executor in self._executors:
            executor.shutdown()
        for thread in self._threads:
            thread.join(timeout_s)


def _spin(executor: SingleThreadedExecutor) -> None:
    # rclpy shut down (Ctrl-C): the executor stops, as in the main thread of a one-node process.
    with contextlib.suppress(ExternalShutdownException):
        executor.spin()
