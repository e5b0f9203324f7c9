"""Online change detection over one embedding stream: decide when its meaning changed enough to decode.

The stream is split into segments of (roughly) constant meaning. Each new embedding is smoothed with the
previous ones (window average); the change score is the cosine distance between that smoothed embedding and
the mean of the current segment's older embeddings (those already out of the window). When the score crosses
`threshold` while the detector is armed and `min_interval_s` has passed since the last decode, a change is
declared: the new segment starts at the estimated change point inside the window, and after `settle` more
embeddings the average of its settled part (the newest `window` embeddings; the ones before came from clips
straddling the change, a blur of both states) is handed out for decoding; the segment then grows from there.
A change that does not persist through the settle period (the smoothed embedding is back within `threshold` of
the old segment) is a transient and is merged back without a decode. After a decode the detector is disarmed
until the score falls below `threshold * rearm_fraction` (hysteresis), and `max_interval_s` > 0 asks for a
heartbeat decode of the current segment when nothing changed for that long.

With `provisional`, a change is also decoded at once, when the score crosses the threshold (the average of the
newest `window` embeddings), so that a consumer sees the new meaning without waiting for the settle
period; the settled decode (or, for a transient, the decode of the merged-back segment) then follows as a
CONFIRM request, which the pipeline publishes only when its text differs from the provisional one. With
`reconfirm_s` > 0 the segment is decoded once more that long after its decode, when it has grown (a CONFIRM
too): a caption decoded from the few embeddings of a fresh segment gets a second look.

Pure numpy; stamps are integer nanoseconds.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass

import numpy as np

_NS_PER_S = 1_000_000_000


class DecodeReason(enum.IntEnum):
    """Why a segment is decoded; values equal vljepa_msgs/Caption REASON_* constants."""

    FIRST = 0
    CHANGE = 1
    HEARTBEAT = 2
    SEGMENT = 3
    CONFIRM = 4  # the settled decode after a provisional CHANGE, published only when its text differs


class RejectedEmbedding(ValueError):
    """An embedding the detector cannot use; `reason` is a short key suitable for counting."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def _require_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _require_float(name: str, value, low: float, high: float, low_open: bool, high_open: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    v = float(value)
    too_low = v <= low if low_open else v < low
    too_high = v >= high if high_open else v > high
    if not math.isfinite(v) or too_low or too_high:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(f"{name} must be in {lo}{low}, {high}{hi}, got {value!r}")


# Online decode triggers: the change detector below, and the margin-certified drift trigger (drift_trigger.py).
TRIGGERS = ("change", "margin")


@dataclass(frozen=True)
class ChangeDetectorConfig:
    """Operating point of the online decode trigger (defaults chosen by `evaluate_selective`, see docs)."""

    window: int = 1  # embeddings averaged into the smoothed current embedding
    threshold: float = 0.15  # change score (1 - cosine) that declares a change
    rearm_fraction: float = 1.0  # re-arm once the score < threshold * rearm_fraction (1.0: at the threshold)
    settle: int = 4  # embeddings to wait after a change before decoding the new segment (1 s at 4 Hz)
    min_interval_s: float = 0.5  # no change decode sooner than this after the previous decode
    max_interval_s: float = 0.0  # heartbeat decode after this long without one; 0 disables
    provisional: bool = True  # decode a change at once, then confirm (or correct) it after `settle`
    reconfirm_s: float = 2.0  # decode the grown segment again this long after its decode (CONFIRM); 0 disables
    trigger: str = "margin"  # "margin": the margin-certified drift trigger; "change": this detector
    drift_floor: float = 0.5  # margin trigger: never decode within this distance of the last decoded embedding
    drift_radius: float = 0.0  # margin trigger: the radius for decoders that certify none (0: every embedding)
    still_step: float = 0.002  # margin trigger: "still" below this step (1 - cos); 0: no settle decode
    still_count: int = 1  # margin trigger: still embeddings in a row, after a move, before the settle decode
    settle_floor: float = 0.3  # margin trigger: no settle decode within this distance of the last decode

    def __post_init__(self):
        _require_int("window", self.window, 1)
        _require_float("threshold", self.threshold, 0.0, 2.0, low_open=True, high_open=False)
        _require_float("rearm_fraction", self.rearm_fraction, 0.0, 1.0, low_open=True, high_open=False)
        _require_int("settle", self.settle, 0)
        _require_float("min_interval_s", self.min_interval_s, 0.0, math.inf, low_open=False, high_open=True)
        _require_float("max_interval_s", self.max_interval_s, 0.0, math.inf, low_open=False, high_open=True)
        _require_float("reconfirm_s", self.reconfirm_s, 0.0, math.inf, low_open=False, high_open=True)
        if self.trigger not in TRIGGERS:
            raise ValueError(f"trigger must be one of {', '.join(TRIGGERS)}, got {self.trigger!r}")
        _require_float("drift_floor", self.drift_floor, 0.0, 2.0, low_open=False, high_open=False)
        _require_float("drift_radius", self.drift_radius, 0.0, 2.0, low_open=False, high_open=False)
        _require_float("still_step", self.still_step, 0.0, 2.0, low_open=False, high_open=False)
        _require_int("still_count", self.still_count, 1)
        _require_float("settle_floor", self.settle_floor, 0.0, 2.0, low_open=False, high_open=False)
        if not isinstance(self.provisional, (bool, np.bool_)):
            raise ValueError(f"provisional must be true or false, got {self.provisional!r}")
        if 0.0 < self.max_interval_s < self.min_interval_s:
            raise ValueError(
                f"max_interval_s must be 0 (no heartbeat) or >= min_interval_s ({self.min_interval_s}), "
                f"got {self.max_interval_s}"
            )


