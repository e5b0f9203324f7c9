"""X-encoder latency: ONNX Runtime vs PyTorch eager on the same weights, and fused vs CPU preprocessing.

One run, side by side, alternating rep by rep so machine load hits both alike:
1. encoder only: torch eager (inference_mode) vs the exported ONNX graph on the chosen providers, same
   random clip, same thread count; medians and the torch/ORT ratio;
2. camera frames -> tokens (unless --no-fused): OpenCV preprocessing + float encoder vs uint8 frames into an
   encoder with resize/crop/normalise in the graph; preprocessing time reported separately.

Sizes: `tiny` (tests' model, 8x64x64) by default; `--vit-l` is V-JEPA 2 ViT-L at 16x256x256 (random weights,
304M parameters, ~1.7 TFLOP per clip: on a 2-core CPU use --iters 1-3).

Usage: .venv/bin/python benchmarks/bench_encoder.py [--vit-l] [--iters N] [--block K] [--providers cpu] [--fp16]
                                                   [--no-fused] [--out bench_encoder.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from vljepa_ros.export.model import clip_spec_for, export_encoder
from vljepa_ros.runtime.onnx_session import OnnxModel, SessionConfig, parse_provider_list
from vljepa_ros.runtime.preprocessing import preprocess_clip, stack_frames
from vljepa_ros.torch_models.vjepa2_encoder import VJepa2Encoder, encoder_config

MS = 1e3


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vit-l", action="store_true", help="ViT-L 16x256x256 instead of the tiny 8x64x64 encoder")
    p.add_argument("--iters", type=int, default=None, help="timed reps per variant (default: tiny 30, ViT-L 2)")
    p.add_argument("--block", type=int, default=None, help="reps per alternation block (default: tiny 10, ViT-L 1)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=0, help="intra-op threads for both (0: all cores)")
    p.add_argument("--providers", default="cpu", help="ONNX Runtime preference list, e.g. tensorrt,cuda,cpu")
    p.add_argument(
        "--fp16", action="store_true", help="fp16 ONNX graph (torch eager: fp16 autocast on cuda, fp32 on cpu)"
    )
    p.add_argument(
        "--torch-device",
        default="cpu",
        choices=("cpu", "cuda"),
        help="where torch eager runs; on cuda each call copies the clip in and the result out, "
        "as the ONNX Runtime call does",
    )
    p.add_argument("--no-fused", action="store_true", help="skip the fused-preprocessing comparison")
    p.add_argument("--camera", default="480x640", help="camera frame HxW for the preprocessing comparison")
    p.add_argument("--tolerance", type=float, default=None, help="export parity tolerance (default 1e-3, fp16 5e-2)")
    p.add_argument("--out", type=Path, default=Path("bench_encoder.json"))
    return p.parse_args(argv)


def _stats(samples_s: list[float]) -> dict:
    ms = sorted(s * MS for s in samples_s)
    return {
        "median_ms": statistics.median(ms),
        "mean_ms": statistics.fmean(ms),
        "min_ms": ms[0],
        "max_ms": ms[-1],
        "n": len(ms),
    }


def _alternate(fns: dict, iters: int, block: int) -> dict:
    """Time each callable `iters` times in alternating blocks (a x block, b x block, a x block, ...).

    Each block starts with one untimed call: thread pools of the other library still spin for a few ms
    after their last call and would be charged to this one (ONNX Runtime's spinning made torch 20x slower
    when alternated call by call on 2 cores).
    """
    samples = {name: [] for name in fns}
    while len(next(iter(samples.values()))) < iters:
        for name, fn in fns.items():
            fn()
            for _ in range(min(block, iters - len(samples[name]))):
                start = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - start)
    return {name: _stats(s) for name, s in samples.items()}


def main(argv=None) -> int:
    args = _parse(argv)
    iters = args.iters or (2 if args.vit_l else 30)
    block = args.block or (1 if args.vit_l else 10)
    threads = args.threads or os.cpu_count()
    torch.set_num_threads(threads)
    cfg = encoder_config("vit_l", num_frames=16, img_size=256) if args.vit_l else encoder_config("tiny")
    tolerance = args.tolerance or (5e-2 if args.fp16 else 1e-3)
    torch.manual_seed(0)
    encoder = VJepa2Encoder(cfg).eval()
    n_params = sum(p.numel() for p in encoder.parameters())
    providers = parse_provider_list(args.providers)
    config = SessionConfig(providers=providers, intra_op_threads=args.threads, warmup_runs=0)
    clip_spec = clip_spec_for(encoder, 4.0)
    rng = np.random.default_rng(0)
    clip = rng.standard_normal((args.batch, 3, cfg.num_frames, cfg.img_size, cfg.img_size)).astype(np.float32)
    clip_t = torch.from_numpy(clip)
    device = torch.device(args.torch_device)
    result = {
        "benchmark": "bench_encoder",
        "model": {
            "preset": "vit_l" if args.vit_l else "tiny",
            "params": n_params,
            "frames": cfg.num_frames,
            "crop": cfg.img_size,
            "tokens": cfg.num_tokens,
            "width": cfg.embed_dim,
            "depth": cfg.depth,
        },
        "batch": args.batch,
        "iters": iters,
        "block": block,
        "threads": threads,
        "fp16_onnx": args.fp16,
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "load_avg_start": os.getloadavg(),
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "onnxruntime": ort.__version__,
            "ort_available_providers": ort.get_available_providers(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        },
        "torch_device": args.torch_device,
    }
    with tempfile.TemporaryDirectory(prefix="bench_encoder_") as tmp:
        start = time.perf_counter()
        exported = export_encoder(
            encoder, Path(tmp) / "encoder.onnx", tolerance=tolerance, fp16=args.fp16, parity_batch=1
        )
        result["export_s"] = time.perf_counter() - start
        result["parity_max_abs_error"] = exported.max_abs_error
        model = OnnxModel.load(exported.spec.file, config)
        result["provider"] = model.provider

        autocast = torch.autocast("cuda", dtype=torch.float16, enabled=args.fp16 and device.type == "cuda")

        # On a GPU, torch runs a copy: the exports below trace the CPU module. On the CPU, no copy (ViT-L is 1.2 GB).
        torch_encoder = encoder if device.type == "cpu" else copy.deepcopy(encoder).to(device)

        def run_torch():
            with torch.inference_mode(), autocast:
                torch_encoder(clip_t.to(device)).float().cpu()

        def run_ort():
            model.run({"clip": clip})

        timing = _alternate({"torch_eager": run_torch, "onnxruntime": run_ort}, iters, block)
        result["encoder"] = timing
        result["encoder"]["torch_over_ort"] = timing["torch_eager"]["median_ms"] / timing["onnxruntime"]["median_ms"]
        print(
            f"encoder {result['model']['preset']} batch {args.batch}: torch eager "
            f"{timing['torch_eager']['median_ms']:.1f} ms, onnxruntime ({model.provider}) "
            f"{timing['onnxruntime']['median_ms']:.1f} ms -> ORT is {result['encoder']['torch_over_ort']:.2f}x "
            f"faster (median of {iters})"
        )

        if not args.no_fused:
            height, width = (int(v) for v in args.camera.lower().split("x"))
            fused = export_encoder(
                encoder,
                Path(tmp) / "fused.onnx",
                tolerance=tolerance,
                fp16=args.fp16,
                fused_frame_size=(height, width),
                parity_batch=1,
            )
            fused_model = OnnxModel.load(fused.spec.file, config)
            frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(cfg.num_frames)]
            batch_frames = [frames] * args.batch
            del model  # one session of each kind at a time keeps ViT-L within memory
            unfused_model = OnnxModel.load(exported.spec.file, config)

            def cpu_preprocess():
                return np.stack([preprocess_clip(f, clip_spec) for f in batch_frames])

            def stack_only():
                return np.stack([stack_frames(f, clip_spec, height, width) for f in batch_frames])

            def unfused_total():
                unfused_model.run({"clip": cpu_preprocess()})

            def fused_total():
                fused_model.run({"frames": stack_only()})

            pre = _alternate({"cpu_preprocess": cpu_preprocess, "stack_frames": stack_only}, max(iters, 10), block)
            total = _alternate({"unfused": unfused_total, "fused": fused_total}, iters, block)
            result["fused_preprocessing"] = {
                "camera": [height, width],
                "parity_max_abs_error": fused.max_abs_error,
                "host_side": pre,
                "frames_to_tokens": total,
                "unfused_over_fused": total["unfused"]["median_ms"] / total["fused"]["median_ms"],
                "host_cpu_preprocess_over_stack": pre["cpu_preprocess"]["median_ms"] / pre["stack_frames"]["median_ms"],
            }
            print(
                f"frames {height}x{width} -> tokens: unfused (OpenCV + float graph) "
                f"{total['unfused']['median_ms']:.1f} ms,"
                f" fused (uint8 graph) {total['fused']['median_ms']:.1f} ms -> ratio "
                f"{result['fused_preprocessing']['unfused_over_fused']:.2f}; host side: OpenCV preprocess "
                f"{pre['cpu_preprocess']['median_ms']:.2f} ms vs stack {pre['stack_frames']['median_ms']:.2f} ms"
            )
    result["machine"]["load_avg_end"] = os.getloadavg()
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
