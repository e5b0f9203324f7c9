"""Recording-index rows (index/schema.py SCHEMA) for tests: one clip per embedding, a second apart from t = 0."""

import numpy as np
import pyarrow as pa

from vljepa_ros.index.schema import SCHEMA, clip_key


def clip_rows(bag_hash: str, embeddings, camera: str = "cam", version: str = "v1", **columns) -> pa.Table:
    """A bag's clip rows with placeholder metadata; `columns` (one list per column) replace the defaults."""
    count = len(embeddings)
    stamps = 1_000_000_000 * np.arange(count, dtype=np.int64)
    table = {
        "key": [clip_key(bag_hash, camera, s, version) for s in stamps],
        "bag": [f"bag_{bag_hash}"] * count,
        "bag_path": [f"/bags/{bag_hash}"] * count,
        "bag_hash": [bag_hash] * count,
        "camera": [camera] * count,
        "topic": ["/cam"] * count,
        "stamp_ns": stamps,
        "t_s": stamps / 1e9,
        "model_id": ["m"] * count,
        "model_version": [version] * count,
        "query": ["describe the scene"] * count,
        "embedding": list(embeddings),
        "visual_state": [None] * count,
        "caption": [None] * count,
        "segment_start_ns": stamps,
        "segment_end_ns": stamps,
        "thumbnail_jpeg": [None] * count,
    }
    unknown = set(columns) - set(table)
    assert not unknown, f"not index columns: {sorted(unknown)}"
    table.update(columns)
    return pa.table(table, schema=SCHEMA)
