"""What the decoder node decides for each incoming embedding, without rclpy: one core for the node and replay.

`DecoderCore.feed` takes one embedding as the Embedding message carries it (camera, kind, model, query, shape,
values, stamp) and returns a `FeedOutcome`: a CaptionEvent to publish, or why nothing came of it. In order:
1. a camera name longer than `MAX_CAMERA_NAME_BYTES` (UTF-8) is refused (`rejected.camera_name_too_long`, a
   node-wide count: the name never becomes a stream, a status or a log line in full);
2. the bounded stream table admits the camera (idle streams expire; a new camera is refused when every slot
   is active: `streams_full`);
3. only KIND_PREDICTED embeddings are decoded (others: `ignored.kind`); with a query filter, only that query
   (others: `ignored.query`);
4. a change of the camera's model_version or query restarts its stream (vectors of different models are not
   comparable; `stream_resets`), and its next caption is a FIRST;
5. a shape that does not match the values, a malformed vector, a dimension other than the decoder's or a stamp
   going back are rejected by reason (`rejected.<reason>`); a stamp a second or more back restarts the stream.
The node keeps parameters, topics, logs and /diagnostics; `replay` and `evaluate_selective` feed the same core.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from vljepa_ros.decoding.change_detection import ChangeDetectorConfig, RejectedEmbedding
from vljepa_ros.decoding.config import StreamLimits
from vljepa_ros.decoding.decoders import Decoder
from vljepa_ros.decoding.pipeline import CaptionEvent, DecodingPipeline
from vljepa_ros.decoding.stream_table import StreamTable
from vljepa_ros.perception.config import MAX_CAMERA_NAME_BYTES

KIND_PREDICTED = 1  # vljepa_msgs/Embedding.KIND_PREDICTED (the node's test checks they agree)
REJECT_CAMERA_NAME = "camera_name_too_long"


@dataclass(frozen=True)
class EmbeddingInput:
    """One embedding as the Embedding message carries it (values as float32; `shape` as declared)."""

    camera: str
    frame_id: str
    stamp_ns: int
    vector: np.ndarray
    kind: int = KIND_PREDICTED
    model_id: str = ""
    model_version: str = ""
    query: str = ""
    shape: tuple[int, ...] | None = None  # None: the vector's own shape (no declared shape to check)


@dataclass
class CameraInfo:
    """Facts about one camera's input that the decoding pipeline does not hold."""

    model_id: str = ""
    model_version: str = ""
    query: str = ""
    decodable_seen: bool = False  # a KIND_PREDICTED embedding of the wanted query arrived
    last_receive_ns: int = 0
    stream_resets: int = 0
    ignored: Counter = field(default_factory=Counter)
    last_caption: str = ""
    fed_since_statistics: bool = False  # an embedding reached the pipeline since the last statistics


@dataclass(frozen=True)
class FeedOutcome:
    """What became of one embedding. `status`: caption | fed | refused | ignored | rejected.

    `reason` is the counter key for refused (camera_name_too_long, streams_full), ignored (kind, query) and
    rejected (shape, dimension, ...) embeddings; `detail` a readable sentence; `reset_from` the camera's previous
    (model_version, query) when this embedding restarted its stream; `expired` streams dropped to make room.
    """

    status: str
    event: CaptionEvent | None = None
    reason: str = ""
    detail: str = ""
    reset_from: tuple[str, str] | None = None
    expired: tuple[str, ...] = ()


def camera_name_too_long(camera: str) -> bool:
    """True when `camera` is longer than MAX_CAMERA_NAME_BYTES in UTF-8 (checked by length first: cheap)."""
    if len(camera) <= MAX_CAMERA_NAME_BYTES // 4:
        return False
    return len(camera.encode("utf-8", errors="surrogatepass")) > MAX_CAMERA_NAME_BYTES


class DecoderCore:
    """Per-camera admission and selective decoding of embeddings; `pipeline` does the detection and decoding."""

    def __init__(
        self,
        decoder: Decoder,
        config: ChangeDetectorConfig,
        limits: StreamLimits | None = None,
        query_filter: str = "",
        uniform_rate_hz: float = 1.0,
    ):
        self.pipeline = DecodingPipeline(decoder, config, uniform_rate_hz)
        self.cameras: StreamTable[CameraInfo] = StreamTable(limits or StreamLimits(), CameraInfo)
        self.query_filter = str(query_filter)
        self.refused: Counter = Counter()  # node-wide refusals by reason (the camera has no stream to count them)

    def expire_idle(self, now_ns: int) -> list[str]:
        """Drop every stream idle for longer than the expiry (steady time `now_ns`); returns their names."""
        expired = self.cameras.expire_idle(now_ns)
        self._forget(expired)
        return expired

    def _forget(self, expired: Sequence[str]) -> None:
        for camera in expired:
            self.pipeline.remove_stream(camera)

    def feed(self, item: EmbeddingInput, now_ns: int) -> FeedOutcome:
        """Decide on one embedding received at steady time `now_ns` (see the module docstring for the order)."""
        camera = item.camera
        if camera_name_too_long(camera):
            self.refused[REJECT_CAMERA_NAME] += 1
            return FeedOutcome(
                "refused", reason=REJECT_CAMERA_NAME, detail=f"camera name longer than {MAX_CAMERA_NAME_BYTES} bytes"
            )
        info, expired = self.cameras.touch(camera, now_ns)
        self._forget(expired)
        expired = tuple(expired)
        if info is None:
            return FeedOutcome("refused", reason="streams_full", expired=expired)
        info.last_receive_ns = now_ns
        if item.kind != KIND_PREDICTED:
            info.ignored["kind"] += 1
            return FeedOutcome("ignored", reason="kind", detail=f"kind {item.kind}", expired=expired)
        if self.query_filter and item.query != self.query_filter:
            info.ignored["query"] += 1
            return FeedOutcome("ignored", reason="query", expired=expired)
        reset_from = None
        if info.decodable_seen and (info.model_version, info.query) != (item.model_version, item.query):
            info.stream_resets += 1
            reset_from = (info.model_version, info.query)
            self.pipeline.reset_stream(camera)
        info.model_id, info.model_version, info.query = item.model_id, item.model_version, item.query
        info.decodable_seen = True
        info.fed_since_statistics = True
        vector = np.asarray(item.vector)
        try:
            if item.shape is not None and int(np.prod(item.shape, dtype=np.int64)) != vector.size:
                self.pipeline.record_rejection(camera, item.frame_id, "shape")
                raise RejectedEmbedding("shape", f"shape {list(item.shape)} does not match {vector.size} values")
            event = self.pipeline.feed(camera, item.frame_id, item.stamp_ns, vector)
        except RejectedEmbedding as err:
            return FeedOutcome("rejected", reason=err.reason, detail=str(err), reset_from=reset_from, expired=expired)
        if event is None:
            return FeedOutcome("fed", reset_from=reset_from, expired=expired)
        info.last_caption = event.text
        return FeedOutcome("caption", event=event, reset_from=reset_from, expired=expired)


def online_captions(core: DecoderCore, items: Sequence[EmbeddingInput], now_ns: int = 0) -> list[CaptionEvent]:
    """Feed `items` in order (all received at steady time `now_ns`); the captions they produced."""
    events = []
    for item in items:
        outcome = core.feed(item, now_ns)
        if outcome.event is not None:
            events.append(outcome.event)
    return events
