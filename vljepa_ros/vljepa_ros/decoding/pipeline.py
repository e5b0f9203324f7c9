"""Selective decoding of per-camera embedding streams: change detection + decoder + cost bookkeeping.

Online (`DecodingPipeline.feed`, used by the decoder node and the replay tool): each camera has its own
ChangeDetector; an embedding yields a CaptionEvent only when its stream's meaning changed (or on the first
decode / a heartbeat). Offline (`decode_segments`): Ward segmentation of a whole stream, one decode per segment.
Both decode segment-average embeddings, never a single frame. No rclpy; stamps are integer nanoseconds.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from vljepa_ros.decoding.change_detection import (
    ChangeDetector,
    ChangeDetectorConfig,
    DecodeReason,
    DecodeRequest,
    RejectedEmbedding,
    cosine_distance,
)
from vljepa_ros.decoding.decoders import Decoder
from vljepa_ros.decoding.drift_trigger import DriftTrigger
from vljepa_ros.decoding.segmentation import segment_means, ward_segments
from vljepa_ros.perception.clip_buffer import TIME_RESET_NS

_NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class CaptionEvent:
    """One decoded segment of one camera's stream (what becomes a vljepa_msgs/Caption)."""

    camera: str
    frame_id: str
    text: str
    score: float  # cosine similarity of the segment embedding to `text`
    stamp_ns: int  # an input stamp inside [segment_start_ns, segment_end_ns]
    segment_start_ns: int  # span of the embeddings averaged into the decoded vector
    segment_end_ns: int
    num_embeddings: int
    reason: DecodeReason
    change_score: float
    alternatives: tuple[tuple[str, float], ...]
    change_ns: int  # detected start of the described state (<= segment_start_ns)


def uniform_decode_count(stream_seconds: float, rate_hz: float) -> int:
    """Decodes a uniform decoder at `rate_hz` makes over a stream spanning `stream_seconds` (one at its start)."""
    return int(math.floor(stream_seconds * rate_hz + 1e-9)) + 1


@dataclass(frozen=True)
class StreamStatistics:
    """Cost of selective decoding for one camera so far, next to uniform decoding at `uniform_rate_hz`."""

    camera: str
    frame_id: str
    embeddings_seen: int
    decodes: int
    stream_seconds: float
    decodes_per_minute: float
    uniform_rate_hz: float
    uniform_decodes: int
    reduction_factor: float
    transients: int  # changes that did not persist through the settle period (no decode)
    clock_restarts: int  # stamps that jumped back by >= 1 s: the camera's clock restarted, its stream too
    rejected: dict[str, int] = field(default_factory=dict)  # embeddings refused, by reason
    last_stamp_ns: int = 0
    last_score: float = 0.0  # the newest change score (compare with the threshold when tuning)
    disarmed_seconds: float = 0.0  # stream time waiting for the score to fall below the re-arm level
    confirmed_silently: int = 0  # decodes that repeated the caption in force (CONFIRM, margin drift): not published


def make_trigger(config: ChangeDetectorConfig) -> ChangeDetector | DriftTrigger:
    """The online decode trigger `config.trigger` names, for one stream."""
    return DriftTrigger(config) if config.trigger == "margin" else ChangeDetector(config)


@dataclass
class _Stream:
    detector: ChangeDetector | DriftTrigger
    frame_id: str = ""
    seen: int = 0
    decodes: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    earlier_seconds: float = 0.0  # stream time seen before the last clock restart
    earlier_transients: int = 0  # transients of detectors replaced by a restart or reset
    clock_restarts: int = 0
    rejected: Counter = field(default_factory=Counter)
    last_text: str | None = None  # the newest caption handed out (a CONFIRM that repeats it is not)
    confirmed_silently: int = 0  # CONFIRM decodes whose text equalled the provisional caption


