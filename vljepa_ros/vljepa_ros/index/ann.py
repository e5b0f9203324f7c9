"""Approximate nearest neighbours over the index's embeddings: a FAISS inverted-file index (inner product)."""

from __future__ import annotations

import numpy as np

# faiss is imported lazily: flat search needs only numpy, and faiss-cpu is a large optional wheel.


class IvfIndex:
    """FAISS IndexIVFFlat over L2-normalised vectors; `search` returns row numbers and cosine scores."""

    def __init__(self, vectors: np.ndarray, nlist: int | None = None, nprobe: int = 16, seed: int = 0):
        import faiss

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        count, dim = vectors.shape
        # ~sqrt(N) lists (k-means training cost grows with the list count), never fewer than the 39 training
        # points per list FAISS asks for.
        self.nlist = nlist or max(1, min(4096, int(np.sqrt(count)), count // 39))
        quantizer = faiss.IndexFlatIP(dim)
        self.index = faiss.IndexIVFFlat(quantizer, dim, self.nlist, faiss.METRIC_INNER_PRODUCT)
        self.index.cp.seed = seed
        self.index.train(vectors)
        self.index.add(vectors)
        self.index.nprobe = min(nprobe, self.nlist)

    def search(self, query: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, scores) of the `count` best candidates, best first (fewer if the probed lists hold fewer)."""
        scores, rows = self.index.search(np.ascontiguousarray(query, dtype=np.float32)[None], count)
        keep = rows[0] >= 0
        return rows[0][keep], scores[0][keep]
