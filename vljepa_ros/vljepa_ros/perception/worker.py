"""The perception worker thread: runs ``PerceptionPipeline.step`` in a loop and hands each batch on.

The perception node uses it so that model calls never run in a subscription callback; the replay tool and the
benchmarks call ``step`` inline instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from vljepa_ros.perception.pipeline import PerceptionPipeline
from vljepa_ros.perception.results import BatchResult


class PipelineWorker:
    """Runs ``pipeline.step`` on a thread and hands every BatchResult to ``on_result``.

    ``on_error(exc)`` receives runtime failures (the clips are already counted as drops); the worker keeps
    going, so one bad batch cannot stop a robot's perception.
    """

    def __init__(
        self,
        pipeline: PerceptionPipeline,
        on_result: Callable[[BatchResult], None],
        on_error: Callable[[BaseException], None],
    ):
        self._pipeline = pipeline
        self._on_result = on_result
        self._on_error = on_error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vljepa_perception_worker", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop after the batch in flight (if any) and join."""
        self._stop.set()
        self._pipeline.close()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                result = self._pipeline.step(timeout_s=0.2)
                if result is not None:
                    self._on_result(result)
            except Exception as err:  # reported and counted; the worker must survive
                self._on_error(err)
