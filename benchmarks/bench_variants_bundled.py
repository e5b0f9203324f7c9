"""The bundled tiny-world model's graph variants: accuracy on held-out labelled clips against fp32, and time per
clip side by side (JSON).

Each variant (`export.variants.write_variant`, parity-checked) runs `evaluate_tiny`'s held-out evaluation
(`training.evaluate.model_scores`: caption top-1 over the caption bank; action retrieval R@1 over the action bank,
and the WorldPrediction-style 4-way accuracy) on the same clips as fp32; then one clip at a time through
encoder + predictor (`runtime.embed`), variants alternated in blocks, for the time per clip.

    .venv/bin/python benchmarks/bench_variants_bundled.py --kinds optimised,fp16,int8 --out f.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import onnxruntime as ort

from vljepa_ros.export.variants import write_variant
from vljepa_ros.runtime.bundled_model import bundled_manifest_path
from vljepa_ros.runtime.onnx_session import parse_provider_list
from vljepa_ros.runtime.vljepa_runtime import VLJepaRuntime
from vljepa_ros.training.evaluate import generate_eval_set, model_scores


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kinds", default="optimised,fp16,int8")
    p.add_argument("--providers", default="cpu")
    p.add_argument("--seed", type=int, default=777, help="held-out clips' seed (evaluate_tiny's default)")
    p.add_argument("--scenes", type=int, default=200)
    p.add_argument("--transitions", type=int, default=200)
    p.add_argument("--iters", type=int, default=60, help="timed clips per variant")
    p.add_argument("--block", type=int, default=10)
    p.add_argument("--out", type=Path, default=Path("out/bench/variants_bundled.json"))
    args = p.parse_args(argv)
    providers = parse_provider_list(args.providers)
    source = bundled_manifest_path()
    with tempfile.TemporaryDirectory(prefix="bench_variants_bundled_") as tmp:
        manifests = {"fp32": source}
        for kind in [k for k in args.kinds.split(",") if k]:
            manifests[kind] = write_variant(source, Path(tmp) / kind, kind, clips=8)
        runtimes = {
            name: VLJepaRuntime.from_manifest(path, providers=providers, warmup_runs=1)
            for name, path in manifests.items()
        }
        data = generate_eval_set(args.seed, args.scenes, args.transitions, runtimes["fp32"].manifest.clip)
        rows = {}
        for name, runtime in runtimes.items():
            rows[name] = {"scores": model_scores(runtime, data), "precision": runtime.manifest.precision}
            if runtime.manifest.variant is not None:
                rows[name]["parity"] = dict(runtime.manifest.variant.parity)
                rows[name]["steps"] = dict(runtime.manifest.variant.steps)
            print(name, rows[name], flush=True)
        clip = runtimes["fp32"].prepare_clip(data.scene_frames[0])[None]
        samples = {name: [] for name in runtimes}
        while min(len(s) for s in samples.values()) < args.iters:
            for name, runtime in runtimes.items():
                runtime.embed(clip, "describe the scene")  # untimed: the previous variant's threads settle
                for _ in range(args.block):
                    start = time.perf_counter()
                    runtime.embed(clip, "describe the scene")
                    samples[name].append(time.perf_counter() - start)
        for name in runtimes:
            rows[name]["ms_per_clip_p50"] = statistics.median(samples[name]) * 1e3
            rows[name]["time_ratio_to_fp32"] = statistics.median(samples[name]) / statistics.median(samples["fp32"])
        provider = runtimes["fp32"].provider
    result = {
        "benchmark": "bench_variants_bundled",
        "model_id": runtimes["fp32"].manifest.model_id,
        "model_version": runtimes["fp32"].manifest.version,
        "held_out": {"seed": args.seed, "scenes": args.scenes, "transitions": args.transitions},
        "provider": provider,
        "iters": args.iters,
        "variants": rows,
        "machine": {"cpu_count": os.cpu_count(), "load_avg_end": os.getloadavg(), "onnxruntime": ort.__version__},
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=float))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
