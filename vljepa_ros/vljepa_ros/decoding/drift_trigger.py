"""Margin-certified drift trigger: decode an embedding stream only when its caption can have changed.

A retrieval decoder scores a unit embedding e against unit caption vectors c_i by s_i(e) = <e, c_i>. Moving e
to e' changes s_i(e) - s_j(e) by <e' - e, c_i - c_j>, at most ||e' - e|| * ||c_i - c_j||. So after a decode of
e0 whose winner c_1 leads every c_j by s_1(e0) - s_j(e0), the winner cannot change while
||e - e0|| < min_j (s_1(e0) - s_j(e0)) / ||c_1 - c_j||: the decoder's certified radius (at least half the
top-1 margin, since ||c_1 - c_j|| <= 2). The trigger measures one distance per embedding and decodes only
once the (smoothed, normalised) embedding has left that ball, so the caption in force always equals what
decoding the current embedding would give, at fewer decoder calls. A decoder that cannot certify a radius (a
generative one) gets the fixed `drift_radius` instead. `drift_floor` (a radius never decoded within) and
`min_interval_s` trade that exactness for fewer decodes; `max_interval_s` > 0 asks for a heartbeat.

With a floor, a decode taken while the scene is still changing (the model's clips straddle the change) can hold
a caption of the blur until the next big move. The settle decode (`still_step` > 0) closes that gap: once the
stream, after moving, has stayed still (consecutive smoothed embeddings closer than `still_step` in cosine
distance) for `still_count` embeddings, the settled embedding is decoded if it is out of the certified radius
and at least `settle_floor` from the last decode, and published (REASON_CONFIRM) only if its text differs.

The trigger shares ChangeDetectorConfig (its `window`, `min_interval_s`, `max_interval_s`, `drift_floor`,
`drift_radius`, `still_step`, `still_count` and `settle_floor` fields; the change detector's other fields are
not used) and ChangeDetector's interface, so the decoding pipeline runs either. Pure numpy; stamps are integer
nanoseconds.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from vljepa_ros.decoding.change_detection import (
    ChangeDetectorConfig,
    DecodeReason,
    DecodeRequest,
    admit_embedding,
)
from vljepa_ros.decoding.decoders import Decoded

_NS_PER_S = 1_000_000_000


def certified_or_fixed_radius(decoded: Decoded, config: ChangeDetectorConfig) -> float:
    """The decoder's certified radius around a decoded embedding, or `drift_radius` when it gives none."""
    radius = decoded.certified_radius if decoded.certified_radius is not None else config.drift_radius
    return float(radius)


def decode_radius(decoded: Decoded, config: ChangeDetectorConfig) -> float:
    """Distance the embedding may drift from a decoded one before the next decode: the decoder's certified
    radius (or `drift_radius` when it gives none), never below `drift_floor`."""
    return max(certified_or_fixed_radius(decoded, config), config.drift_floor)


