"""Cost of the training resize on camera frames: antialiased bilinear (numpy) vs OpenCV's bilinear, per frame.

One run, side by side, alternating rep by rep so machine load hits both alike. For each camera size (640x480,
1280x720) and open-vljepa's crop (short side 256, centre crop 256), per sampled frame:
- resize + crop: `resize_and_crop` without antialiasing (OpenCV INTER_LINEAR, uint8; what every model got before
  the manifest recorded its resize) vs `resized_crop_float` with it (float, unrounded);
- the whole per-frame preparation of the float path (as PerceptionPipeline.prepare_frame): OpenCV resize + crop +
  uint8 look-up normalisation + planes vs antialiased crop + normalisation + planes;
- the uint8 crop (encoders that normalise in their graph): OpenCV vs antialiased and rounded.
Medians in milliseconds and the ratios antialiased / OpenCV.

Usage: .venv/bin/python benchmarks/bench_resize.py [--reps 200] [--out benchmarks/results/bench_resize.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from vljepa_ros.runtime.manifest import ClipSpec
from vljepa_ros.runtime.preprocessing import normalisation_constants, resize_and_crop, resized_crop_float

ROOT = Path(__file__).resolve().parents[1]
OPEN_VLJEPA_CLIP = ClipSpec(
    frames=8,
    frame_rate_hz=4.0,
    tubelet=2,
    patch=16,
    crop_size=256,
    resize_short=256,
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    resize_antialias=True,
)
CAMERAS = {"640x480": (480, 640), "1280x720": (720, 1280)}


def variants(clip: ClipSpec) -> dict[str, dict]:
    """{measure: {"opencv": fn(frame), "antialiased": fn(frame)}}, each as the runtime computes it."""
    plain = dataclasses.replace(clip, resize_antialias=False)
    scale, offset = normalisation_constants(clip)
    lut = (np.arange(256, dtype=np.float32)[:, None] * scale + offset).reshape(256, 1, 3)

    def prepare_opencv(frame):
        crop = np.ascontiguousarray(resize_and_crop(frame, plain))
        return np.ascontiguousarray(cv2.LUT(crop, lut).transpose(2, 0, 1))

    def prepare_antialiased(frame):
        return np.ascontiguousarray((resized_crop_float(frame, clip) * scale + offset).transpose(2, 0, 1))

    return {
        "resize_crop": {
            "opencv": lambda f: resize_and_crop(f, plain),
            "antialiased": lambda f: resized_crop_float(f, clip),
        },
        "float_frame_preparation": {"opencv": prepare_opencv, "antialiased": prepare_antialiased},
        "uint8_crop": {
            "opencv": lambda f: resize_and_crop(f, plain).copy(),
            "antialiased": lambda f: resize_and_crop(f, clip),
        },
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=200)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "bench_resize.json")
    args = p.parse_args(argv)
    cv2.setNumThreads(1)  # the node's camera callbacks resize on one thread
    rng = np.random.default_rng(0)
    results = {}
    for camera, shape in CAMERAS.items():
        frames = [rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for _ in range(8)]
        for measure, fns in variants(OPEN_VLJEPA_CLIP).items():
            times = {name: [] for name in fns}
            for fn in fns.values():
                fn(frames[0])  # warm
            for rep in range(args.reps):
                for name, fn in fns.items():
                    frame = frames[rep % len(frames)]
                    start = time.perf_counter()
                    fn(frame)
                    times[name].append((time.perf_counter() - start) * 1e3)
            row = {f"{name}_ms_p50": round(statistics.median(t), 3) for name, t in times.items()}
            row["ratio_antialiased_over_opencv"] = round(row["antialiased_ms_p50"] / row["opencv_ms_p50"], 2)
            results.setdefault(camera, {})[measure] = row
            print(camera, measure, row, flush=True)
    out = {
        "benchmark": "bench_resize",
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.node()}: {os.cpu_count()} CPU cores, shared with other work; one thread",
        "clip": "open-vljepa: short side 256, centre crop 256",
        "reps": args.reps,
        "per_frame": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