class DecodingPipeline:
    """Per-camera selective decoding with one shared decoder and operating point."""

    def __init__(self, decoder: Decoder, config: ChangeDetectorConfig, uniform_rate_hz: float = 1.0):
        if not (isinstance(uniform_rate_hz, (int, float)) and math.isfinite(uniform_rate_hz) and uniform_rate_hz > 0):
            raise ValueError(f"uniform_rate_hz must be a finite number > 0, got {uniform_rate_hz!r}")
        self._decoder = decoder
        self._config = config
        self._uniform_rate_hz = float(uniform_rate_hz)
        self._streams: dict[str, _Stream] = {}

    @property
    def config(self) -> ChangeDetectorConfig:
        return self._config

    @property
    def decoder(self) -> Decoder:
        return self._decoder

    @property
    def uniform_rate_hz(self) -> float:
        return self._uniform_rate_hz

    @property
    def cameras(self) -> list[str]:
        return sorted(self._streams)

    def set_config(self, config: ChangeDetectorConfig) -> None:
        """New operating point for every stream; their segments and windows are kept (a switch of trigger
        restarts the streams' detection; the next decode is FIRST)."""
        switched = config.trigger != self._config.trigger
        self._config = config
        for camera, stream in self._streams.items():
            if switched:
                self.reset_stream(camera)
            else:
                stream.detector.reconfigure(config)

    def set_uniform_rate_hz(self, rate_hz: float) -> None:
        """Change the uniform rate the statistics compare against."""
        if not (isinstance(rate_hz, (int, float)) and math.isfinite(rate_hz) and rate_hz > 0):
            raise ValueError(f"uniform_rate_hz must be a finite number > 0, got {rate_hz!r}")
        self._uniform_rate_hz = float(rate_hz)

    def set_decoder(self, decoder: Decoder) -> None:
        """Use another decoder; streams restart if its embedding dimension differs (old vectors don't fit)."""
        changed_dim = decoder.embedding_dim != self._decoder.embedding_dim
        self._decoder = decoder
        if changed_dim:
            for camera in list(self._streams):
                self.reset_stream(camera)

    def reset_stream(self, camera: str) -> None:
        """Forget a camera's segment state (e.g. its model changed); counters are kept, next decode is FIRST."""
        stream = self._streams.get(camera)
        if stream is not None:
            stream.earlier_transients += stream.detector.transients
            stream.detector = make_trigger(self._config)

    def remove_stream(self, camera: str) -> None:
        """Forget a camera entirely (state and counters), e.g. after it stayed idle too long; no-op if unknown."""
        self._streams.pop(camera, None)

    def _stream(self, camera: str) -> _Stream:
        stream = self._streams.get(camera)
        if stream is None:
            stream = self._streams[camera] = _Stream(make_trigger(self._config))
        return stream

    def record_rejection(self, camera: str, frame_id: str, reason: str) -> None:
        """Count an embedding of `camera` that the caller refused before `feed` (e.g. a malformed message)."""
        stream = self._stream(camera)
        stream.frame_id = frame_id
        stream.rejected[reason] += 1

    def feed(self, camera: str, frame_id: str, stamp_ns: int, vector) -> CaptionEvent | None:
        """Add one embedding of `camera`; return a CaptionEvent when a segment was decoded.

        Raises RejectedEmbedding (after counting it in the camera's statistics) for malformed vectors, a
        dimension other than the decoder's, or a stamp older than the camera's previous one by less than a
        second. A stamp a second or more behind means the camera's clock restarted (bag loop, simulator
        reset; the perception ClipBuffer uses the same rule): the camera's stream starts over, counted in
        `clock_restarts`, and its next caption is a FIRST decode.
        """
        stream = self._stream(camera)
        stream.frame_id = frame_id
        stamp_ns = int(stamp_ns)
        restarted = stream.last_ns is not None and stamp_ns <= stream.last_ns - TIME_RESET_NS
        detector = make_trigger(self._config) if restarted else stream.detector
        try:
            size = np.asarray(vector).size
            if size != self._decoder.embedding_dim:
                raise RejectedEmbedding(
                    "dimension", f"embedding has {size} values, decoder expects {self._decoder.embedding_dim}"
                )
            request = detector.update(stamp_ns, vector)
        except RejectedEmbedding as err:
            stream.rejected[err.reason] += 1
            raise
        if restarted:
            stream.earlier_transients += stream.detector.transients
            stream.detector = detector
            stream.clock_restarts += 1
            stream.earlier_seconds += (stream.last_ns - stream.first_ns) / _NS_PER_S
            stream.first_ns = stamp_ns
        stream.seen += 1
        if stream.first_ns is None:
            stream.first_ns = stamp_ns
        stream.last_ns = stamp_ns
        if request is None:
            return None
        stream.decodes += 1
        event = self._decode(camera, frame_id, request, stream.detector)
        if request.publish_if_new and event.text == stream.last_text:
            stream.confirmed_silently += 1
            return None
        stream.last_text = event.text
        return event

    def _decode(
        self, camera: str, frame_id: str, request: DecodeRequest, detector: ChangeDetector | DriftTrigger
    ) -> CaptionEvent:
        decoded = self._decoder.decode(request.vector)
        detector.note_decoded(decoded)
        return CaptionEvent(
            camera=camera,
            frame_id=frame_id,
            text=decoded.text,
            score=decoded.score,
            stamp_ns=request.stamp_ns,
            segment_start_ns=request.segment_start_ns,
            segment_end_ns=request.segment_end_ns,
            num_embeddings=request.num_embeddings,
            reason=request.reason,
            change_score=request.change_score,
            alternatives=decoded.alternatives,
            change_ns=request.change_ns,
        )

    def statistics(self, camera: str) -> StreamStatistics:
        """Running cost for `camera` (KeyError if it never sent an embedding)."""
        stream = self._streams[camera]
        seconds = stream.earlier_seconds
        if stream.first_ns is not None:
            seconds += (stream.last_ns - stream.first_ns) / _NS_PER_S
        uniform = uniform_decode_count(seconds, self._uniform_rate_hz) if stream.seen else 0
        return StreamStatistics(
            camera=camera,
            frame_id=stream.frame_id,
            embeddings_seen=stream.seen,
            decodes=stream.decodes,
            stream_seconds=seconds,
            decodes_per_minute=60.0 * stream.decodes / seconds if seconds > 0 else 0.0,
            uniform_rate_hz=self._uniform_rate_hz,
            uniform_decodes=uniform,
            reduction_factor=uniform / max(stream.decodes, 1),
            transients=stream.earlier_transients + stream.detector.transients,
            clock_restarts=stream.clock_restarts,
            rejected=dict(stream.rejected),
            last_stamp_ns=stream.last_ns or 0,
            last_score=stream.detector.last_score,
            disarmed_seconds=stream.detector.disarmed_seconds(),
            confirmed_silently=stream.confirmed_silently,
        )


