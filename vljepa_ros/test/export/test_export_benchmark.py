"""benchmarks/bench_encoder.py runs end to end at the tiny size and writes its JSON (no timing asserted)."""

import json
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
