"""Decoder-side compute of selective vs uniform decoding, measured side by side in one run (JSON out).

Selective decoding runs its trigger on every embedding and decodes rarely; uniform decoding decodes
every tick. Which is cheaper depends on the decoder: this measures, on the same embedding stream,
- the detector's cost per embedding (DecodingPipeline.feed without a decode),
- the retrieval decoder's cost per decode over the caption bank,
- wall time of the whole selective pipeline vs the uniform decoder over the stream, their ratio,
- and the break-even decoder cost: a decoder slower than that per decode (e.g. a learned text decoder) makes
  selective decoding cheaper in compute, not only in decodes.

The stream is piecewise constant (bank captions held 4-12 s, blended over 1 s, isotropic noise) at 4 Hz,
unless --embeddings gives an .npz with `stamps_ns` and `vectors` (e.g. from evaluate_selective's cache).

Usage: .venv/bin/python benchmarks/bench_selective.py [--bank captions.npz] [--minutes 10] [--out bench.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from vljepa_ros.decoding.change_detection import ChangeDetectorConfig
from vljepa_ros.decoding.decoders import RetrievalDecoder
from vljepa_ros.decoding.pipeline import DecodingPipeline, uniform_decode_count
from vljepa_ros.runtime.bundled_model import bundled_manifest_path
from vljepa_ros.runtime.manifest import load_manifest
from vljepa_ros.runtime.text_bank import TextBank

NS = 1_000_000_000
FIXTURE_BANK = (
    Path(__file__).resolve().parents[1] / "vljepa_ros" / "test" / "support" / "data" / "caption_bank_minilm.npz"
)


def default_bank() -> Path:
    """The bundled model's captions bank, else the MiniLM test bank."""
    manifest = bundled_manifest_path()
    if manifest.is_file():
        banks = load_manifest(manifest, check_files=False).banks
        if "captions" in banks:
            return Path(banks["captions"])
    return FIXTURE_BANK


def synthetic_stream(bank: TextBank, minutes: float, rate_hz: float, noise: float, seed: int):
    """Piecewise-constant caption embeddings with 1 s blends and noise."""
    rng = np.random.default_rng(seed)
    count = int(minutes * 60 * rate_hz)
    owner = []
    while len(owner) < count:
        owner += [int(rng.integers(len(bank)))] * int(rng.uniform(4, 12) * rate_hz)
    owner = np.asarray(owner[:count])
    clean = bank.embeddings[owner].astype(np.float64)
    kernel = np.ones(int(rate_hz)) / int(rate_hz)
    clean = np.stack([np.convolve(clean[:, j], kernel, mode="same") for j in range(clean.shape[1])], axis=1)
    noisy = clean / np.linalg.norm(clean, axis=1, keepdims=True)
    noisy = noisy + rng.normal(size=noisy.shape) * noise / np.sqrt(noisy.shape[1])
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    stamps = (np.arange(count) * NS / rate_hz).astype(np.int64)
    return stamps, noisy.astype(np.float32)


def run_selective(decoder, config, stamps, vectors) -> tuple[float, int]:
    pipeline = DecodingPipeline(decoder, config)
    start = time.perf_counter()
    for s, v in zip(stamps, vectors):
        pipeline.feed("cam", "cam", int(s), v)
    # Decoder calls, with the CONFIRM decodes that repeated their provisional caption and were not published.
    return time.perf_counter() - start, pipeline.statistics("cam").decodes


