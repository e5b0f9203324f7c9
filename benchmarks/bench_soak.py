"""Memory over a long run: resident set size (RSS) while 10,000 frames go through the whole core (JSON out).

Each frame takes the node's path without DDS: sensor_msgs/Image fields -> perception.image_conversion ->
PerceptionPipeline (sampling, clip buffer, batched inference with transitions) -> DecodingPipeline (change
detection, retrieval decodes), with the statistics the node's /diagnostics reads queried as often as the node would.
Frames are small and stamped like a 30 Hz camera: every frame is validated, the ones the model frame rate samples
are converted and become clips; cameras take turns and share batches. Camera clocks restart once a third of the way
in (a bag loop), exercising the reset paths.

RSS (from /proc/self/statm) and the number of live Python objects are sampled every ``--sample-every``
frames. The growth slope is a least-squares fit over the samples after the first 20% (allocator and
onnxruntime arenas settle first); a leak of one small object per frame shows up in the object count even
when the allocator hides it in RSS.

Usage: .venv/bin/python benchmarks/bench_soak.py [--frames 10000] [--manifest M] [--out soak.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """This process's resident set size."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_BYTES


def slope_per_1000(frames: list[int], values: list[float]) -> float:
    """Least-squares slope of ``values`` against ``frames``, per 1000 frames."""
    if len(frames) < 2:
        return 0.0
    return float(np.polyfit(np.asarray(frames, float), np.asarray(values, float), 1)[0] * 1000)


