"""Search the recording index by moment: one result per run of clips that show one state (index/moments.py).

A moment scores the cosine similarity of its mean predicted embedding to the query, and is shown by its middle
clip (time, caption, thumbnail): the clips at its edges straddle a change. Filters keep or drop clips before
moments are averaged, so a time window scores only the part of a moment inside it. Without filters the moment
vectors are computed once and, with ``use_ann``, searched through an IVF index of their own.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vljepa_ros.index.ann import IvfIndex
from vljepa_ros.index.moments import MOMENT_DISTANCE, moment_of_rows, moment_vectors
from vljepa_ros.index.search import ClipSearcher, Filters, Hit


class MomentSearcher:
    """The moments of a ClipSearcher's rows; top-k moments for a query, best first."""

    def __init__(self, clips: ClipSearcher, distance_threshold: float = MOMENT_DISTANCE):
        self.clips = clips
        c = clips.columns
        streams = list(zip(c["bag_hash"], c["camera"], c["model_version"]))
        stamps = c["stamp_ns"].astype(np.int64)
        segment_starts = clips.table["segment_start_ns"].to_pylist()  # None (not NaN) where no segment covers
        self.moment = moment_of_rows(streams, stamps, segment_starts, clips.vectors, distance_threshold)
        # Rows in moment order, in time within a moment: every moment is one contiguous run.
        self.order = np.lexsort((stamps, self.moment))
        self.vectors, self.starts = moment_vectors(clips.vectors[self.order], self.moment[self.order])
        self.ann: IvfIndex | None = None

    def __len__(self) -> int:
        return len(self.starts)

    def build_ann(self, nlist: int | None = None, nprobe: int = 16) -> IvfIndex:
        """Build (and keep) the IVF index over the moment vectors, used by unfiltered searches with ``use_ann``."""
        self.ann = IvfIndex(self.vectors, nlist=nlist, nprobe=nprobe)
        return self.ann

    def search(self, query: np.ndarray, top_k: int = 10, filters: Filters | None = None, use_ann: bool = False) -> list:
        """The `top_k` best moments for `query` (a unit vector in the embedding space), best first; None: no filter."""
        query = np.asarray(query, dtype=np.float32).ravel()
        mask = self.clips.mask(filters or Filters())
        if mask is None:
            rows, vectors, starts = self.order, self.vectors, self.starts
            if use_ann and self.ann is not None:
                best, scores = self.ann.search(query, top_k)
                if len(best) >= min(top_k, len(self)):
                    return [self.hit(rows, starts, int(m), float(s)) for m, s in zip(best, scores)]
        else:
            rows = self.order[mask[self.order]]
            vectors, starts = moment_vectors(self.clips.vectors[rows], self.moment[rows])
        scores = vectors @ query
        best = np.argsort(-scores, kind="stable")[:top_k]
        return [self.hit(rows, starts, int(m), float(scores[m])) for m in best]

    def hit(self, rows: np.ndarray, starts: np.ndarray, index: int, score: float) -> Hit:
        """The Hit of moment `index` of `rows` (in moment order; `starts`: where each moment's run begins)."""
        stop = int(starts[index + 1]) if index + 1 < len(starts) else len(rows)
        members = rows[int(starts[index]) : stop]
        middle = self.clips.hit(int(members[(len(members) - 1) // 2]), score)
        return dataclasses.replace(
            middle,
            start_t_s=self.clips.time_s(int(members[0])),
            end_t_s=self.clips.time_s(int(members[-1])),
            clips=len(members),
        )