def decode_segments(
    camera: str,
    frame_id: str,
    stamps_ns,
    vectors,
    decoder: Decoder,
    n_segments: int | None = None,
    distance_threshold: float | None = None,
) -> list[CaptionEvent]:
    """Offline selective decoding: Ward-segment a whole stream and decode each segment's average once.

    Each event is stamped at the segment's middle embedding (as in the paper); `change_score` is the cosine
    distance between the segment's average and the previous segment's (0 for the first). Temporal adjacency is
    the order of the rows, so a stream whose clock jumped back (a bag recorded across a clock reset) is still
    segmented as it was observed; a segment's start/end are then its earliest/latest stamps.
    """
    stamps = [int(s) for s in stamps_ns]
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or len(stamps) != x.shape[0]:
        raise ValueError(f"need one stamp per embedding row: {len(stamps)} stamps, vectors of shape {x.shape}")
    segments = ward_segments(x, n_segments=n_segments, distance_threshold=distance_threshold)
    means = segment_means(x, segments)
    events = []
    for i, (segment, mean) in enumerate(zip(segments, means)):
        decoded = decoder.decode(mean)
        events.append(
            CaptionEvent(
                camera=camera,
                frame_id=frame_id,
                text=decoded.text,
                score=decoded.score,
                stamp_ns=stamps[segment.middle],
                segment_start_ns=min(stamps[segment.start : segment.stop]),
                segment_end_ns=max(stamps[segment.start : segment.stop]),
                num_embeddings=segment.length,
                reason=DecodeReason.SEGMENT,
                change_score=0.0 if i == 0 else cosine_distance(mean, means[i - 1]),
                alternatives=decoded.alternatives,
                change_ns=min(stamps[segment.start : segment.stop]),
            )
        )
    return events
