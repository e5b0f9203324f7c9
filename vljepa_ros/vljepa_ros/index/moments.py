"""Moments: runs of consecutive clips of one stream (bag, camera, model version) that show one state.

A text search should return the moment a state holds, not the single clip that happens to score best: the
clips that straddle a scene change blur both states, and one of them often outscores the clips of the true
segment. Each stream is split by Ward clustering with temporal connectivity at a distance threshold (the same
clustering as replay's offline segments, which stop at a fixed count and so merge states that differ in one
object), and never across the boundary of a decoded segment, so each moment has one caption. A moment is
scored by its mean embedding.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vljepa_ros.decoding.segmentation import ward_segments

# Ward distance at which merging adjacent runs stops; chosen on tiny-world tuning seeds (docs/fleet.md).
MOMENT_DISTANCE = 1.75


def stream_boundaries(vectors: np.ndarray, segment_starts: Sequence, distance_threshold: float) -> np.ndarray:
    """Start indices of the moments of one time-ordered stream of unit `vectors`, first one 0.

    A moment starts where Ward clustering at `distance_threshold` starts a segment, and where the decoded
    segment of a clip (`segment_starts`, one per clip; None for a clip no segment covers) differs from the
    previous clip's.
    """
    count = len(vectors)
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    starts = {s.start for s in ward_segments(vectors, distance_threshold=distance_threshold)}
    starts.update(i for i in range(1, count) if segment_starts[i] != segment_starts[i - 1])
    return np.array(sorted(starts), dtype=np.int64)


def moment_of_rows(
    streams: Sequence, stamps: np.ndarray, segment_starts: Sequence, vectors: np.ndarray, distance_threshold: float
) -> np.ndarray:
    """Moment number of every row; rows are grouped into streams by `streams` (one hashable key per row).

    Moments are numbered stream by stream (in order of first appearance) and in time within a stream.
    """
    moment = np.zeros(len(stamps), dtype=np.int64)
    by_stream: dict = {}
    for row, key in enumerate(streams):
        by_stream.setdefault(key, []).append(row)
    first = 0
    for rows in by_stream.values():
        rows = np.array(rows, dtype=np.int64)
        rows = rows[np.argsort(stamps[rows], kind="stable")]
        bounds = stream_boundaries(vectors[rows], [segment_starts[r] for r in rows], distance_threshold)
        run = np.zeros(len(rows), dtype=np.int64)
        run[bounds[1:]] = 1
        moment[rows] = first + np.cumsum(run)
        first += len(bounds)
    return moment


def moment_vectors(vectors: np.ndarray, moments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit mean vector of each moment present in `moments`, and the row where each moment starts.

    `moments` holds one moment number per row of `vectors`, rows of one moment contiguous.
    Returns (means (M, E) float32, first row of each moment (M,)).
    """
    if len(moments) == 0:
        return np.zeros((0, vectors.shape[1]), np.float32), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, moments[1:] != moments[:-1]])
    sums = np.add.reduceat(vectors.astype(np.float64), starts, axis=0)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return (sums / np.maximum(norms, 1e-12)).astype(np.float32), starts
