"""Labelled embedding banks: texts with L2-normalised vectors (.npz), nearest-k by cosine similarity."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def l2_normalise(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """x / ||x|| along `axis` in float32; raises ValueError on zero or non-finite rows (no silent NaNs)."""
    x = np.asarray(x, dtype=np.float32)
    # Not linalg.norm's generic path and two separate checks: this runs on every published embedding right
    # after a model call, with cold caches, where every extra numpy call is expensive (docs/benchmarks.md).
    norm = np.sqrt(np.square(x).sum(axis=axis, keepdims=True))
    if norm.size and not (norm.min() > 0 and np.isfinite(norm).all()):
        raise ValueError("cannot L2-normalise: a vector is zero or not finite")
    return x / norm


def read_text_lines(path: str | Path) -> tuple[str, ...]:
    """Texts of a bank file: one per line, stripped; blank lines and lines starting with '#' skipped.

    Raises ValueError on duplicates (a bank entry is named by its text) or when no text is left."""
    path = Path(path)
    texts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    texts = [t for t in texts if t and not t.startswith("#")]
    if not texts:
        raise ValueError(f"{path}: no texts (one per line)")
    seen: set[str] = set()
    for text in texts:
        if text in seen:
            raise ValueError(f"{path}: {text!r} appears twice")
        seen.add(text)
    return tuple(texts)


@dataclass(frozen=True)
class TextBank:
    """N texts and their (N, E) float32 unit-length embeddings."""

    texts: tuple[str, ...]
    embeddings: np.ndarray

    def __post_init__(self):
        if self.embeddings.ndim != 2:
            raise ValueError(f"embeddings: expected (N, E), got shape {self.embeddings.shape}")
        if len(self.texts) != self.embeddings.shape[0]:
            raise ValueError(f"texts: {len(self.texts)} texts for {self.embeddings.shape[0]} embeddings")
        if len(self.texts) == 0:
            raise ValueError("texts: the bank is empty")

    @classmethod
    def from_embeddings(cls, texts: Sequence[str], embeddings: np.ndarray) -> TextBank:
        """Bank from raw vectors (normalised here)."""
        return cls(texts=tuple(str(t) for t in texts), embeddings=l2_normalise(np.asarray(embeddings)))

    @classmethod
    def load(cls, path: str | Path) -> TextBank:
        """Read a bank (.npz with `texts` and `embeddings`); vectors are re-normalised on load."""
        path = Path(path)
        with np.load(path, allow_pickle=False) as data:
            missing = {"texts", "embeddings"} - set(data.files)
            if missing:
                raise ValueError(f"{path}: missing array(s) {sorted(missing)}")
            texts, embeddings = data["texts"], data["embeddings"]
        try:
            return cls.from_embeddings([str(t) for t in texts], embeddings)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None

    def save(self, path: str | Path) -> Path:
        """Write `texts` (unicode array) and `embeddings` (float32) to .npz."""
        path = Path(path)
        np.savez(path, texts=np.asarray(self.texts, dtype=str), embeddings=self.embeddings.astype(np.float32))
        return path

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    def __len__(self) -> int:
        return len(self.texts)

    def similarities(self, queries: np.ndarray) -> np.ndarray:
        """Cosine similarity of (E,) or (B, E) queries to every entry -> (N,) or (B, N)."""
        queries = np.asarray(queries, dtype=np.float32)
        if queries.shape[-1] != self.dim:
            raise ValueError(f"query dim {queries.shape[-1]} != bank dim {self.dim}")
        return l2_normalise(queries) @ self.embeddings.T

    def top_k(self, query: np.ndarray, k: int = 1) -> list[tuple[str, float]]:
        """The k most similar texts to one (E,) query, best first, with cosine scores."""
        if np.asarray(query).ndim != 1:
            raise ValueError(f"top_k takes one (E,) query, got shape {np.asarray(query).shape}")
        if k <= 0:
            raise ValueError(f"k: must be positive, got {k}")
        scores = self.similarities(query)
        k = min(k, len(self))
        best = np.argpartition(-scores, k - 1)[:k]
        best = best[np.argsort(-scores[best], kind="stable")]
        return [(self.texts[i], float(scores[i])) for i in best]
