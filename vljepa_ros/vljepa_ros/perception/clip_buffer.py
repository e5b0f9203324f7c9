"""Per-camera clip building at the model frame rate, and the keep-latest queue of clips waiting for inference.

A camera publishes at its own rate (say 30 Hz); the model was trained on clips of T frames sampled at
``frame_rate_hz`` (the manifest's clip.frame_rate_hz). ``ClipBuffer`` samples the stream on a fixed time grid
by the frames' own stamps (never by arrival time), keeps the sampled frames long enough to also return the
clip seen ``transition_horizon_s`` earlier, and emits a clip every ``stride`` new samples once T are there.
A clip never spans a stamp gap of more than GAP_PERIODS sampling periods or a clock jump back: the buffer
starts over (counted in ``resets``). A camera slower than frame_rate_hz / GAP_PERIODS therefore never fills a
clip; lower frame_rate_hz for it.

``ReadyQueue`` holds emitted clips until the inference worker takes them. It is bounded per camera: when the
worker falls behind, the *oldest* pending clip of that camera is dropped (the newest is what a robot needs)
and handed back to the caller, which counts it. ``StateHistory`` keeps the visual states computed for past
clips so a transition can compare the state now with the state a horizon ago.

No ROS types: stamps are integer nanoseconds, frames are whatever payload the caller stores (the pipeline
stores preprocessed uint8 frames).
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

# Why a frame was not sampled (see ClipBuffer.check). Only out-of-order frames are anomalies.
SAMPLE = "sample"
SKIP_RATE = "rate"  # between two sampling instants of the model frame rate: intended, not a drop
SKIP_OUT_OF_ORDER = "out_of_order"  # stamp not after the newest sampled frame (and no time reset)

# A stamp this far behind the newest sampled frame means the clock restarted (bag loop, simulator reset).
TIME_RESET_NS = 1_000_000_000
# Why a buffer dropped its frames and started a new clip (ClipBuffer.resets counts them).
RESET_CLOCK_BACK = "clock_back"  # stamp jumped back by TIME_RESET_NS or more
RESET_GAP = "gap"  # no frame for more than GAP_PERIODS sampling periods: a clip must not span the gap
GAP_PERIODS = 2


@dataclass(frozen=True)
class Clip:
    """T consecutive sampled frames of one camera, oldest first.

    ``before`` is the clip whose newest frame is ``transition_horizon_s`` (within half a sampling period)
    older than this clip's newest frame, when the buffer holds it; transitions need it.
    """

    camera: str
    frame_id: str
    stamps_ns: tuple[int, ...]
    frames: tuple[Any, ...]
    sequence: int
    before: Clip | None = None
    received_ns: int = 0  # when the newest frame reached the buffer (caller's clock), for processing latency
    encoder_input: Any = None  # the frames laid out as one model input, when ``add`` was given build_input

    @property
    def stamp_ns(self) -> int:
        """Stamp of the newest frame: the moment the clip describes, copied into output headers."""
        return self.stamps_ns[-1]

    @property
    def clip_start_ns(self) -> int:
        """Stamp of the oldest frame."""
        return self.stamps_ns[0]


class ClipBuffer:
    """Samples one camera's frames at ``frame_rate_hz`` and emits clips of ``frames`` samples.

    Not thread-safe: one producer per camera (the pipeline serialises access).
    """

    def __init__(
        self,
        camera: str,
        frames: int,
        frame_rate_hz: float,
        stride: int = 1,
        transition_horizon_s: float = 0.0,
    ):
        if frames < 1:
            raise ValueError(f"frames must be >= 1, got {frames}")
        if not frame_rate_hz > 0:
            raise ValueError(f"frame_rate_hz must be > 0, got {frame_rate_hz}")
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        if transition_horizon_s < 0:
            raise ValueError(f"transition_horizon_s must be >= 0, got {transition_horizon_s}")
        self.camera = camera
        self.frames = frames
        self.stride = stride
        self.period_ns = int(round(1e9 / frame_rate_hz))
        self.horizon_ns = int(round(transition_horizon_s * 1e9))
        horizon_samples = int(np.ceil(self.horizon_ns / self.period_ns)) + 1 if self.horizon_ns else 0
        # Enough samples for the current clip plus the whole clip that ended a horizon ago.
        self._history: deque[tuple[int, Any]] = deque(maxlen=frames + horizon_samples + 1)
        self._next_due_ns: int | None = None
        self._since_emit = 0
        self._sequence = 0
        self.resets: Counter[str] = Counter()

    def check(self, stamp_ns: int) -> str:
        """Whether a frame stamped ``stamp_ns`` would be sampled: SAMPLE, SKIP_RATE or SKIP_OUT_OF_ORDER.

        Pure: call it before converting a frame so skipped frames cost nothing, then ``add`` the frame.
        """
        if not self._history:
            return SAMPLE
        newest = self._history[-1][0]
        if stamp_ns <= newest - TIME_RESET_NS:
            return SAMPLE  # clock restarted; add() resets the buffer
        if stamp_ns <= newest:
            return SKIP_OUT_OF_ORDER
        # Early by up to a quarter period still counts: a camera at (or just above) the model rate would
        # otherwise lose every other sample to timestamp jitter. The grid itself does not move.
        return SAMPLE if stamp_ns >= self._next_due_ns - self.period_ns // 4 else SKIP_RATE

    def add(
        self,
        stamp_ns: int,
        frame_id: str,
        frame: Any,
        received_ns: int = 0,
        build_input: Callable[[tuple[Any, ...]], Any] | None = None,
    ) -> Clip | None:
        """Store a frame that ``check`` accepted; returns a new clip when one is due, else None.

        ``received_ns`` (any clock) is copied into the clip, so its processing latency can be measured.
        ``build_input(frames)``, when given, runs for an emitted clip's frames and becomes its ``encoder_input``.
        """
        if self._history:
            newest = self._history[-1][0]
            if stamp_ns <= newest - TIME_RESET_NS:
                self.reset()
                self.resets[RESET_CLOCK_BACK] += 1
            elif stamp_ns - newest > GAP_PERIODS * self.period_ns:
                # Frames on both sides of a gap would make a clip whose time scale the model never saw.
                self.reset()
                self.resets[RESET_GAP] += 1
        self._history.append((stamp_ns, frame))
        # A fixed grid keeps the average rate exact under camera jitter; after a gap the grid restarts.
        if self._next_due_ns is None or stamp_ns >= self._next_due_ns + self.period_ns:
            self._next_due_ns = stamp_ns + self.period_ns
        else:
            self._next_due_ns += self.period_ns
        self._since_emit += 1
        if len(self._history) < self.frames or self._since_emit < self.stride:
            return None
        self._since_emit = 0
        self._sequence += 1
        recent = list(self._history)[-self.frames :]
        frames = tuple(f for _, f in recent)
        return Clip(
            camera=self.camera,
            frame_id=frame_id,
            stamps_ns=tuple(s for s, _ in recent),
            frames=frames,
            sequence=self._sequence,
            before=self._before_clip(stamp_ns, frame_id),
            received_ns=received_ns,
            encoder_input=None if build_input is None else build_input(frames),
        )

    def _before_clip(self, stamp_ns: int, frame_id: str) -> Clip | None:
        if not self.horizon_ns:
            return None
        target = stamp_ns - self.horizon_ns + self.period_ns // 2
        history = list(self._history)
        ends = [i for i, (s, _) in enumerate(history) if s <= target]
        if not ends or ends[-1] + 1 < self.frames:
            return None
        end = ends[-1] + 1
        window = history[end - self.frames : end]
        return Clip(
            camera=self.camera,
            frame_id=frame_id,
            stamps_ns=tuple(s for s, _ in window),
            frames=tuple(f for _, f in window),
            sequence=0,
        )

    def reset(self) -> None:
        """Forget all sampled frames (the next frame starts a new clip)."""
        self._history.clear()
        self._next_due_ns = None
        self._since_emit = 0


class ReadyQueue:
    """Clips waiting for inference, at most ``depth`` per camera; thread-safe.

    ``put`` never blocks: when a camera already has ``depth`` clips waiting, its oldest is removed and
    returned so the caller can count the drop. ``take_batch`` hands the worker the oldest waiting clip of
    each camera that has one (cameras in round-robin order), so all cameras share one batched call.
    """

    def __init__(self, depth: int = 1):
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.depth = depth
        self._queues: OrderedDict[str, deque[Clip]] = OrderedDict()
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # workers wait here for clips
        self._taken = threading.Condition(lock)  # producers wait here in hand_off
        self._idle_workers = 0  # workers blocked in take_batch with nothing to take
        self._closed = False

    def put(self, clip: Clip) -> Clip | None:
        """Queue ``clip``; returns the clip dropped to make room (the camera's oldest), or None."""
        with self._cond:
            queue = self._queues.setdefault(clip.camera, deque())
            dropped = queue.popleft() if len(queue) >= self.depth else None
            queue.append(clip)
            self._cond.notify()
            return dropped

    def take_batch(self, max_batch: int, timeout_s: float | None = None) -> list[Clip]:
        """Up to ``max_batch`` clips, at most one per camera; waits up to ``timeout_s`` for the first.

        Returns [] on timeout or after ``close``.
        """
        with self._cond:
            self._idle_workers += 1
            try:
                ready = self._cond.wait_for(lambda: self._closed or self._pending(), timeout_s)
            finally:
                self._idle_workers -= 1
            if not ready or self._closed:
                return []
            batch = []
            for camera in list(self._queues):
                queue = self._queues[camera]
                if queue and len(batch) < max_batch:
                    batch.append(queue.popleft())
                    # Served cameras go to the back, so a batch limit cannot starve the last camera.
                    self._queues.move_to_end(camera)
            self._taken.notify_all()
            return batch

    def hand_off(self, clip: Clip, timeout_s: float) -> bool:
        """After ``put(clip)``: if a worker sat idle in ``take_batch``, block until it has taken ``clip`` (at
        most ``timeout_s``); returns whether it did. Returns False at once when no worker was idle: a busy
        worker finds the clip when it is done, and the caller must not wait for that.

        Why: in CPython a woken thread runs only once the running one releases the GIL. A ROS executor
        thread that queued the clip goes on with its own Python bookkeeping (rclpy's executor work after
        each callback) before it blocks, and the idle worker waited for all of it. Blocking here
        releases the GIL at once, so the worker starts the model while the executor finishes its work on
        the other core.
        """
        with self._cond:
            if not self._idle_workers:
                return False
            queue = self._queues.get(clip.camera, ())
            return self._taken.wait_for(lambda: self._closed or all(c is not clip for c in queue), timeout_s)

    def clear(self) -> list[Clip]:
        """Remove and return every waiting clip."""
        with self._cond:
            cleared = [clip for queue in self._queues.values() for clip in queue]
            for queue in self._queues.values():
                queue.clear()
            self._taken.notify_all()
            return cleared

    def close(self) -> None:
        """Wake any waiting worker; later take_batch calls return []."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            self._taken.notify_all()

    def pending(self) -> int:
        """Number of clips waiting."""
        with self._cond:
            return self._pending()

    def _pending(self) -> int:
        return sum(len(q) for q in self._queues.values())


class StateHistory:
    """Visual states of past clips of one camera by newest-frame stamp, pruned to ``keep_s`` seconds."""

    def __init__(self, keep_s: float):
        self._keep_ns = int(keep_s * 1e9)
        self._entries: deque[tuple[int, np.ndarray]] = deque()

    def record(self, stamp_ns: int, state: np.ndarray) -> None:
        """Store the state of the clip whose newest frame has ``stamp_ns`` (stamps increase)."""
        if self._entries and stamp_ns <= self._entries[-1][0]:
            self._entries.clear()  # time went backwards: older states are from another run
        self._entries.append((stamp_ns, state))
        while self._entries and self._entries[0][0] < stamp_ns - self._keep_ns:
            self._entries.popleft()

    def get(self, stamp_ns: int) -> np.ndarray | None:
        """The state recorded for exactly ``stamp_ns``, or None."""
        for stamp, state in reversed(self._entries):
            if stamp == stamp_ns:
                return state
            if stamp < stamp_ns:
                break
        return None
