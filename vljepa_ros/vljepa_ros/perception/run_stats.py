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


@dataclass(frozen=True)
class StampLoss:
    """What a window of arriving stamps says about frames lost on the way: the publisher's rate read from the
    stamps, and how many frames its stamp gaps imply never arrived (no more than the arrivals bear out)."""

    intervals: int  # stamp deltas in the window
    publisher_rate_hz: float | None  # None until enough deltas arrived
    gaps: int  # deltas longer than GAP_FACTOR nominal intervals
    missing: int  # frames those gaps imply, capped by what the arrival times allow

    @property
    def lost_fraction(self) -> float:
        """Missing frames over the frames the publisher sent in the window (0.0 without an estimate)."""
        sent = self.missing + self.intervals
        return self.missing / sent if sent else 0.0


class StampLossMeter:
    """Frames lost between publisher and node, counted from the stamps of the frames that did arrive.

    The publisher's interval is the median of the recent deltas within ``GAP_FACTOR`` times their
    ``LOW_PERCENTILE``-th percentile, not the median of all deltas: with most frames lost the plain median is
    itself a multiple of the interval, while any two consecutive frames that both arrive still show it (and
    the median of those absorbs stamp jitter). A delta over ``GAP_FACTOR`` intervals is a gap of
    round(delta / interval) - 1 frames (at least one); the publisher's rate is then the frames sent (arrived
    plus missing) over the window's span. A delta over ``pause_s`` is a paused camera, not loss,
    and is left out, as are stamps that do not move forward (out of order, a clock restart).

    Stamps alone can lie: a publisher whose stamps jump ahead and back (corrupt or fuzzed frames among good
    ones) shows long deltas with nothing lost. So when frames come with their receive times, the loss is at
    most what the arrivals bear out: the same gap count over the receive-time deltas of every arriving frame,
    whatever its stamp (pauses left out). Receive times jitter, so they alone would overstate loss; together,
    the smaller count is what both witnesses agree on.
    """

    LOW_PERCENTILE = 5
    GAP_FACTOR = 1.5
    MIN_INTERVALS = 10

    def __init__(self, size: int = 300, pause_s: float = 1.0):
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        if pause_s <= 0:
            raise ValueError(f"pause_s must be > 0, got {pause_s}")
        self._deltas: deque[int] = deque(maxlen=size)
        self._arrival_deltas: deque[int] = deque(maxlen=size)
        self._pause_ns = int(pause_s * 1e9)
        self._last_ns: int | None = None
        self._last_received_ns: int | None = None
        self._unreceived = 0  # frames added without a receive time: no arrival check is possible

    def add(self, stamp_ns: int, received_ns: int | None = None) -> None:
        """Record the stamp of one arriving frame (in arrival order) and, when known, when it was received."""
        self._add_arrival(received_ns)
        last = self._last_ns
        if last is None or stamp_ns < last - self._pause_ns:
            self._last_ns = stamp_ns  # the first frame, or the camera's clock restarted
            return
        if stamp_ns <= last:
            return  # out of order or repeated: no interval to learn from
        self._last_ns = stamp_ns
        if stamp_ns - last <= self._pause_ns:
            self._deltas.append(stamp_ns - last)

    def _add_arrival(self, received_ns: int | None) -> None:
        if received_ns is None:
            self._unreceived += 1
            return
        last = self._last_received_ns
        self._last_received_ns = received_ns
        if last is not None and 0 <= received_ns - last <= self._pause_ns:
            self._arrival_deltas.append(received_ns - last)

    def loss(self) -> StampLoss:
        """The loss over the window of recent deltas."""
        if len(self._deltas) < self.MIN_INTERVALS:
            return StampLoss(len(self._deltas), None, 0, 0)
        deltas = np.fromiter(self._deltas, np.int64, len(self._deltas))
        gaps, missing = self._gaps(deltas)
        # The frames sent over the window's span: exact on average, where the nominal interval is only a bound.
        rate_hz = (len(deltas) + missing) * 1e9 / float(deltas.sum())
        if len(self._arrival_deltas) >= self.MIN_INTERVALS and not self._unreceived:
            # The receive times are a second witness: a frame that arrived is not lost, whatever its stamp.
            arrivals = np.fromiter(self._arrival_deltas, np.int64, len(self._arrival_deltas))
            missing = min(missing, self._gaps(arrivals)[1])
        return StampLoss(len(deltas), rate_hz, gaps, missing)

    def _gaps(self, deltas: np.ndarray) -> tuple[int, int]:
        """(gaps, frames missing) in a series of intervals, against its nominal interval (class docstring)."""
        low = float(np.percentile(deltas, self.LOW_PERCENTILE))
        nominal = float(np.median(deltas[deltas <= self.GAP_FACTOR * low]))
        if nominal <= 0:
            return 0, 0  # a burst of frames received at one instant shows no interval to count gaps in
        long = deltas[deltas > self.GAP_FACTOR * nominal]
        return len(long), int(np.maximum(np.rint(long / nominal) - 1, 1).sum())


class RestartWatch:
    """Whether a stream's clips keep restarting: gap restarts counted since the last published clip.

    One restart after a pause is normal (the next clip needs a full clip's frames); restart after restart
    with no clip between them means the stream cannot fill a clip.
    """

    def __init__(self):
        self._outputs = 0
        self._restarts_at_output = 0

    def since_output(self, outputs_total: int, restarts_total: int) -> int:
        """Restarts since the last output, given both running totals (call it whenever they are read)."""
        if outputs_total != self._outputs:
            self._outputs, self._restarts_at_output = outputs_total, restarts_total
        return restarts_total - self._restarts_at_output


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
    stamp_loss: StampLossMeter = field(default_factory=StampLossMeter)  # frames lost before reaching us
    last_input_ns: int | None = None

    def __post_init__(self):
        self.input_rate = RateMeter(self.window_s)
        self.output_rate = RateMeter(self.window_s)

    def on_input(self, now_ns: int, stamp_ns: int | None = None) -> None:
        """A frame arrived (well-formed or not) at ``now_ns``; ``stamp_ns``, its header stamp, feeds the
        transport loss estimate."""
        self.input_rate.add(now_ns)
        self.last_input_ns = now_ns
        if stamp_ns is not None:
            self.stamp_loss.add(stamp_ns, now_ns)

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
