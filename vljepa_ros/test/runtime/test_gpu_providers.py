"""The GPU provider paths on a real NVIDIA GPU with the onnxruntime-gpu build.

Skipped where no GPU or no CUDA-enabled onnxruntime is installed (CI); `benchmarks/run_gpu.sh`'s machine runs
them. TensorRT is checked both ways: it runs when its libraries are installed, and otherwise the session falls
back to CUDA with the reason named in the one start-up line.
"""

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from vljepa_ros.runtime.bundled_model import bundled_manifest_path
from vljepa_ros.runtime.vljepa_runtime import VLJepaRuntime

HAS_GPU = Path("/proc/driver/nvidia").exists() or Path("/dev/nvidia0").exists()
pytestmark = pytest.mark.skipif(
    not (HAS_GPU and "CUDAExecutionProvider" in ort.get_available_providers()),
    reason="needs an NVIDIA GPU and the onnxruntime-gpu build",
)


def _clips(runtime, count):
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(runtime.manifest.clip.frames)]
    return np.stack([runtime.prepare_clip([np.roll(f, 9 * i, axis=1) for f in frames]) for i in range(count)])


def test_cuda_runs_the_bundled_model_and_matches_cpu():
    cuda = VLJepaRuntime.from_manifest(bundled_manifest_path(), providers=["cuda"])
    cpu = VLJepaRuntime.from_manifest(bundled_manifest_path(), providers=["cpu"])
    assert cuda.provider == "CUDAExecutionProvider" and cuda.encoder.io_binding
    clips = _clips(cpu, 3)
    on_gpu = cuda.predict_default(cuda.encode(clips))
    on_cpu = cpu.predict_default(cpu.encode(clips))
    assert np.abs(on_gpu - on_cpu).max() < 1e-3
    one_by_one = np.concatenate([cuda.predict_default(cuda.encode(c[None])) for c in clips])
    assert np.abs(one_by_one - on_gpu).max() < 1e-4


def test_tensorrt_first_runs_or_says_why_it_fell_back_to_cuda(caplog, tmp_path):
    caplog.set_level(logging.INFO, logger="vljepa_ros")
    runtime = VLJepaRuntime.from_manifest(bundled_manifest_path(), providers=["tensorrt", "cuda", "cpu"])
    lines = [r.getMessage() for r in caplog.records if "running on" in r.getMessage()]
    assert len(lines) == 2  # one line per graph: encoder and predictor
    if runtime.provider == "TensorrtExecutionProvider":
        assert all("(" not in line for line in lines)
    else:
        assert runtime.provider == "CUDAExecutionProvider"
        assert all("tensorrt: failed to create" in line for line in lines), lines
