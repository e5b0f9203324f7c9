"""fp32 vs fp16 ONNX encoder, side by side in one process on the same weights and input (JSON out).

Both graphs come from one randomly initialised encoder (export.model.export_encoder, fp16 = fp16 weights and
compute with float32 I/O). Timings alternate in blocks, each block opened by one untimed call, so load
changes and thread-pool spin hit both alike. Reports medians, the fp16/fp32 time ratio and the largest
difference between the two graphs' tokens. On the CPU execution provider fp16 usually loses (no fp16
arithmetic, casts added); the comparison exists for GPU providers (run with --providers cuda,cpu there).

Usage: .venv/bin/python benchmarks/bench_precision.py [--preset tiny] [--iters 30] [--providers cpu] [--out f.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def alternate(fns: dict, iters: int, block: int) -> dict[str, list[float]]:
    """Seconds per call of each callable, timed in alternating blocks of ``block`` calls."""
    samples = {name: [] for name in fns}
    while min(len(s) for s in samples.values()) < iters:
        for name, fn in fns.items():
            fn()  # untimed: the other graph's threads may still be spinning
            for _ in range(min(block, iters - len(samples[name]))):
                start = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - start)
    return samples


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny", help="encoder preset (tiny: the default model's size)")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--block", type=int, default=5)
    parser.add_argument("--providers", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("out/bench/precision.json"))
    args = parser.parse_args(argv)

    import torch

    from vljepa_ros.export.model import export_encoder
    from vljepa_ros.runtime.onnx_session import OnnxModel, SessionConfig, parse_provider_list
    from vljepa_ros.torch_models.vjepa2_encoder import VJepa2Encoder, encoder_config

    torch.manual_seed(0)
    overrides = {} if args.preset == "tiny" else {"num_frames": args.frames, "img_size": args.size}
    encoder = VJepa2Encoder(encoder_config(args.preset, **overrides)).eval()
    cfg = encoder.cfg
    config = SessionConfig(providers=parse_provider_list(args.providers), warmup_runs=1)
    clip = (
        np.random.default_rng(0).standard_normal((1, 3, cfg.num_frames, cfg.img_size, cfg.img_size)).astype(np.float32)
    )
    silent = lambda _line: None  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="bench_precision_") as tmp:
        fp32 = export_encoder(encoder, Path(tmp) / "fp32.onnx", tolerance=1e-3, parity_batch=1, log=silent)
        fp16 = export_encoder(encoder, Path(tmp) / "fp16.onnx", tolerance=5e-2, fp16=True, parity_batch=1, log=silent)
        models = {"fp32": OnnxModel.load(fp32.spec.file, config), "fp16": OnnxModel.load(fp16.spec.file, config)}
        outputs = {name: m.run({"clip": clip})[0] for name, m in models.items()}
        samples = alternate(
            {name: (lambda m=m: m.run({"clip": clip})) for name, m in models.items()}, args.iters, args.block
        )
    medians = {name: statistics.median(s) * 1e3 for name, s in samples.items()}
    result = {
        "benchmark": "bench_precision",
        "model": {
            "preset": args.preset,
            "frames": cfg.num_frames,
            "crop": cfg.img_size,
            "width": cfg.embed_dim,
            "depth": cfg.depth,
        },
        "provider": models["fp32"].provider,
        "iters": args.iters,
        "block": args.block,
        "cpu_count": os.cpu_count(),
        "fp32_median_ms": medians["fp32"],
        "fp16_median_ms": medians["fp16"],
        "fp16_over_fp32_time": medians["fp16"] / medians["fp32"],
        "fp16_vs_fp32_tokens_max_abs_diff": float(np.max(np.abs(outputs["fp16"] - outputs["fp32"]))),
        "parity_vs_torch_max_abs_error": {"fp32": fp32.max_abs_error, "fp16": fp16.max_abs_error},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"{args.preset} encoder on {result['provider']}: fp32 {medians['fp32']:.2f} ms, fp16 {medians['fp16']:.2f} ms "
        f"(fp16/fp32 {result['fp16_over_fp32_time']:.2f}); tokens differ by <= "
        f"{result['fp16_vs_fp32_tokens_max_abs_diff']:.3g}"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
