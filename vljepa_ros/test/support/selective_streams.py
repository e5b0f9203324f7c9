"""Synthetic embedding streams for the selective-decoding tests: piecewise-constant bank vectors + noise.

Each segment holds one caption's Y-encoder vector (from a real MiniLM bank); consecutive segments are joined
by a short blend, as a clip straddling a scene change would produce, and every embedding gets isotropic noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vljepa_ros.runtime.text_bank import TextBank

BANK_PATH = Path(__file__).parent / "data" / "caption_bank_minilm.npz"
NS = 1_000_000_000


def load_bank() -> TextBank:
    return TextBank.load(BANK_PATH)


@dataclass(frozen=True)
class SyntheticStream:
    stamps_ns: np.ndarray  # (T,) int64
    vectors: np.ndarray  # (T, E) float32, unit length
    captions: tuple[int, ...]  # bank index of each segment
    change_ns: tuple[int, ...]  # stamp at which segment i+1 starts (the blend's midpoint)

    def caption_at(self, stamp_ns: int) -> int:
        """Bank index of the segment that holds `stamp_ns`."""
        return self.captions[int(np.searchsorted(np.asarray(self.change_ns), stamp_ns, side="right"))]


def make_stream(
    bank: TextBank,
    captions: list[int],
    segment_s: list[float],
    rate_hz: float = 2.0,
    noise: float = 0.5,
    blend: int = 2,
    seed: int = 0,
    start_ns: int = 1_000 * NS,
) -> SyntheticStream:
    """Stream visiting `captions` for `segment_s` seconds each at `rate_hz`; `noise` is the per-vector noise
    norm relative to the unit signal; `blend` embeddings on each side of a change mix the two captions."""
    rng = np.random.default_rng(seed)
    dim = bank.dim
    lengths = [max(1, int(round(s * rate_hz))) for s in segment_s]
    owner = np.repeat(np.arange(len(captions)), lengths)
    total = owner.size
    stamps = start_ns + (np.arange(total) * (NS / rate_hz)).astype(np.int64)
    boundaries = np.cumsum(lengths)[:-1]
    weights = np.zeros((total, len(captions)))
    weights[np.arange(total), owner] = 1.0
    for b in boundaries:
        for k in range(-blend, blend):
            i = b + k
            if 0 <= i < total:
                alpha = (k + blend + 0.5) / (2 * blend)  # 0..1 across the blend
                weights[i] = 0.0
                weights[i, owner[b - 1]] = 1.0 - alpha
                weights[i, owner[b]] = alpha
    clean = weights @ bank.embeddings[np.asarray(captions)]
    clean /= np.linalg.norm(clean, axis=1, keepdims=True)
    noisy = clean + rng.normal(size=clean.shape) * noise / np.sqrt(dim)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    change_ns = tuple(int((stamps[b - 1] + stamps[b]) // 2) for b in boundaries)
    return SyntheticStream(stamps, noisy.astype(np.float32), tuple(captions), change_ns)
