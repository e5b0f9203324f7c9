"""Running statistics for diagnostics: event rates over a window, latency percentiles, counters by reason.

Pure bookkeeping: every method takes the current time as integer nanoseconds, so the numbers are
reproducible in tests and the same code serves wall-clock (node) and bag-time (replay) use.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np


class RateMeter:
    """Events per second over the last ``window_s`` seconds (or since the first event, if that is sooner)."""

    def __init__(self, window_s: float = 5.0):
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self._window_ns = int(window_s * 1e9)
        self._times: deque[int] = deque()
        self._first_ns: int | None = None
        self.total = 0

    def add(self, t_ns: int) -> None:
        """Record one event at ``t_ns``."""
        if self._first_ns is None:
            self._first_ns = t_ns
        self._times.append(t_ns)
        self.total += 1

    def rate_hz(self, now_ns: int) -> float:
        """Events per second in the window ending at ``now_ns``; 0.0 before the first event."""
        if self._first_ns is None:
            return 0.0
        while self._times and self._times[0] <= now_ns - self._window_ns:
            self._times.popleft()
        span_ns = min(self._window_ns, now_ns - self._first_ns)
        if span_ns <= 0:
            return 0.0
        return len(self._times) * 1e9 / span_ns


class LatencyWindow:
    """The last ``size`` latency samples (seconds) and their percentiles."""

    def __init__(self, size: int = 200):
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self._samples: deque[float] = deque(maxlen=size)
        self.total = 0

    def add(self, seconds: float) -> None:
        """Record one latency sample in seconds."""
        self._samples.append(float(seconds))
        self.total += 1

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (0..100) of the window, or None when no sample was recorded."""
        if not self._samples:
            return None
        return float(np.percentile(np.fromiter(self._samples, float, len(self._samples)), q))

    def values(self) -> list[float]:
        """The samples in the window, oldest first."""
        return list(self._samples)

    def __len__(self) -> int:
        return len(self._samples)


@dataclass
class StreamStats:
    """What /diagnostics reports for one input stream (camera): rates, latency, drops, malformed inputs.

    ``last_input_ns`` is the receive time (same clock as ``now_ns`` in the queries) of the newest frame.
    """

    window_s: float = 5.0
    input_rate: RateMeter = field(init=False)
    output_rate: RateMeter = field(init=False)
    latency: LatencyWindow = field(default_factory=LatencyWindow)  # input stamp -> publish
    processing: LatencyWindow = field(default_factory=LatencyWindow)  # newest frame received -> publish
    inference: LatencyWindow = field(default_factory=LatencyWindow)  # model time of the output's batch
    drops: Counter = field(default_factory=Counter)
    malformed: Counter = field(default_factory=Counter)
    last_input_ns: int | None = None

    def __post_init__(self):
        self.input_rate = RateMeter(self.window_s)
        self.output_rate = RateMeter(self.window_s)

    def on_input(self, now_ns: int) -> None:
        """A frame arrived (well-formed or not)."""
        self.input_rate.add(now_ns)
        self.last_input_ns = now_ns

    def on_output(
        self, now_ns: int, latency_s: float, processing_s: float | None = None, inference_s: float | None = None
    ) -> None:
        """A result was published ``latency_s`` after its newest input frame's stamp, ``processing_s`` after
        that frame was received; ``inference_s`` is the model time of its batch. The three windows stay
        index-aligned when all three are given, so per-output overhead is ``processing - inference``."""
        self.output_rate.add(now_ns)
        self.latency.add(latency_s)
        if processing_s is not None:
            self.processing.add(processing_s)
        if inference_s is not None:
            self.inference.add(inference_s)

    def seconds_since_input(self, now_ns: int) -> float | None:
        """Seconds since the newest frame arrived, or None when none has arrived."""
        return None if self.last_input_ns is None else (now_ns - self.last_input_ns) / 1e9
