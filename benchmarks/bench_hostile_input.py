"""Hostile input against the node processes, once, with the numbers (issue #18): messages sent by category,
what /diagnostics counted by reason, RSS before / peak / after of both nodes, the good camera's outputs.

Runs the rig of vljepa_ros/test/nodes/test_fuzz_hostile.py (vljepa_ros/test/support/hostile_rig.py) and writes
benchmarks/results/hostile_input.json, then prints a table (docs/robustness.md shows it).

Usage: .venv/bin/python benchmarks/bench_hostile_input.py [--scale 1] [--names 3000] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "vljepa_ros" / "test"


def _setup_environment() -> None:
    # The same transport and a private domain, as the test suite's conftest sets them.
    from vljepa_ros.nodes.dds_transport import apply_transport_defaults

    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
    apply_transport_defaults()
    sys.path.insert(0, str(TESTS))  # the rig lives with the tests' support modules


def _perception_rows(result: dict) -> list[tuple[str, str, int, int]]:
    """(camera, outcome, sent, counted on /diagnostics) for every outcome a camera's messages were built for."""
    keys = {"sampled": "frames_sampled", "subsampled": "frames_subsampled"}
    rows = []
    for camera, sent in result["sent"].items():
        counted = result["counted"][camera]
        for outcome, n in sorted(sent["by_outcome"].items()):
            rows.append((camera, outcome, n, int(counted[keys.get(outcome, outcome)])))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1, help="multiplies the perception message counts")
    parser.add_argument("--names", type=int, default=3000, help="distinct camera names flooded on the decoder")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "hostile_input.json")
    args = parser.parse_args()
    _setup_environment()

    import rclpy

    from vljepa_ros.export.model import export_tiny_random

    from support.hostile_inputs import real_png
    from support.hostile_rig import (
        DECODER_EXPIRY_S,
        DECODER_MAX_STREAMS,
        MAX_BYTES,
        MAX_PIXELS,
        run_decoder_flood,
        run_perception_fuzz,
    )

    work = Path(tempfile.mkdtemp(prefix="hostile_input_"))
    manifest = export_tiny_random(work / "tiny", seed=0)
    large_png = real_png(20_000, 20_000)
    rclpy.init()
    try:
        perception = run_perception_fuzz(str(manifest), work / "perception_node.log", large_png, args.scale)
        decoder = run_decoder_flood(work / "decoder_node.log", names=args.names)
    finally:
        rclpy.try_shutdown()

    good = [e for e in perception["embeddings"] if e.camera == "good"]
    report = {
        "perception": {
            "limits": {"max_frame_pixels": MAX_PIXELS, "max_frame_bytes": MAX_BYTES},
            "large_png_bytes": len(large_png),
            "sent": {c: {k: dict(v) for k, v in s.items()} for c, s in perception["sent"].items()},
            "counted": perception["counted"],
            "memory_mb": perception["memory_mb"],
            "good_camera_embeddings": len(good),
            "good_camera_clips_expected": perception["expected_good_clips"],
            "alive_at_end": perception["alive_at_end"],
            "returncode": perception["returncode"],
        },
        "decoder": {
            "limits": {"max_streams": DECODER_MAX_STREAMS, "stream_expiry_s": DECODER_EXPIRY_S},
            "sent": decoder["sent"],
            "counted": {
                k: decoder["counted"][k]
                for k in (
                    "embeddings_received",
                    "streams_full",
                    "streams_expired",
                    "cameras",
                    "lost_in_transport",
                    "dds_message_lost",
                    "captions_published",
                )
            },
            "most_streams_reported": decoder["most_streams_reported"],
            "good_camera_embeddings_seen": int(decoder["good_camera"]["embeddings_seen"]),
            "good_camera_captions": len(decoder["good_captions"]),
            "memory_mb": decoder["memory_mb"],
            "alive_at_end": decoder["alive_at_end"],
            "returncode": decoder["returncode"],
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")

    print("perception_node, sent by category:")
    for camera, sent in perception["sent"].items():
        print(f"  {camera}: " + ", ".join(f"{k} {n}" for k, n in sorted(sent["by_category"].items())))
    print("perception_node: camera | outcome | sent | counted")
    for camera, outcome, sent, counted in _perception_rows(perception):
        print(f"  {camera} | {outcome} | {sent} | {counted}")
    print(f"  good camera: {len(good)} embeddings, {perception['expected_good_clips']} clips expected")
    d = report["decoder"]
    print(
        f"decoder_node: sent {d['sent']}, counted {d['counted']}, most streams {d['most_streams_reported']}, "
        f"good stream {d['good_camera_embeddings_seen']} embeddings seen, {d['good_camera_captions']} captions"
    )
    for name, part in (("perception_node", report["perception"]), ("decoder_node", d)):
        m = part["memory_mb"]
        print(f"{name} RSS MiB: before {m['before_rss']:.0f}, peak {m['peak_rss']:.0f}, after {m['after_rss']:.0f}")
    print(f"wrote {args.out}")
    return 0 if perception["alive_at_end"] and decoder["alive_at_end"] else 1


if __name__ == "__main__":
    sys.exit(main())
