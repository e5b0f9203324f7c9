"""Spin several nodes in one process: one single-threaded executor per node, each on its own thread.

Not rclpy's MultiThreadedExecutor: while a callback of a busy mutually exclusive group has new data waiting,
it busy-loops in Python and takes the GIL from the callbacks. In the demo the perception node then went
without camera frames for so long that frames were lost (see docs/architecture.md and docs/benchmarks.md).

Each executor is shut down by its own thread once its loop has ended, never from another thread: rclpy's
``Executor.shutdown`` (9.1) does not wait for the callback in flight and tears the executor down (its nodes,
guard conditions and callback generator) while the spinning thread may still be using them.
A node that needs more than one thread (the world model's plan runs beside its topics) gets its own executor
from `make_executor`.
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable, Sequence

from rclpy.executors import Executor, ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.task import Future

# (node, context) -> the node's own executor, or None for a single-threaded one.
ExecutorFactory = Callable[[Node, object], Executor | None]


class SpinnerStuckError(RuntimeError):
    """An executor thread was still inside a callback when ``NodeSpinner.shutdown`` gave up waiting."""


class NodeSpinner:
    """``start`` spins every node on its own thread until ``shutdown`` (or rclpy shuts down on Ctrl-C)."""

    def __init__(self, nodes: Sequence[Node], context=None, make_executor: ExecutorFactory | None = None):
        """`make_executor(node, context)` may give a node its own executor; None (or no function): single-threaded."""
        self._executors = []
        for node in nodes:
            executor = (make_executor and make_executor(node, context)) or SingleThreadedExecutor(context=context)
            executor.add_node(node)
            # The lock orders the stop future's wake-up of the executor before the executor's own shutdown.
            self._executors.append((node.get_name(), executor, Future(), threading.Lock()))
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start one spinning thread per node."""
        for name, executor, stop, lock in self._executors:
            thread = threading.Thread(target=_spin, args=(executor, stop, lock), name=f"{name}_executor", daemon=True)
            thread.start()
            self._threads.append(thread)

    def wait(self) -> None:
        """Block until every executor has stopped; Ctrl-C (KeyboardInterrupt) still reaches the caller."""
        for thread in self._threads:
            while thread.is_alive():
                thread.join(0.2)

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Stop every executor after the callback it is running and join its thread; call before destroying
        the nodes. Raises SpinnerStuckError, with the stuck threads' stacks, if a callback has not returned
        within ``timeout_s`` (destroying a node under a running callback is not safe)."""
        for _, _, stop, lock in self._executors:
            with lock:
                if not stop.done():
                    stop.set_result(True)  # its done callback wakes the executor's wait, in this thread
        if not self._threads:  # never started: no thread will shut the executors down
            for _, executor, _, _ in self._executors:
                executor.shutdown()
        for thread in self._threads:
            thread.join(timeout_s)
        stuck = [thread for thread in self._threads if thread.is_alive()]
        if stuck:
            frames = sys._current_frames()
            stacks = "".join(
                f"\n{thread.name}:\n" + "".join(traceback.format_stack(frames[thread.ident]))
                for thread in stuck
                if thread.ident in frames
            )
            raise SpinnerStuckError(
                f"{len(stuck)} executor thread(s) still in a callback after {timeout_s:g} s: "
                f"{', '.join(thread.name for thread in stuck)}{stacks}"
            )


def _spin(executor: Executor, stop: Future, lock: threading.Lock) -> None:
    try:
        # rclpy shut down (Ctrl-C): the executor stops, as in the main thread of a one-node process.
        executor.spin_until_future_complete(stop)
    except ExternalShutdownException:
        pass
    finally:
        with lock:
            executor.shutdown()
