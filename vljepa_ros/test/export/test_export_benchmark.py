"""benchmarks/bench_encoder.py and run_gpu.sh --smoke run end to end at the tiny size and write their JSON (no
timing asserted)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_bench_encoder_tiny_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_encoder.py"),
            "--iters",
            "2",
            "--block",
            "1",
            "--camera",
            "96x128",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["provider"] == "CPUExecutionProvider"
    assert result["encoder"]["torch_eager"]["n"] == result["encoder"]["onnxruntime"]["n"] == 2
    assert result["encoder"]["torch_over_ort"] > 0 and result["parity_max_abs_error"] < 1e-3
    assert result["fused_preprocessing"]["camera"] == [96, 128]
    assert "ORT is" in proc.stdout and "fused (uint8 graph)" in proc.stdout


@pytest.mark.slow
def test_run_gpu_script_smoke_mode_writes_its_json_on_the_cpu(tmp_path):
    """run_gpu.sh --smoke: the GPU script's full-size and bundled stages at the small size on the CPU provider,
    IO binding included (no GPU numbers; it checks the code the GPU run executes)."""
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "run_gpu.sh"), "--smoke", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    full = json.loads((tmp_path / "bench_variants_full_smoke_cpu.json").read_text())
    assert full["io_binding"] and full["provider"] == "CPUExecutionProvider"
    assert [r["batch"] for r in full["results"]] == [1, 4]
    for row in full["results"]:
        assert set(row["variants"]) == {"fp32", "optimised", "fp16", "optimised-fp16"}
        assert row["variants"]["optimised"]["embedding_max_abs_error"] <= 1e-4
        assert row["variants"]["fp16"]["embedding_min_cosine"] >= 0.999
    bundled = json.loads((tmp_path / "bench_variants_bundled_smoke_cpu.json").read_text())
    scores = {name: v["scores"]["caption_top1"] for name, v in bundled["variants"].items()}
    assert set(scores) == {"fp32", "optimised", "fp16"} and scores["optimised"] == scores["fp32"]
