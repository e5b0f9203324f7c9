"""Turning a segment embedding (Y-encoder space) into text.

`Decoder` is the interface the decoding pipeline and the decoder node use. `RetrievalDecoder` is VL-JEPA's
retrieval read-out: the nearest text, by cosine similarity, among candidate texts embedded by the Y-encoder
(a TextBank). Its bank can be replaced at runtime (the node's `bank_path` parameter).

A learned text decoder (the paper's lightweight "Y-decoder") fits the same interface: an ONNX graph taking the
(1, E) float32 embedding and producing token ids by greedy or beam search, detokenised with the Y-encoder's
tokenizer; `score` would then be the cosine similarity between the input and the Y-encoder embedding of the
generated text (so both decoders report comparable confidences) and `alternatives` the other beams. None is
trained for the bundled model, so none is shipped here.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from vljepa_ros.runtime.text_bank import TextBank


@dataclass(frozen=True)
class Decoded:
    """Decoder output: best text, its score (cosine similarity), and runner-ups best first.

    `margin` is the best score minus the second best; `certified_radius` the distance a unit embedding may
    move from the decoded one without changing `text` (None when the decoder cannot bound it).
    """

    text: str
    score: float
    alternatives: tuple[tuple[str, float], ...] = ()
    margin: float | None = None
    certified_radius: float | None = None


@runtime_checkable
class Decoder(Protocol):
    """Anything that turns one L2-normalised (E,) embedding into text."""

    @property
    def embedding_dim(self) -> int:
        """Dimension E of the embeddings this decoder accepts."""
        ...

    def decode(self, embedding: np.ndarray) -> Decoded:
        """Text for one (E,) embedding; raises ValueError on a wrong dimension."""
        ...


class RetrievalDecoder:
    """Nearest text in a TextBank; `alternatives` are the next best `num_alternatives` entries."""

    def __init__(self, bank: TextBank, num_alternatives: int = 2, source: str = "<memory>"):
        if isinstance(num_alternatives, bool) or not isinstance(num_alternatives, int) or num_alternatives < 0:
            raise ValueError(f"num_alternatives must be an integer >= 0, got {num_alternatives!r}")
        self._num_alternatives = num_alternatives
        self._lock = threading.Lock()
        self._bank = bank
        self._source = source

    @classmethod
    def from_file(cls, path: str | Path, num_alternatives: int = 2) -> RetrievalDecoder:
        """Decoder over a bank file (.npz with `texts` and `embeddings`)."""
        return cls(TextBank.load(path), num_alternatives, source=str(path))

    @classmethod
    def from_texts(cls, texts: Sequence[str], embeddings: np.ndarray, num_alternatives: int = 2) -> RetrievalDecoder:
        """Decoder over texts and their Y-encoder embeddings (normalised here)."""
        return cls(TextBank.from_embeddings(texts, embeddings), num_alternatives)

    @property
    def bank(self) -> TextBank:
        return self._bank

    @property
    def source(self) -> str:
        """Where the current bank came from (a path, or `<memory>`)."""
        return self._source

    @property
    def embedding_dim(self) -> int:
        return self._bank.dim

    def replace_bank(self, bank: TextBank, source: str = "<memory>") -> None:
        """Swap the candidate texts; decodes already running finish with the old bank."""
        with self._lock:
            self._bank = bank
            self._source = source

    def decode(self, embedding: np.ndarray) -> Decoded:
        """Nearest bank text to `embedding` with its cosine similarity, runner-ups, margin and certified radius."""
        with self._lock:
            bank = self._bank
        query = np.asarray(embedding, dtype=np.float32)
        if query.ndim != 1:
            raise ValueError(f"decode takes one (E,) embedding, got shape {query.shape}")
        scores = bank.similarities(query)
        order = np.argsort(-scores, kind="stable")
        best = int(order[0])
        rest = tuple((bank.texts[i], float(scores[i])) for i in order[1 : 1 + self._num_alternatives])
        margin = float(scores[best] - scores[order[1]]) if len(order) > 1 else None
        return Decoded(
            text=bank.texts[best],
            score=float(scores[best]),
            alternatives=rest,
            margin=margin,
            certified_radius=certified_radius(bank.embeddings, scores, best),
        )


# Slack on score gaps for float32 rounding of the scores and of the embedding handed to the decoder.
_SCORE_SLACK = 1e-5


def certified_radius(entries: np.ndarray, scores: np.ndarray, best: int) -> float:
    """Largest distance a unit query may move while entry `best` keeps the top score, given its `scores`.

    Entry j can only overtake `best` once the query moved by (s_best - s_j) / ||c_best - c_j||, since scores
    are dot products with unit vectors; entries equal to `best` never overtake it. inf for a one-entry bank.
    """
    apart = np.sqrt(np.maximum(2.0 - 2.0 * (entries @ entries[best]).astype(np.float64), 0.0))
    gaps = scores.astype(np.float64)[best] - scores.astype(np.float64) - _SCORE_SLACK
    others = apart > 1e-6
    others[best] = False
    if not others.any():
        return math.inf
    return float(max(np.min(gaps[others] / apart[others]), 0.0))
