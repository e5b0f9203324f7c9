"""CPU time per clip with and without transitions, at open-vljepa's full size (random weights), side by side.

Before this change every clip past the transition horizon also encoded a transition clip and ran the predictor a
second time. Now that work runs only while `~/world_state_transition` has a subscriber
(perception/transition_policy.py). One pipeline, one model load, clips alternating between "a subscriber"
(the work every clip did before: clip + transition clip in one encoder call, two predictor calls) and "no
subscriber" (one clip, one predictor call). Each clip's look-back clip is the one before it (horizon = one
sampling period), so its state comes from history in both variants, as in a node that keeps up.

Reports per variant the process CPU time (ONNX Runtime's threads included) and wall time of the model step,
plus the encoder clips and predictor calls counted. The x-encoder and predictor are the slow test's full-size
ones; the Y-encoder, which no clip uses, is the tiny fixture's (with the real 1536-d projection), which keeps the
export within ~8 GB. The export runs in its own process (`--export-only`), so the measuring process starts
without torch's memory; minutes per clip pair on 2 cores: keep --clips small.

Usage: .venv/bin/python benchmarks/bench_transition_cost.py --export-only [--workdir DIR]
       .venv/bin/python benchmarks/bench_transition_cost.py --manifest DIR/model/manifest.yaml [--clips 2]
                                                            [--out benchmarks/results/transition_cost_full_size.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "vljepa_ros" / "test"))

from vljepa_ros.perception.config import PipelineConfig  # noqa: E402
from vljepa_ros.perception.pipeline import PerceptionPipeline  # noqa: E402
from vljepa_ros.runtime.vljepa_runtime import VLJepaRuntime  # noqa: E402

PERIOD_NS = 250_000_000  # the model's 4 Hz


def export_full_size(workdir: Path) -> Path:
    """The slow test's full-size open-vljepa (random weights), exported once into ``workdir``/model."""
    from export.test_open_vljepa_full_size import full_size_model  # the test's model, so both measure the same

    from vljepa_ros.export.open_vljepa import export_open_vljepa
    from vljepa_ros.torch_models.gemma3_text import GemmaYEncoder, gemma3_config_from_hf

    from support.open_vljepa_fixture import GEMMA_CONFIG, write_stand_in_tokenizers

    workdir.mkdir(parents=True, exist_ok=True)
    tokenizers = write_stand_in_tokenizers(workdir)
    encoder, model = full_size_model(tokenizers)
    # A tiny Y-encoder (no clip runs it) keeps the export's peak memory within what a shared machine has.
    model = dataclasses.replace(model, y_encoder=GemmaYEncoder(gemma3_config_from_hf(GEMMA_CONFIG), 1536).eval())
    gc.collect()
    manifest = export_open_vljepa(
        encoder,
        model,
        tokenizers["llama"],
        tokenizers["gemma"],
        workdir / "model",
        bank_texts={"actions": ("a person walks a dog", "a red ball rolls to the left")},
        parity_batch=1,
    )
    del encoder, model
    gc.collect()
    return Path(manifest)


class Counting:
    """The runtime with its encoder clips and predictor calls counted."""

    def __init__(self, runtime):
        self._runtime = runtime
        self.encoded_clips = 0
        self.predictor_calls = 0

    def __getattr__(self, name):
        return getattr(self._runtime, name)

    def encode(self, clips):
        self.encoded_clips += len(clips)
        return self._runtime.encode(clips)

    def predict(self, tokens, query):
        self.predictor_calls += 1
        return self._runtime.predict(tokens, query)


