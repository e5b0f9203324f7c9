"""Index rows of one replayed bag, from the replay's output messages and the input bag's frames."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from vljepa_ros.bags.bag_io import stamp_to_ns
from vljepa_ros.index.schema import SCHEMA, clip_key
from vljepa_ros.index.thumbnails import THUMBNAIL_WIDTH, clip_frames


@dataclass(frozen=True)
class ReplayedBag:
    """What a replay of one bag produced: its Embedding and segment Caption messages (vljepa_msgs, deserialized)."""

    name: str
    path: Path
    content_hash: str
    topics: Mapping[str, str]  # camera name -> input topic
    predicted: Sequence  # Embedding messages, kind PREDICTED
    visual_states: Sequence  # Embedding messages, kind VISUAL_STATE
    segments: Sequence  # Caption messages, one per offline segment


def _segment_of(segments: Sequence, camera: str, stamp_ns: int):
    """The offline segment caption of `camera` whose [start, end] covers `stamp_ns` (None if none does)."""
    for caption in segments:
        if caption.camera == camera and stamp_to_ns(caption.segment_start) <= stamp_ns <= stamp_to_ns(
            caption.segment_end
        ):
            return caption
    return None


def clip_rows(replayed: ReplayedBag, thumbnail_width: int = THUMBNAIL_WIDTH) -> pa.Table:
    """One row per predicted embedding (clip) of the bag, in SCHEMA; thumbnails are read from the input bag."""
    wanted: dict[str, set[int]] = {}
    for message in replayed.predicted:
        wanted.setdefault(replayed.topics[message.camera], set()).add(stamp_to_ns(message.header.stamp))
    thumbs, bag_times, first_ns = clip_frames(replayed.path, wanted, thumbnail_width) if wanted else ({}, {}, None)
    visual = {(m.camera, stamp_to_ns(m.header.stamp)): m for m in replayed.visual_states}
    rows = {name: [] for name in SCHEMA.names}
    for message in replayed.predicted:
        stamp = stamp_to_ns(message.header.stamp)
        topic = replayed.topics[message.camera]
        segment = _segment_of(replayed.segments, message.camera, stamp)
        state = visual.get((message.camera, stamp))
        bag_time = bag_times.get((topic, stamp))
        values = {
            "key": clip_key(replayed.content_hash, message.camera, stamp, message.model_version),
            "bag": replayed.name,
            "bag_path": str(replayed.path),
            "bag_hash": replayed.content_hash,
            "camera": message.camera,
            "topic": topic,
            "stamp_ns": stamp,
            "t_s": None if bag_time is None else (bag_time - first_ns) / 1e9,
            "model_id": message.model_id,
            "model_version": message.model_version,
            "query": message.query,
            "embedding": np.asarray(message.data, dtype=np.float32),
            "visual_state": None if state is None else np.asarray(state.data, dtype=np.float32),
            "caption": "" if segment is None else segment.text,
            "segment_start_ns": None if segment is None else stamp_to_ns(segment.segment_start),
            "segment_end_ns": None if segment is None else stamp_to_ns(segment.segment_end),
            "thumbnail_jpeg": thumbs.get((topic, stamp)),
        }
        for name, value in values.items():
            rows[name].append(value)
    return pa.table(rows, schema=SCHEMA)
