"""benchmarks/bench_perception.py runs end to end and writes every number it promises (no timing asserted)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from support.perception_fixtures import tiny_random_manifest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow
@pytest.mark.ros
def test_bench_perception_writes_its_json(tmp_path_factory, tmp_path):
    manifest = tiny_random_manifest(tmp_path_factory)
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "bench_perception.py"),
            "--manifest",
            str(manifest),
            "--seconds",
            "3",
            "--reps",
            "3",
            "--height",
            "120",
            "--width",
            "160",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["node"]["clips_published"] > 0 and result["node"]["frames_received_by_node"] > 0
    assert result["overhead"]["overhead_ratio_vs_bare"] is not None
    assert [r["cameras"] for r in result["throughput"]] == [1, 2, 4]
    assert all(r["batched_clips_per_s"] > 0 and r["unbatched_clips_per_s"] > 0 for r in result["throughput"])