def _frames(cameras: int, height: int, width: int) -> list[bytes]:
    rng = np.random.default_rng(1)
    base = rng.integers(0, 200, (height, width, 3), dtype=np.uint8)
    frames = []
    for i in range(8 * cameras):  # a little motion so the change detector sees varied embeddings
        frame = base.copy()
        x = (i * 7) % (width - 16)
        frame[height // 3 : height // 3 + 16, x : x + 16] = (250, 30, 30)
        frames.append(frame.tobytes())
    return frames


def soak(
    manifest: Path,
    frames: int = 10_000,
    cameras: int = 2,
    height: int = 48,
    width: int = 64,
    camera_hz: float = 30.0,
    sample_every: int = 250,
    diagnostics_every: int = 8,
    on_sample=None,
    stamp_clock: bool = False,
) -> dict:
    """Push ``frames`` frames (over all cameras) through the core; returns samples and the state sizes seen.

    ``stamp_clock``: the statistics run on the frames' stamps instead of wall time (deterministic windows).
    """
    from vljepa_ros.decoding.change_detection import ChangeDetectorConfig
    from vljepa_ros.decoding.decoders import RetrievalDecoder
    from vljepa_ros.decoding.pipeline import DecodingPipeline, RejectedEmbedding
    from vljepa_ros.perception.config import PipelineConfig
    from vljepa_ros.perception.image_conversion import check_image, image_to_rgb
    from vljepa_ros.perception.pipeline import PerceptionPipeline

    clock = {"now": 0}
    kwargs = {"clock_ns": lambda: clock["now"]} if stamp_clock else {}
    pipeline = PerceptionPipeline.from_manifest(manifest, PipelineConfig(transition_horizon_s=2.0), **kwargs)
    decoding = DecodingPipeline(RetrievalDecoder(pipeline.runtime.load_bank("captions")), ChangeDetectorConfig())
    period_ns = int(round(1e9 / camera_hz))
    names = [f"soak{i}" for i in range(cameras)]
    payloads = _frames(cameras, height, width)
    step = width * 3
    samples = {"frame": [], "rss_mb": [], "python_objects": [], "wall_s": []}
    counts = {"embeddings": 0, "transitions": 0, "captions": 0, "rejected_by_decoder": 0}
    restart_at = frames // 3
    start = time.perf_counter()
    for i in range(frames):
        camera = names[i % cameras]
        tick = i // cameras if i < restart_at else (i - restart_at) // cameras  # the clock restarts once
        stamp = (10_000 if i < restart_at else 100) * 1_000_000_000 + tick * period_ns + i % cameras
        data = payloads[i % len(payloads)]
        clock["now"] = i * period_ns // cameras  # only read with stamp_clock: monotonic camera time
        pipeline.offer_frame(
            camera,
            camera,
            stamp,
            lambda d=data: image_to_rgb("rgb8", height, width, step, False, d),
            lambda d=data: check_image("rgb8", height, width, step, False, len(d)),
        )
        if i % cameras == cameras - 1:
            batch = pipeline.step(timeout_s=0.0)
            if batch is not None:
                counts["transitions"] += len(batch.transitions)
                for result in batch.embeddings:
                    counts["embeddings"] += 1
                    try:
                        event = decoding.feed(result.camera, result.frame_id, result.stamp_ns, result.embedding)
                    except RejectedEmbedding:  # counted by the decoding pipeline too
                        counts["rejected_by_decoder"] += 1
                        continue
                    counts["captions"] += event is not None
                for result in batch.embeddings:
                    pipeline.stats_for(result.camera).on_output(pipeline.clock_ns(), 0.0)
        if i % diagnostics_every == 0:  # what the node's /diagnostics timer reads
            now = pipeline.clock_ns()
            for name in names:
                stats = pipeline.stats_for(name)
                stats.input_rate.rate_hz(now)
                stats.output_rate.rate_hz(now)
                stats.latency.percentile(95)
            for name in decoding.cameras:
                decoding.statistics(name)
        if i % sample_every == 0 or i == frames - 1:
            gc.collect()
            samples["frame"].append(i + 1)
            samples["rss_mb"].append(rss_bytes() / 2**20)
            samples["python_objects"].append(len(gc.get_objects()))
            samples["wall_s"].append(time.perf_counter() - start)
            if on_sample is not None:
                on_sample(i + 1, samples["rss_mb"][-1])
    wall_s = time.perf_counter() - start
    return {
        "samples": samples,
        "counts": counts,
        "wall_s": wall_s,
        "state": state_sizes(pipeline, decoding),
        "provider": pipeline.runtime.provider,
        "model_id": pipeline.model_id,
    }


def state_sizes(pipeline, decoding) -> dict:
    """Lengths of every per-camera container that could grow with the stream (for the bounded-state test)."""
    sizes = {}
    for camera, buffer in pipeline._buffers.items():  # measuring internals is the point
        stats = pipeline.stats[camera]
        sizes[camera] = {
            "clip_history": len(buffer._history),
            "state_history": len(pipeline._states[camera]._entries),
            "input_rate_window": len(stats.input_rate._times),
            "output_rate_window": len(stats.output_rate._times),
            "latency_window": len(stats.latency),
        }
    sizes["queue_pending"] = pipeline.queue.pending()
    sizes["decoding_streams"] = len(decoding.cameras)
    return sizes


def summarise(result: dict, frames: int) -> dict:
    """Start/end RSS and growth slopes (after the first 20% of frames)."""
    s = result["samples"]
    settled = [k for k, f in enumerate(s["frame"]) if f >= 0.2 * frames]
    f = [s["frame"][k] for k in settled]
    rss = [s["rss_mb"][k] for k in settled]
    objects = [s["python_objects"][k] for k in settled]
    return {
        "frames": frames,
        "rss_mb_first_sample": round(s["rss_mb"][0], 2),
        "rss_mb_at_20pct": round(rss[0], 2),
        "rss_mb_end": round(rss[-1], 2),
        "rss_mb_max": round(max(s["rss_mb"]), 2),
        "rss_growth_kb_per_1000_frames": round(slope_per_1000(f, rss) * 1024, 2),
        "rss_growth_mb_over_last_80pct": round(rss[-1] - rss[0], 2),
        "python_objects_growth_per_1000_frames": round(slope_per_1000(f, objects), 2),
        "frames_per_s": round(frames / result["wall_s"], 1),
        "wall_s": round(result["wall_s"], 1),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--manifest", type=Path, help="model manifest (default: bundled, else tiny random)")
    parser.add_argument("--out", type=Path, default=Path("out/bench/soak.json"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        manifest, source = args.manifest, "given"
        if manifest is None:
            from bench_peak_rate import default_manifest

            manifest, source = default_manifest(Path(tmp))
        result = soak(
            Path(manifest),
            args.frames,
            args.cameras,
            on_sample=lambda n, mb: print(f"  {n:>6} frames  RSS {mb:8.1f} MB", flush=True),
        )
    summary = summarise(result, args.frames)
    out = {
        "model": {
            "manifest": str(manifest),
            "source": source,
            "model_id": result["model_id"],
            "provider": result["provider"],
        },
        "setup": f"{args.cameras} cameras, 64x48 rgb8 stamped at 30 Hz, sampled at the model rate, transitions "
        "and selective decoding on, one camera clock restart",
        "summary": summary,
        "counts": result["counts"],
        "state": result["state"],
        "samples": result["samples"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
