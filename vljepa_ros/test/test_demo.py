"""demo: the README's run command end to end (real nodes in their own process, live replay over DDS)."""

import os
import re
import subprocess
import sys

import pytest

from perception_fixtures import tiny_random_manifest
from vljepa_ros import bag_io

pytestmark = pytest.mark.ros


def test_demo_runs_the_nodes_and_reports(tmp_path, tmp_path_factory):
    model = tiny_random_manifest(tmp_path_factory)
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    result = subprocess.run(
        [sys.executable, "-m", "vljepa_ros.demo", "--model", str(model), "--duration", "6", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=240, env=env)
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    assert "nodes up" in out and "vljepa-tiny-random" in out
    # Captions are printed as they are published, with the ground-truth comparison after the run.
    assert re.search(r"\[caption\] t=\s*[\d.]+ s  camera: \".+\"  \(first", out)
    assert "true changes vs captions" in out and "selective vs" in out

    recorded = tmp_path / "run" / "outputs_bag"
    assert f"output bag: {recorded}" in out
    embeddings = bag_io.read_messages(recorded, "/vljepa_perception/embedding")
    captions = bag_io.read_messages(recorded, "/vljepa_decoder/caption")
    printed = re.findall(r"\[caption\]", out)
    assert len(embeddings) > 0 and len(captions) == len(printed) >= 1
    frames = {f.stamp_ns for f in bag_io.read_camera_frames(tmp_path / "tiny_world_seed3_6s")}
    assert {bag_io.stamp_to_ns(m.header.stamp) for _, m in embeddings} <= frames
    assert (tmp_path / "run" / "report" / "index.html").is_file()
    assert (tmp_path / "run" / "report" / "timeline_camera.png").is_file()
