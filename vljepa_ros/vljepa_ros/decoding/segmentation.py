"""Offline segmentation of a whole embedding stream: agglomerative (Ward) clustering with temporal connectivity.

As in VL-JEPA Sec. 4.5: every embedding starts as its own segment and the pair of *adjacent* segments whose
merge increases the within-segment sum of squares the least is merged, until `n_segments` remain or the
cheapest merge is farther apart than `distance_threshold`. Distances follow the scipy/scikit-learn Ward
convention: d(A, B) = sqrt(2 * |A||B| / (|A| + |B|)) * ||mean(A) - mean(B)||, i.e. sqrt(2 * Ward increase).

Pure numpy, O(n log n) with a heap and lazy invalidation.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Segment:
    """Indices [start, stop) of a run of consecutive embeddings."""

    start: int
    stop: int

    @property
    def length(self) -> int:
        return self.stop - self.start

    @property
    def middle(self) -> int:
        """Index of the embedding at the temporal middle of the segment."""
        return (self.start + self.stop - 1) // 2


def _ward_distance(sum_a: np.ndarray, n_a: int, sum_b: np.ndarray, n_b: int) -> float:
    diff = sum_a / n_a - sum_b / n_b
    return math.sqrt(2.0 * n_a * n_b / (n_a + n_b) * float(np.dot(diff, diff)))


def ward_segments(vectors, n_segments: int | None = None, distance_threshold: float | None = None) -> list[Segment]:
    """Split a (T, E) stream into contiguous segments by Ward clustering with temporal connectivity.

    Exactly one of `n_segments` (stop when that many remain; capped at T) or `distance_threshold` (stop when
    the cheapest adjacent merge has a Ward distance above it) must be given. Returns segments in time order.
    """
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"vectors must be a non-empty (T, E) array, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("vectors contain NaN or infinite values")
    if (n_segments is None) == (distance_threshold is None):
        raise ValueError("give exactly one of n_segments or distance_threshold")
    if n_segments is not None and (isinstance(n_segments, bool) or int(n_segments) != n_segments or n_segments < 1):
        raise ValueError(f"n_segments must be an integer >= 1, got {n_segments!r}")
    if distance_threshold is not None and not (math.isfinite(distance_threshold) and distance_threshold >= 0):
        raise ValueError(f"distance_threshold must be a finite number >= 0, got {distance_threshold!r}")

    t = x.shape[0]
    sums = [row.copy() for row in x]
    counts = [1] * t
    starts = list(range(t))
    stops = list(range(1, t + 1))
    # Clusters are identified by their first index; a doubly linked list keeps temporal adjacency.
    nxt = list(range(1, t + 1))
    prv = list(range(-1, t - 1))
    alive = [True] * t
    version = [0] * t
    heap = [(_ward_distance(sums[i], 1, sums[i + 1], 1), i, i + 1, 0, 0) for i in range(t - 1)]
    heapq.heapify(heap)

    remaining = t
    target = 1 if n_segments is None else min(int(n_segments), t)
    while remaining > target and heap:
        dist, a, b, va, vb = heapq.heappop(heap)
        if not (alive[a] and alive[b]) or version[a] != va or version[b] != vb:
            continue  # stale: one side merged since this entry was pushed
        if distance_threshold is not None and dist > distance_threshold:
            break
        sums[a] = sums[a] + sums[b]
        counts[a] += counts[b]
        stops[a] = stops[b]
        alive[b] = False
        version[a] += 1
        nxt[a] = nxt[b]
        if nxt[a] < t:
            prv[nxt[a]] = a
        remaining -= 1
        left = prv[a]
        if left >= 0:
            heapq.heappush(
                heap, (_ward_distance(sums[left], counts[left], sums[a], counts[a]), left, a, version[left], version[a])
            )
        right = nxt[a]
        if right < t:
            heapq.heappush(
                heap,
                (_ward_distance(sums[a], counts[a], sums[right], counts[right]), a, right, version[a], version[right]),
            )

    return [Segment(starts[i], stops[i]) for i in range(t) if alive[i]]


def segment_means(vectors, segments: list[Segment]) -> np.ndarray:
    """L2-normalised average embedding of each segment, (len(segments), E) float32."""
    x = np.asarray(vectors, dtype=np.float64)
    means = np.stack([x[s.start : s.stop].mean(axis=0) for s in segments])
    norms = np.linalg.norm(means, axis=1, keepdims=True)
    return (means / np.maximum(norms, 1e-12)).astype(np.float32)
