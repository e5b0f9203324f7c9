"""Soak: state and memory stay bounded while frames keep coming (the core path of the node, no DDS).

The fast test checks every per-camera container against the bound its configuration implies, after enough
frames to have filled each one many times over. The slow test is the 10,000-frame soak of
benchmarks/bench_soak.py with limits on RSS and live-object growth.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from support.perception_fixtures import tiny_random_manifest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
from bench_soak import soak, summarise  # noqa: E402

CAMERA_HZ = 30.0
MODEL_HZ = 4.0  # the tiny model's clip.frame_rate_hz
CLIP_FRAMES = 8
HORIZON_S = 2.0  # bench_soak runs transitions with this horizon


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return tiny_random_manifest(tmp_path_factory)


def test_per_camera_state_is_bounded_by_configuration(manifest):
    frames, cameras = 1000, 2  # ~17 s of two 30 Hz cameras: every window below fills three times or more
    result = soak(manifest, frames=frames, cameras=cameras, sample_every=400, stamp_clock=True)
    counts, state = result["counts"], result["state"]
    assert counts["embeddings"] > 100 and counts["transitions"] > 50
    horizon_samples = int(HORIZON_S * MODEL_HZ) + 1
    # Rate windows are 5 s of arrivals (the stamp clock makes arrivals exactly the camera rate), pruned when
    # diagnostics read them: every 8 frames over all cameras in bench_soak, so up to 8 / cameras more.
    rate_window_bound = int(5.0 * CAMERA_HZ) + 1 + 8 // cameras
    for camera in ("soak0", "soak1"):
        sizes = state[camera]
        assert sizes["clip_history"] <= CLIP_FRAMES + horizon_samples + 1
        assert sizes["state_history"] <= (HORIZON_S + (CLIP_FRAMES + 2) / MODEL_HZ) * MODEL_HZ + 2
        assert sizes["input_rate_window"] <= rate_window_bound
        assert sizes["output_rate_window"] <= int(5.0 * MODEL_HZ) + 1
        assert sizes["latency_window"] <= 200
    assert state["queue_pending"] == 0 and state["decoding_streams"] == cameras


@pytest.mark.slow
def test_ten_thousand_frame_soak_keeps_memory_flat(manifest):
    frames = 10_000
    summary = summarise(soak(manifest, frames=frames), frames)
    # One leaked object per frame would add 1000 per 1000 frames; a leaked frame (64x48x3) ~9 KB per frame.
    assert summary["python_objects_growth_per_1000_frames"] < 50, summary
    assert summary["rss_growth_mb_over_last_80pct"] < 8.0, summary