def write_result(args: argparse.Namespace, provider: str, rows: dict) -> dict:
    """The JSON result of the pairs measured so far, written to ``args.out``."""

    def mean(variant, key):
        return round(float(np.mean([r[key] for r in rows[variant]])), 4)

    summary = {
        variant: {"cpu_s_per_clip": mean(variant, "cpu_s"), "wall_s_per_clip": mean(variant, "wall_s")}
        for variant in rows
    }
    result = {
        "benchmark": "transition_cost_full_size",
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.node()}: {os.cpu_count()} CPU cores, shared with other work (load varies)",
        "model": "the tests' tiny random model (8x64x64 clips, 384-d)"
        if args.tiny
        else "open-vljepa full size, random weights (ViT-L 8x256 x-encoder, 8 Llama-3.2-1B layers, 64-token queries)",
        "provider": provider,
        "intra_op_threads": "ONNX Runtime default (all cores)",
        "clips_per_variant": len(rows["no_subscriber"]),
        "per_clip": summary,
        "cpu_ratio_subscriber_over_no_subscriber": round(
            summary["subscriber"]["cpu_s_per_clip"] / summary["no_subscriber"]["cpu_s_per_clip"], 2
        ),
        "rows": rows,
        "note": "subscriber = the work every clip did before this change (transition clip + second predictor call)",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--manifest", type=Path, help="an exported full-size model (default: export one into --workdir)")
    p.add_argument("--export-only", action="store_true", help="export into --workdir and exit")
    p.add_argument("--tiny", action="store_true", help="the tests' tiny random model instead (seconds, not minutes)")
    p.add_argument("--workdir", type=Path, default=Path("out/bench_transition_cost"))
    p.add_argument("--clips", type=int, default=2, help="timed clips per variant")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "transition_cost_full_size.json")
    args = p.parse_args(argv)

    if args.tiny:
        from vljepa_ros.export.model import export_tiny_random

        args.manifest = export_tiny_random(args.workdir / "tiny", seed=0)
    if args.export_only or args.manifest is None:
        start = time.perf_counter()
        manifest = export_full_size(args.workdir)
        print(f"exported {manifest} in {time.perf_counter() - start:.0f} s", flush=True)
        if args.export_only:
            return 0
    manifest = args.manifest or manifest
    runtime = Counting(VLJepaRuntime.from_manifest(manifest, providers=("cpu",), warmup_runs=0, intra_op_threads=0))
    subscribed = {"now": True}
    pipeline = PerceptionPipeline(
        runtime,
        PipelineConfig(transition_horizon_s=PERIOD_NS / 1e9, queue_depth=100, publish_visual_state=False),
        transition_readers=lambda: subscribed["now"],
    )
    frames = np.random.default_rng(0).integers(0, 256, (8 + 2 * args.clips + 2, 480, 640, 3), dtype=np.uint8)
    stamp = 0

    def next_clip():
        nonlocal stamp
        while True:
            verdict = pipeline.offer_frame("front", "front_optical", stamp, frames[(stamp // PERIOD_NS) % len(frames)])
            stamp += PERIOD_NS
            if verdict == "queued":
                return

    next_clip()
    pipeline.step()  # the first clip has no look-back clip; it warms the sessions up
    rows = {"subscriber": [], "no_subscriber": []}
    for i in range(2 * args.clips):
        variant = "subscriber" if i % 2 == 0 else "no_subscriber"  # alternating: load changes hit both alike
        subscribed["now"] = variant == "subscriber"
        next_clip()
        clips, calls = runtime.encoded_clips, runtime.predictor_calls
        cpu, wall = time.process_time(), time.perf_counter()
        batch = pipeline.step()
        rows[variant].append(
            {
                "cpu_s": round(time.process_time() - cpu, 4),
                "wall_s": round(time.perf_counter() - wall, 4),
                "encoder_clips": runtime.encoded_clips - clips,
                "predictor_calls": runtime.predictor_calls - calls,
                "transitions": len(batch.transitions),
            }
        )
        print(variant, rows[variant][-1], flush=True)
        if variant == "no_subscriber":  # after each pair, so a run cut short (OOM on a shared machine) keeps its pairs
            result = write_result(args, runtime.provider, rows)
    print(json.dumps(result["per_clip"]), "ratio", result["cpu_ratio_subscriber_over_no_subscriber"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