def run_uniform(decoder, stamps, vectors, rate_hz: float) -> tuple[float, int]:
    span_s = (int(stamps[-1]) - int(stamps[0])) / NS
    ticks = [int(stamps[0]) + int(round(k * NS / rate_hz)) for k in range(uniform_decode_count(span_s, rate_hz))]
    start = time.perf_counter()
    for tick in ticks:
        decoder.decode(vectors[int(np.searchsorted(stamps, tick, side="right")) - 1])
    return time.perf_counter() - start, len(ticks)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bank", type=Path, help="caption bank .npz (default: bundled model's, else the test bank)")
    p.add_argument("--embeddings", type=Path, help=".npz with stamps_ns and vectors (default: synthetic)")
    p.add_argument("--minutes", type=float, default=10.0, help="synthetic stream length")
    p.add_argument("--rate", type=float, default=4.0, help="synthetic embedding rate (Hz)")
    p.add_argument("--noise", type=float, default=0.2)
    p.add_argument("--uniform-rate", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("bench_selective.json"))
    args = p.parse_args(argv)

    bank_path = args.bank or default_bank()
    bank = TextBank.load(bank_path)
    decoder = RetrievalDecoder(bank)
    if args.embeddings:
        with np.load(args.embeddings) as data:
            stamps, vectors = data["stamps_ns"], data["vectors"]
    else:
        stamps, vectors = synthetic_stream(bank, args.minutes, args.rate, args.noise, seed=0)
    config = ChangeDetectorConfig()
    # The shipped trigger with floors (or a threshold) that unit embeddings do not reach: its per-embedding
    # cost, nothing decoded after the first embedding.
    if config.trigger == "margin":
        never = dataclasses.replace(config, drift_floor=2.0, settle_floor=2.0)
    else:
        never = dataclasses.replace(config, threshold=2.0, reconfirm_s=0.0)

    detector_s, selective_s, uniform_s, decode_s = [], [], [], []
    for _ in range(args.repeats):  # interleaved so that load changes hit every variant alike
        t, _n = run_selective(decoder, never, stamps, vectors)
        detector_s.append(t / len(stamps))
        t, selective_decodes = run_selective(decoder, config, stamps, vectors)
        selective_s.append(t)
        t, uniform_decodes = run_uniform(decoder, stamps, vectors, args.uniform_rate)
        uniform_s.append(t)
        decode_s.append(t / uniform_decodes)
    stream_s = (int(stamps[-1]) - int(stamps[0])) / NS
    det, dec = statistics.median(detector_s), statistics.median(decode_s)
    saved_decodes_per_s = (uniform_decodes - selective_decodes) / stream_s
    embeddings_per_s = len(stamps) / stream_s
    break_even = det * embeddings_per_s / saved_decodes_per_s if saved_decodes_per_s > 0 else None
    result = {
        "machine": platform.processor() or platform.machine(),
        "bank": str(bank_path),
        "bank_size": len(bank),
        "embedding_dim": bank.dim,
        "stream_seconds": stream_s,
        "embeddings": int(len(stamps)),
        "embedding_rate_hz": embeddings_per_s,
        "config": dataclasses.asdict(config),
        "uniform_rate_hz": args.uniform_rate,
        "uniform_decodes": uniform_decodes,
        "selective_decodes": selective_decodes,
        "reduction_factor": uniform_decodes / max(selective_decodes, 1),
        "detector_us_per_embedding": det * 1e6,
        "retrieval_decode_us": dec * 1e6,
        "selective_wall_s": statistics.median(selective_s),
        "uniform_wall_s": statistics.median(uniform_s),
        "selective_over_uniform_wall": statistics.median(selective_s) / statistics.median(uniform_s),
        "break_even_decoder_us": None if break_even is None else break_even * 1e6,
        "repeats": args.repeats,
    }
    print(
        f"stream {stream_s:.0f} s, {len(stamps)} embeddings at {embeddings_per_s:.1f} Hz, bank {len(bank)} x {bank.dim}"
    )
    print(
        f"decodes: uniform {args.uniform_rate:g} Hz {uniform_decodes}, selective {selective_decodes} "
        f"({result['reduction_factor']:.2f}x fewer)"
    )
    print(
        f"detector {result['detector_us_per_embedding']:.1f} us/embedding, retrieval decode "
        f"{result['retrieval_decode_us']:.1f} us"
    )
    print(
        f"wall: selective {result['selective_wall_s'] * 1e3:.1f} ms vs uniform "
        f"{result['uniform_wall_s'] * 1e3:.1f} ms (x{result['selective_over_uniform_wall']:.2f}); "
        f"selective saves compute for decoders slower than "
        f"{result['break_even_decoder_us']:.0f} us per decode"
    )
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