class DriftTrigger:
    """Margin-certified decode trigger for one stream; `update` returns a DecodeRequest when the embedding
    drifted out of the last decode's radius, and `note_decoded` tells it that decode's result."""

    def __init__(self, config: ChangeDetectorConfig):
        self._config = config
        self._window: deque[tuple[int, np.ndarray]] = deque(maxlen=config.window)
        self._dim: int | None = None
        self._last_stamp_ns: int | None = None
        self._anchor: np.ndarray | None = None  # the smoothed embedding last handed out for decoding
        self._pending: np.ndarray | None = None  # handed out, result not yet noted
        self._radius = 0.0  # certified radius, at least drift_floor: a CHANGE decode beyond it
        self._certified = 0.0  # certified radius alone: a settle decode beyond it (and settle_floor)
        self._last_decode_ns: int | None = None
        self._previous: np.ndarray | None = None  # the smoothed embedding before this one
        self._still = 0  # smoothed embeddings in a row that moved less than still_step
        self._moved = False  # the stream moved since it was last still (or decoded still)
        self.last_score = 0.0  # distance of the newest smoothed embedding from the anchor
        self.transients = 0  # always 0: every drift out of the radius is decoded

    @property
    def config(self) -> ChangeDetectorConfig:
        return self._config

    def reconfigure(self, config: ChangeDetectorConfig) -> None:
        """Switch operating point, keeping the newest embeddings and the anchor (the floor applies from the
        next decode)."""
        self._config = config
        self._window = deque(self._window, maxlen=config.window)

    def disarmed_seconds(self) -> float:
        """Always 0: the trigger has no re-arm wait."""
        return 0.0

    def update(self, stamp_ns: int, vector) -> DecodeRequest | None:
        """Add one embedding; return a DecodeRequest when its caption may differ from the last decode's.

        Raises RejectedEmbedding (state unchanged) for a malformed vector or a stamp older than the last one.
        """
        stamp_ns = int(stamp_ns)
        vec = admit_embedding(vector, self._dim, stamp_ns, self._last_stamp_ns)
        self._dim = vec.shape[0]
        self._last_stamp_ns = stamp_ns
        self._window.append((stamp_ns, vec))
        smoothed = np.sum([v for _, v in self._window], axis=0)
        norm = math.sqrt(float(np.dot(smoothed, smoothed)))
        if norm < 1e-12:  # opposite embeddings cancelled out: nothing to compare until the next one
            return None
        smoothed /= norm
        self._track_stillness(smoothed)
        if self._anchor is None:
            return self._request(DecodeReason.FIRST, stamp_ns, smoothed, 0.0)
        distance = float(np.linalg.norm(smoothed - self._anchor))
        self.last_score = distance
        since_s = (stamp_ns - self._last_decode_ns) / _NS_PER_S
        cfg = self._config
        if distance >= self._radius and since_s >= cfg.min_interval_s:
            return self._request(DecodeReason.CHANGE, stamp_ns, smoothed, distance)
        if self._moved and self._still >= cfg.still_count:
            self._moved = False
            if distance >= max(self._certified, cfg.settle_floor) and since_s >= cfg.min_interval_s:
                return self._request(DecodeReason.CONFIRM, stamp_ns, smoothed, distance)
        if cfg.max_interval_s > 0 and since_s >= cfg.max_interval_s:
            return self._request(DecodeReason.HEARTBEAT, stamp_ns, smoothed, 0.0)
        return None

    def note_decoded(self, decoded: Decoded) -> None:
        """The result of the request handed out last: its radius bounds where the next decode is needed."""
        if self._pending is not None:
            self._anchor, self._pending = self._pending, None
            self._certified = certified_or_fixed_radius(decoded, self._config)
            self._radius = decode_radius(decoded, self._config)
            if self._still >= self._config.still_count:
                self._moved = False  # decoded while still: this is the settled state

    def _track_stillness(self, smoothed: np.ndarray) -> None:
        """Count still embeddings (moved less than still_step from the previous one) and note any move."""
        if self._previous is not None and self._config.still_step > 0:
            if 1.0 - float(np.dot(smoothed, self._previous)) < self._config.still_step:
                self._still += 1
            else:
                self._still, self._moved = 0, True
        self._previous = smoothed

    def _request(self, reason: DecodeReason, stamp_ns: int, smoothed: np.ndarray, score: float) -> DecodeRequest:
        self._pending = smoothed
        if self._anchor is None:
            self._anchor = smoothed  # until the result is noted, measure from here with radius 0
        self._last_decode_ns = stamp_ns
        first_ns = self._window[0][0]
        return DecodeRequest(
            reason=reason,
            vector=smoothed.astype(np.float32),
            stamp_ns=stamp_ns,
            segment_start_ns=first_ns,
            segment_end_ns=stamp_ns,
            num_embeddings=len(self._window),
            change_score=score,
            change_ns=first_ns,
            publish_if_new=reason in (DecodeReason.CHANGE, DecodeReason.CONFIRM),
        )
