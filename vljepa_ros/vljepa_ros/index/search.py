"""Search the recording index: cosine similarity of a query vector to every clip's predicted embedding.

Filters (camera, time window, model version) are masks over the rows. Flat search scores every row; with an
IvfIndex the candidates come from the probed lists (more than asked for, so filters still leave enough), and
the search falls back to flat when they do not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vljepa_ros.index.ann import IvfIndex
from vljepa_ros.index.recording_index import RecordingIndex, vectors_of

METADATA = [
    "key",
    "bag",
    "bag_path",
    "bag_hash",
    "camera",
    "stamp_ns",
    "t_s",
    "model_id",
    "model_version",
    "caption",
    "segment_start_ns",
]
ANN_CANDIDATES = 20  # ANN candidates per wanted result, so filters applied afterwards rarely starve it


@dataclass(frozen=True)
class Hit:
    """One search result: a clip, or a moment shown by its middle clip (key, stamp, time, caption, thumbnail)."""

    key: str
    bag: str
    bag_path: str
    bag_hash: str
    camera: str
    stamp_ns: int
    t_s: float | None
    model_version: str
    caption: str
    score: float
    start_t_s: float | None = None  # a moment's first and last clip times; None for a clip hit
    end_t_s: float | None = None
    clips: int = 1  # clips the hit stands for

    @property
    def play_from_s(self) -> float:
        """Where playback of this hit starts: a moment's first clip, else the clip itself."""
        start = self.t_s if self.start_t_s is None else self.start_t_s
        return max(0.0, start or 0.0)

    @property
    def replay_command(self) -> str:
        """The command that plays the bag from this hit."""
        return f"live_replay {self.bag_path} --start {self.play_from_s:.2f}"


@dataclass(frozen=True)
class Filters:
    """Which rows a search may return; None means no restriction."""

    camera: str | None = None
    after_ns: int | None = None
    before_ns: int | None = None
    model_version: str | None = None


class ClipSearcher:
    """The index's metadata and embedding matrix in memory; flat or ANN top-k with filters."""

    def __init__(self, table: pa.Table, vectors: np.ndarray):
        if len(table) != len(vectors):
            raise ValueError(f"{len(table)} rows for {len(vectors)} vectors")
        self.table = table
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.columns = {name: table[name].to_numpy(zero_copy_only=False) for name in table.column_names}
        self.ann: IvfIndex | None = None

    @classmethod
    def load(cls, index: RecordingIndex) -> ClipSearcher:
        """Everything but the thumbnails of `index`."""
        table = index.table(columns=[*METADATA, "embedding"])
        return cls(table.drop_columns(["embedding"]), vectors_of(table))

    def __len__(self) -> int:
        return len(self.table)

    def build_ann(self, nlist: int | None = None, nprobe: int = 16) -> IvfIndex:
        """Build (and keep) the IVF index used by searches with ``use_ann``."""
        self.ann = IvfIndex(self.vectors, nlist=nlist, nprobe=nprobe)
        return self.ann

    def mask(self, filters: Filters) -> np.ndarray | None:
        """Boolean mask of the rows `filters` allows (None: all rows)."""
        mask = np.ones(len(self), dtype=bool)
        columns = self.columns
        if filters.camera is not None:
            mask &= columns["camera"] == filters.camera
        if filters.after_ns is not None:
            mask &= columns["stamp_ns"] >= filters.after_ns
        if filters.before_ns is not None:
            mask &= columns["stamp_ns"] <= filters.before_ns
        if filters.model_version is not None:
            mask &= columns["model_version"] == filters.model_version
        return None if mask.all() else mask

    def search(self, query: np.ndarray, top_k: int = 10, filters: Filters = Filters(), use_ann: bool = False) -> list:
        """The `top_k` best clips for `query` (a unit vector in the embedding space), best first."""
        query = np.asarray(query, dtype=np.float32).ravel()
        mask = self.mask(filters)
        if use_ann and self.ann is not None:
            rows, scores = self.ann.search(query, top_k * ANN_CANDIDATES)
            if mask is not None:
                keep = mask[rows]
                rows, scores = rows[keep], scores[keep]
            if len(rows) >= min(top_k, len(self) if mask is None else int(mask.sum())):
                return [self.hit(int(r), float(s)) for r, s in zip(rows[:top_k], scores[:top_k])]
        candidates = np.arange(len(self)) if mask is None else np.flatnonzero(mask)
        # No fancy-index copy of the whole matrix when nothing is filtered out.
        scores = (self.vectors if mask is None else self.vectors[candidates]) @ query
        count = min(top_k, len(candidates))
        best = np.argpartition(-scores, count - 1)[:count] if count else np.zeros(0, dtype=int)
        best = best[np.argsort(-scores[best], kind="stable")]
        return [self.hit(int(candidates[i]), float(scores[i])) for i in best]

    def time_s(self, row: int) -> float | None:
        """Bag time of one row in seconds (None when unknown)."""
        t_s = self.columns["t_s"][row]
        return None if t_s is None or np.isnan(t_s) else float(t_s)

    def hit(self, row: int, score: float) -> Hit:
        """The Hit of one row."""
        c = self.columns
        return Hit(
            key=str(c["key"][row]),
            bag=str(c["bag"][row]),
            bag_path=str(c["bag_path"][row]),
            bag_hash=str(c["bag_hash"][row]),
            camera=str(c["camera"][row]),
            stamp_ns=int(c["stamp_ns"][row]),
            t_s=self.time_s(row),
            model_version=str(c["model_version"][row]),
            caption=str(c["caption"][row]),
            score=score,
        )

    def example(
        self, bag: str, t_s: float, camera: str | None = None, model_version: str | None = None
    ) -> tuple[np.ndarray, str]:
        """The embedding of the clip of `bag` (name or path) closest to `t_s` seconds in, and its model version
        (search by example: only rows of that version are comparable with it).

        Raises KeyError when the bag has no such clip, ValueError when its clips span several model versions
        and `model_version` does not pick one (the message names the versions present).
        """
        c = self.columns
        mask = (c["bag"] == bag) | (c["bag_path"] == bag)
        if camera is not None:
            mask &= c["camera"] == camera
        versions = sorted({str(v) for v in c["model_version"][mask]})
        if model_version is not None:
            if model_version not in versions:
                raise KeyError(f"no clip of bag {bag!r} under model version {model_version!r} (has: {versions})")
            mask &= c["model_version"] == model_version
        elif len(versions) > 1:
            raise ValueError(
                f"bag {bag!r} has clips under model versions {', '.join(versions)}: "
                "choose one with --model-version (vectors of different models are not comparable)"
            )
        rows = np.flatnonzero(mask)
        if not len(rows):
            raise KeyError(f"no clip of bag {bag!r} in the index")
        times = np.array([np.nan if v is None else v for v in c["t_s"][rows]], dtype=np.float64)
        row = rows[int(np.nanargmin(np.abs(times - t_s)))]
        return self.vectors[row], str(c["model_version"][row])


def thumbnails_of(index: RecordingIndex, hits: list[Hit]) -> dict[str, bytes]:
    """JPEG thumbnails of `hits` by key, read only from the parts that hold them."""
    found: dict[str, bytes] = {}
    wanted = {h.key for h in hits}
    for part in sorted({index.part_path(h.bag_hash, h.model_version) for h in hits}):
        table = pq.read_table(part, columns=["key", "thumbnail_jpeg"])
        for key, jpeg in zip(table["key"].to_pylist(), table["thumbnail_jpeg"].to_pylist()):
            if key in wanted and jpeg is not None:
                found[key] = jpeg
    return found
