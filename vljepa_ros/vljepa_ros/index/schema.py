"""The index's row: one clip of one camera of one replayed bag, under one model version."""

from __future__ import annotations

import pyarrow as pa

SCHEMA = pa.schema(
    [
        ("key", pa.string()),  # clip_key(): unique per bag content, camera, stamp and model version
        ("bag", pa.string()),  # the bag's name in the fleet run
        ("bag_path", pa.string()),
        ("bag_hash", pa.string()),
        ("camera", pa.string()),
        ("topic", pa.string()),
        ("stamp_ns", pa.int64()),  # header stamp of the clip's last frame
        ("t_s", pa.float64()),  # bag time of that frame after the bag's first camera frame (live_replay --start)
        ("model_id", pa.string()),
        ("model_version", pa.string()),
        ("query", pa.string()),
        ("embedding", pa.list_(pa.float32())),  # predicted, L2-normalised, in the text space
        ("visual_state", pa.list_(pa.float32())),  # null when the replay published no visual state
        ("caption", pa.string()),  # the offline segment caption covering the clip
        ("segment_start_ns", pa.int64()),
        ("segment_end_ns", pa.int64()),
        ("thumbnail_jpeg", pa.binary()),
    ]
)


def clip_key(bag_hash: str, camera: str, stamp_ns: int, model_version: str) -> str:
    """The de-duplication key of a clip row."""
    return f"{bag_hash}/{camera}/{int(stamp_ns)}/{model_version}"