@dataclass(frozen=True)
class DecodeRequest:
    """A segment to decode: its L2-normalised average embedding and the span it covers."""

    reason: DecodeReason
    vector: np.ndarray  # (E,) float32, L2-normalised segment average
    stamp_ns: int  # stamp of the embedding that completed the request (inside the segment)
    segment_start_ns: int  # span of the embeddings averaged into `vector`
    segment_end_ns: int
    num_embeddings: int
    change_score: float  # score that declared the change; 0 for FIRST and HEARTBEAT
    change_ns: int  # detected change point: the described state starts here (<= segment_start_ns)
    publish_if_new: bool = False  # publish the decode only when its text differs from the caption in force


def validate_embedding(vector, expected_dim: int | None) -> np.ndarray:
    """Return `vector` as an L2-normalised float64 1-D array, or raise RejectedEmbedding saying why."""
    arr = np.asarray(vector)
    if arr.ndim != 1 or arr.size == 0:
        raise RejectedEmbedding("shape", f"embedding must be a non-empty 1-D vector, got shape {arr.shape}")
    if expected_dim is not None and arr.shape[0] != expected_dim:
        raise RejectedEmbedding("dimension", f"embedding has {arr.shape[0]} values, stream has {expected_dim}")
    arr = arr.astype(np.float64)
    squared = float(np.dot(arr, arr))  # NaN or inf here iff a value is (one reduction instead of two)
    if not math.isfinite(squared):
        raise RejectedEmbedding("non_finite", "embedding contains NaN or infinite values")
    if squared < 1e-24:
        raise RejectedEmbedding("zero_norm", "embedding has zero norm")
    arr /= math.sqrt(squared)
    return arr


def admit_embedding(vector, expected_dim: int | None, stamp_ns: int, last_stamp_ns: int | None) -> np.ndarray:
    """validate_embedding, plus refusing a stamp older than the stream's last one (RejectedEmbedding either way)."""
    vec = validate_embedding(vector, expected_dim)
    if last_stamp_ns is not None and stamp_ns < last_stamp_ns:
        raise RejectedEmbedding(
            "stamp_backwards", f"stamp {stamp_ns} ns is older than the previous one ({last_stamp_ns} ns)"
        )
    return vec


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    """1 - cosine similarity of two non-zero vectors, in [0, 2]."""
    return float(1.0 - np.dot(a, b) / math.sqrt(np.dot(a, a) * np.dot(b, b)))


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


@dataclass
class _Segment:
    """Running sum of the embeddings of one segment."""

    total: np.ndarray
    count: int
    start_ns: int  # first embedding in the sum
    end_ns: int
    change_ns: int | None = None  # where the state this segment describes began (default: start_ns)

    def __post_init__(self):
        if self.change_ns is None:
            self.change_ns = self.start_ns

    def add(self, stamp_ns: int, vec: np.ndarray) -> None:
        self.total += vec
        self.count += 1
        self.end_ns = stamp_ns

    def mean(self) -> np.ndarray:
        return _unit(self.total)


