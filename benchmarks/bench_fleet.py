"""Fleet replay and recording search: retrieval quality, clips/s with 1 vs 2 Ray workers, search latency.

Held-out tiny-world seeds are written as bags and replayed by fleet_replay with 1 and then 2 workers (same
bags, separate outputs). Retrieval: every distinct true caption is a text query; a hit at k is a result among
the top k whose clip (a moment's middle clip) lies in a ground-truth segment with that caption, for search by
moment (search_recordings' default) and by single clip (--clips). Search latency is measured over an index of
synthetic rows (flat numpy vs the FAISS IVF index, and the moment search).

--seed picks the first seed: keep the default (held out) for reported numbers and tune on others, e.g. 80000.

Usage: .venv/bin/python benchmarks/bench_fleet.py [--bags 8] [--duration 20] [--rows 100000] [--seed 90000]
       [--out fleet.json] [--retrieval-only]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from vljepa_ros.index.moment_search import MomentSearcher
from vljepa_ros.index.query_encoding import QueryEncoder
from vljepa_ros.index.recording_index import RecordingIndex
from vljepa_ros.index.schema import SCHEMA, clip_key
from vljepa_ros.index.search import ClipSearcher
from vljepa_ros.runtime.bundled_model import bundled_manifest_path
from vljepa_ros.tiny_world.bag_writer import read_ground_truth, write_stream_bag
from vljepa_ros.tiny_world.stream import StreamConfig, generate_stream
from vljepa_ros.tools import fleet_replay

HELD_OUT_SEED = 90_000  # far from the seeds the tiny-world model was trained and evaluated on
ROWS_PER_PART = 10_000


def write_bags(root: Path, count: int, duration_s: float, first_seed: int = HELD_OUT_SEED) -> list[str]:
    """`count` tiny-world bags of `duration_s` seconds, seeds from `first_seed` on."""
    bags = []
    for i in range(count):
        path = root / f"world_{first_seed + i}"
        write_stream_bag(generate_stream(StreamConfig(seed=first_seed + i, duration_s=duration_s)), path)
        bags.append(str(path))
    return bags


def replay_with(bags: list[str], out: Path, workers: int) -> dict:
    """fleet_replay of `bags` into `out` with `workers` actors; its summary."""
    args = fleet_replay.build_parser().parse_args(["--out", str(out), "--no-report", "--no-progress"])
    return fleet_replay.run_fleet(bags, fleet_replay.options_from_args(args), workers=workers, progress=False)


def recall(searcher, queries: dict, correct) -> dict:
    """R@1 and R@5 of `searcher` over `queries` (caption -> query vector); `correct(hit, caption)` judges a hit."""
    at1 = at5 = 0
    for caption, vector in queries.items():
        hits = searcher.search(vector, top_k=5)
        at1 += correct(hits[0], caption)
        at5 += any(correct(h, caption) for h in hits)
    return {"r_at_1": at1 / len(queries), "r_at_5": at5 / len(queries)}


def retrieval(index_dir: Path, bags: list[str]) -> dict:
    """R@1 and R@5 of text queries (each distinct true caption) against the ground-truth segments."""
    clips = ClipSearcher.load(RecordingIndex(index_dir))
    moments = MomentSearcher(clips)
    encoder = QueryEncoder.from_manifest(bundled_manifest_path())
    truth = {Path(b).name: read_ground_truth(b)["segments"] for b in bags}
    captions = sorted({s["caption"] for segments in truth.values() for s in segments})
    queries = {caption: encoder.encode(caption).vector for caption in captions}

    def correct(hit, caption: str) -> bool:
        return any(s["caption"] == caption and s["start_ns"] <= hit.stamp_ns <= s["end_ns"] for s in truth[hit.bag])

    by_moment = recall(moments, queries, correct)
    by_clip = recall(clips, queries, correct)
    return {
        "queries": len(queries),
        "clips": len(clips),
        "moments": len(moments),
        **by_moment,
        "by_clip": by_clip,
    }


def synthetic_index(root: Path, rows: int, dim: int, seed: int = 0) -> RecordingIndex:
    """An index of `rows` random clips (clustered, as real embeddings are) in parts of ROWS_PER_PART."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((256, dim)).astype(np.float32)
    index = RecordingIndex(root)
    for part in range(0, rows, ROWS_PER_PART):
        count = min(ROWS_PER_PART, rows - part)
        vectors = centres[rng.integers(0, 256, count)] + 0.3 * rng.standard_normal((count, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        bag_hash = f"synthetic{part:08d}"
        stamps = np.arange(count, dtype=np.int64) * 250_000_000
        columns = {
            "key": [clip_key(bag_hash, "camera", s, "v") for s in stamps],
            "bag": [bag_hash] * count,
            "bag_path": [f"/bags/{bag_hash}"] * count,
            "bag_hash": [bag_hash] * count,
            "camera": ["camera"] * count,
            "topic": ["/camera/image_raw"] * count,
            "stamp_ns": stamps,
            "t_s": stamps / 1e9,
            "model_id": ["synthetic"] * count,
            "model_version": ["v"] * count,
            "query": [""] * count,
            "embedding": list(vectors),
            "visual_state": [None] * count,
            "caption": [""] * count,
            "segment_start_ns": [None] * count,  # moments come from the embeddings alone
            "segment_end_ns": [None] * count,
            "thumbnail_jpeg": [None] * count,
        }
        index.add_bag(pa.table(columns, schema=SCHEMA), bag_hash, "v")
    return index


def search_latency(root: Path, rows: int, dim: int, queries: int = 50) -> dict:
    """Median flat, ANN and moment search latency over `rows` synthetic rows; the ANN's recall@10 against flat."""
    index = synthetic_index(root, rows, dim)
    start = time.perf_counter()
    searcher = ClipSearcher.load(index)
    load_s = time.perf_counter() - start
    rng = np.random.default_rng(1)
    picks = rng.integers(0, rows, queries)
    flat_ms, flat_keys = [], []
    for row in picks:
        start = time.perf_counter()
        hits = searcher.search(searcher.vectors[row], 10)
        flat_ms.append(1e3 * (time.perf_counter() - start))
        flat_keys.append({h.key for h in hits})
    start = time.perf_counter()
    ann = searcher.build_ann()
    build_s = time.perf_counter() - start
    ann_ms, overlap = [], []
    for row, keys in zip(picks, flat_keys):
        start = time.perf_counter()
        hits = searcher.search(searcher.vectors[row], 10, use_ann=True)
        ann_ms.append(1e3 * (time.perf_counter() - start))
        overlap.append(len(keys & {h.key for h in hits}) / 10)
    start = time.perf_counter()
    moments = MomentSearcher(searcher)
    moments_s = time.perf_counter() - start
    moment_ms = []
    for row in picks:
        start = time.perf_counter()
        moments.search(searcher.vectors[row], 10)
        moment_ms.append(1e3 * (time.perf_counter() - start))
    return {
        "rows": rows,
        "dim": dim,
        "load_s": round(load_s, 3),
        "flat_ms_p50": round(statistics.median(flat_ms), 3),
        "ann_build_s": round(build_s, 3),
        "ann_nlist": ann.nlist,
        "ann_nprobe": int(ann.index.nprobe),
        "ann_ms_p50": round(statistics.median(ann_ms), 3),
        "ann_recall_at_10": round(float(np.mean(overlap)), 4),
        "moments": len(moments),
        "moments_build_s": round(moments_s, 3),
        "moment_ms_p50": round(statistics.median(moment_ms), 3),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bags", type=int, default=8)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per bag")
    parser.add_argument("--rows", type=int, default=100_000, help="synthetic index rows for search latency")
    parser.add_argument("--seed", type=int, default=HELD_OUT_SEED, help="first tiny-world seed (tune on others)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bench_fleet.json"))
    parser.add_argument("--retrieval-only", action="store_true", help="one 1-worker replay, print R@k, write nothing")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_fleet_") as tmp:
        root = Path(tmp)
        bags = write_bags(root / "bags", args.bags, args.duration, args.seed)
        if args.retrieval_only:
            replay_with(bags, root / "one", workers=1)
            print(json.dumps(retrieval(root / "one" / "index", bags), indent=2))
            return 0
        one = replay_with(bags, root / "one", workers=1)
        two = replay_with(bags, root / "two", workers=2)
        quality = retrieval(root / "two" / "index", bags)
        dim = len(ClipSearcher.load(RecordingIndex(root / "two" / "index")).vectors[0])
        latency = search_latency(root / "synthetic", args.rows, dim)
    clip_s = {"1": one["clips_per_s"], "2": two["clips_per_s"]}
    result = {
        "bags": args.bags,
        "first_seed": args.seed,
        "seconds_per_bag": args.duration,
        "clips": two["clips"],
        "clips_per_s": clip_s,
        "speedup_2_vs_1": round(clip_s["2"] / clip_s["1"], 3),
        "per_worker_clips_per_s": {"1": one["workers"], "2": two["workers"]},
        "seconds_per_clip_one_worker": round(1 / clip_s["1"], 5),
        "retrieval": quality,
        "search": latency,
        "search_ann_speedup": round(latency["flat_ms_p50"] / latency["ann_ms_p50"], 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(
        f"bench_fleet: by moment R@1 {quality['r_at_1']:.3f}, R@5 {quality['r_at_5']:.3f} (by clip "
        f"{quality['by_clip']['r_at_1']:.3f}, {quality['by_clip']['r_at_5']:.3f}) over {quality['queries']} queries; "
        f"2 workers {result['speedup_2_vs_1']}x the clips/s of 1; ANN search {result['search_ann_speedup']}x "
        f"faster than flat over {latency['rows']} rows (recall@10 {latency['ann_recall_at_10']})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