class ChangeDetector:
    """Change detector for one stream; `update` returns a DecodeRequest when a segment should be decoded."""

    def __init__(self, config: ChangeDetectorConfig):
        self._config = config
        self._window: deque[tuple[int, np.ndarray]] = deque(maxlen=config.window)
        self._window_total: np.ndarray | None = None  # running sum of the window's vectors
        self._dim: int | None = None
        self._segment: _Segment | None = None
        self._previous: _Segment | None = None  # kept while a change settles, for the transient check
        self._pending_reason: DecodeReason | None = None
        self._pending_left = 0
        self._pending_score = 0.0
        self._provisional_sent = False  # a provisional CHANGE of the pending change went out
        self._reconfirm_at_ns: int | None = None  # when the current segment is decoded once more
        self._armed = False
        self._last_decode_ns: int | None = None
        self._last_stamp_ns: int | None = None
        self.last_score = 0.0
        self.transients = 0
        self.disarmed_since_ns: int | None = None  # set while waiting to re-arm (for diagnostics)

    @property
    def config(self) -> ChangeDetectorConfig:
        return self._config

    def reconfigure(self, config: ChangeDetectorConfig) -> None:
        """Switch operating point, keeping the stream's state (the newest embeddings stay in the window)."""
        self._config = config
        self._window = deque(self._window, maxlen=config.window)
        self._window_total = np.sum([v for _, v in self._window], axis=0) if self._window else None
        if self._pending_reason is not None:
            self._pending_left = min(self._pending_left, config.settle)

    def note_decoded(self, decoded) -> None:
        """The detector does not use decode results (the drift trigger does; same interface)."""

    def update(self, stamp_ns: int, vector) -> DecodeRequest | None:
        """Add one embedding; return a DecodeRequest when a segment is ready to decode, else None.

        Raises RejectedEmbedding (state unchanged) for a malformed vector or a stamp older than the last one.
        """
        stamp_ns = int(stamp_ns)
        vec = admit_embedding(vector, self._dim, stamp_ns, self._last_stamp_ns)
        self._dim = vec.shape[0]
        self._last_stamp_ns = stamp_ns
        if self._window_total is None:
            self._window_total = np.zeros_like(vec)
        if len(self._window) == self._window.maxlen:
            self._window_total -= self._window[0][1]
        self._window.append((stamp_ns, vec))
        self._window_total += vec

        if self._segment is None:
            self._segment = _Segment(vec.copy(), 1, stamp_ns, stamp_ns)
            self._start_pending(DecodeReason.FIRST, 0.0)
            return self._advance_pending(stamp_ns, first=True)
        self._segment.add(stamp_ns, vec)

        if self._pending_reason is not None:
            return self._advance_pending(stamp_ns, first=False)

        score = self._score()
        self.last_score = 0.0 if score is None else score
        if score is None:  # the segment is still within the window: nothing older to compare with
            return self._heartbeat(stamp_ns)
        cfg = self._config
        if not self._armed and score < cfg.threshold * cfg.rearm_fraction:
            self._armed = True
            self.disarmed_since_ns = None
        if (
            self._armed
            and score >= cfg.threshold
            and len(self._window) == cfg.window
            and stamp_ns - self._last_decode_ns >= cfg.min_interval_s * _NS_PER_S
        ):
            self._split_at_change_point()
            self._start_pending(DecodeReason.CHANGE, score)
            return self._advance_pending(stamp_ns, first=True)
        return self._heartbeat(stamp_ns)

    def _heartbeat(self, stamp_ns: int) -> DecodeRequest | None:
        if self._reconfirm_at_ns is not None and stamp_ns >= self._reconfirm_at_ns:
            self._reconfirm_at_ns = None
            return self._request(DecodeReason.CONFIRM, stamp_ns, 0.0, self._segment)
        max_s = self._config.max_interval_s
        if max_s > 0 and stamp_ns - self._last_decode_ns >= max_s * _NS_PER_S:
            return self._emit(DecodeReason.HEARTBEAT, stamp_ns, 0.0)
        return None

    def _score(self) -> float | None:
        """Cosine distance between the smoothed window and the current segment's older embeddings.

        None while the segment has no embedding older than the window.
        """
        seg = self._segment
        in_segment = min(len(self._window), seg.count)
        if seg.count == in_segment:
            return None
        older_total = seg.total - self._newest_sum(in_segment)
        if np.dot(older_total, older_total) < 1e-24 or np.dot(self._window_total, self._window_total) < 1e-24:
            return None
        return cosine_distance(self._window_total, older_total)

    def _newest_sum(self, count: int) -> np.ndarray:
        """Sum of the `count` newest window vectors (the running total when that is the whole window)."""
        if count == len(self._window) and self._window_total is not None:
            return self._window_total
        return np.sum([v for _, v in list(self._window)[-count:]], axis=0)

    def _split_at_change_point(self) -> None:
        """Move the window's newest embeddings that look like the new state into a new segment.

        The change point is the start of the longest run of newest window embeddings that are closer to the
        smoothed window than to the old segment's older part; at least the newest embedding moves.
        """
        seg = self._segment
        in_segment = min(len(self._window), seg.count)
        recent = list(self._window)[-in_segment:]
        smoothed = _unit(self._window_total)
        older = _unit(seg.total - self._newest_sum(in_segment))
        moved = 1
        for _, v in reversed(recent[:-1]):
            if np.dot(v, smoothed) > np.dot(v, older):
                moved += 1
            else:
                break
        moving = recent[-moved:]
        moved_total = np.sum([v for _, v in moving], axis=0)
        # The old segment is only kept for the transient check, which needs its sum, count and start.
        self._previous = _Segment(seg.total - moved_total, seg.count - moved, seg.start_ns, seg.start_ns, seg.change_ns)
        self._segment = _Segment(moved_total, moved, moving[0][0], moving[-1][0])

    def _start_pending(self, reason: DecodeReason, score: float) -> None:
        self._reconfirm_at_ns = None  # a new change supersedes the second look at the old segment
        self._pending_reason = reason
        self._pending_left = self._config.settle
        self._pending_score = score

    def _advance_pending(self, stamp_ns: int, first: bool) -> DecodeRequest | None:
        if not first:
            self._pending_left -= 1
        if self._pending_left > 0:
            if self._config.provisional and self._pending_reason == DecodeReason.CHANGE and first:
                self._provisional_sent = True
                return self._request(DecodeReason.CHANGE, stamp_ns, self._pending_score, self._recent())
            return None
        reason, score = self._pending_reason, self._pending_score
        self._pending_reason = None
        confirm, self._provisional_sent = self._provisional_sent, False
        previous, self._previous = self._previous, None
        if previous is not None and cosine_distance(self._window_total, previous.total) < self._config.threshold:
            # The change did not persist: the stream is back at the old state, so merge back without decoding.
            self.transients += 1
            merged = _Segment(
                previous.total + self._segment.total,
                previous.count + self._segment.count,
                previous.start_ns,
                self._segment.end_ns,
                previous.change_ns,
            )
            self._segment = merged
            self._disarm(stamp_ns)
            # A provisional caption already announced the change: decode the old state again to take it back.
            return self._request(DecodeReason.CONFIRM, stamp_ns, score, merged) if confirm else None
        if reason == DecodeReason.CHANGE:
            self._keep_settled_part()
        return self._emit(DecodeReason.CONFIRM if confirm else reason, stamp_ns, score)

    def _recent(self) -> _Segment:
        """The newest `window` embeddings of the current segment (all of it when shorter): what a provisional
        decode describes."""
        seg = self._segment
        keep = min(len(self._window), seg.count)
        first_stamp = self._window[len(self._window) - keep][0]
        return _Segment(self._newest_sum(keep).copy(), keep, first_stamp, seg.end_ns, seg.change_ns)

    def _keep_settled_part(self) -> None:
        """Start the new segment at the oldest embedding of the current window.

        The embeddings between the change point and the window came from clips straddling the change (a blur of
        both states): they stay out of the decoded average and of the reference the next change is measured
        against. Measured on the bundled model, this raised caption quality by ~5 points (docs).
        """
        seg = self._segment
        keep = min(len(self._window), seg.count)
        if keep < seg.count:
            first_stamp = self._window[len(self._window) - keep][0]
            self._segment = _Segment(self._newest_sum(keep).copy(), keep, first_stamp, seg.end_ns, seg.change_ns)

    def _disarm(self, stamp_ns: int) -> None:
        if self._armed or self.disarmed_since_ns is None:
            self.disarmed_since_ns = stamp_ns
        self._armed = False

    def disarmed_seconds(self) -> float:
        """Stream time the detector has waited to re-arm (0 when armed). Long waits mean the change score
        never falls below threshold * rearm_fraction: the threshold is under the stream's noise floor."""
        if self.disarmed_since_ns is None or self._last_stamp_ns is None:
            return 0.0
        return (self._last_stamp_ns - self.disarmed_since_ns) / _NS_PER_S

    def _emit(self, reason: DecodeReason, stamp_ns: int, score: float) -> DecodeRequest:
        self._disarm(stamp_ns)
        if reason != DecodeReason.HEARTBEAT and self._config.reconfirm_s > 0:
            self._reconfirm_at_ns = stamp_ns + int(self._config.reconfirm_s * _NS_PER_S)
        return self._request(reason, stamp_ns, score, self._segment)

    def _request(self, reason: DecodeReason, stamp_ns: int, score: float, seg: _Segment) -> DecodeRequest:
        self._last_decode_ns = stamp_ns
        return DecodeRequest(
            reason=reason,
            vector=seg.mean().astype(np.float32),
            stamp_ns=stamp_ns,
            segment_start_ns=seg.start_ns,
            segment_end_ns=seg.end_ns,
            num_embeddings=seg.count,
            change_score=float(score),
            change_ns=seg.change_ns,
            publish_if_new=reason == DecodeReason.CONFIRM,
        )
