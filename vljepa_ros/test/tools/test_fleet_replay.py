"""fleet_replay on a local Ray (2 CPUs, no dashboard): many bags, one corrupt, an interrupted run resumed."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest

from vljepa_ros.bags import bag_io
from vljepa_ros.index.content_hash import bag_content_hash
from vljepa_ros.index.recording_index import RecordingIndex
from vljepa_ros.runtime.bundled_model import bundled_manifest_path
from vljepa_ros.runtime.manifest import load_manifest
from vljepa_ros.tiny_world.bag_writer import write_stream_bag
from vljepa_ros.tiny_world.stream import StreamConfig, generate_stream
from vljepa_ros.tools import fleet_replay, replay

GOOD_BAGS = 6
DURATION_S = 4.0
FPS = 8.0


def _write_bags(root: Path, seeds) -> list[str]:
    bags = []
    for seed in seeds:
        path = root / f"world_{seed}"
        config = StreamConfig(seed=seed, duration_s=DURATION_S, fps=FPS, width=96, height=72)
        write_stream_bag(generate_stream(config), path)
        bags.append(str(path))
    return bags


def _corrupt_bag(root: Path) -> str:
    """A bag folder whose metadata and storage file are garbage (as a disk error or a cut-off copy leaves)."""
    path = root / "corrupt"
    path.mkdir()
    (path / "metadata.yaml").write_text("rosbag2_bagfile_information: [")
    (path / "corrupt_0.mcap").write_bytes(b"\x89MCAP0\r\n" + bytes(64))
    return str(path)


@pytest.fixture(scope="module")
def bags(tmp_path_factory) -> list[str]:
    root = tmp_path_factory.mktemp("fleet_bags")
    good = _write_bags(root, range(100, 100 + GOOD_BAGS))
    return good[:3] + [_corrupt_bag(root)] + good[3:]


def _options(out: Path) -> fleet_replay.FleetOptions:
    args = fleet_replay.build_parser().parse_args(["--out", str(out), "--no-report", "--no-progress"])
    return fleet_replay.options_from_args(args)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, bags):
    out = tmp_path_factory.mktemp("fleet") / "out"
    summary = fleet_replay.run_fleet(bags, _options(out), workers=2, progress=False)
    return out, summary


def test_every_clip_is_indexed_once_and_the_corrupt_bag_is_reported(fleet, bags):
    out, summary = fleet
    assert summary["bags"] == len(bags) and summary["bags_replayed"] == GOOD_BAGS
    assert [f["name"] for f in summary["failures"]] == ["corrupt"] and "BagError" in summary["failures"][0]["reason"]
    # Two actors, each loaded the model once for all its bags.
    assert summary["model_loads"] == 2 and {o["worker"] for o in summary["outcomes"]} == {0, 1}
    table = RecordingIndex(out / "index").table()
    assert len(pc.unique(table["key"])) == len(table) == summary["clips"]
    for outcome in summary["outcomes"]:
        if outcome["status"] != "done":
            continue
        embeddings = bag_io.read_messages(out / "bags" / outcome["name"] / "bag", replay.TOPIC_EMBEDDING)
        rows = table.filter(pc.equal(table["bag"], outcome["name"]))
        # Every clip of the bag's output is one row, with a thumbnail, a caption and a visual state.
        assert len(rows) == len(embeddings) == outcome["clips"] > 0
        assert sorted(rows["stamp_ns"].to_pylist()) == [bag_io.stamp_to_ns(m.header.stamp) for _, m in embeddings]
        assert all(rows["thumbnail_jpeg"].to_pylist()) and all(rows["caption"].to_pylist())
        assert rows["visual_state"].null_count == 0
    assert (out / "fleet_summary.json").is_file()


def test_outputs_equal_a_plain_replay(fleet, bags, tmp_path):
    out, _ = fleet
    for bag in (bags[0], bags[-1]):
        name = Path(bag).name
        plain = tmp_path / name
        assert replay.main([bag, "--out", str(plain), "--no-report", "--quiet"]) == 0
        assert (plain / "bag/bag.mcap").read_bytes() == (out / "bags" / name / "bag/bag.mcap").read_bytes()
        ignored = ("timings", "output_bag", "report")
        fleet_summary = json.loads((out / "bags" / name / "summary.json").read_text())
        plain_summary = json.loads((plain / "summary.json").read_text())
        assert {k: v for k, v in fleet_summary.items() if k not in ignored} == {
            k: v for k, v in plain_summary.items() if k not in ignored
        }


def test_rerun_after_a_killed_driver_completes_without_duplicates(tmp_path, bags):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "vljepa_ros.tools.fleet_replay", *bags, "--out", str(out)]
    command += ["--workers", "1", "--no-report", "--no-progress"]
    # Its own session, so the Ray agents a killed driver leaves behind can be reaped with its process group.
    driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        while not list(out.glob(f"bags/*/{fleet_replay.DONE_FILE}")) and time.monotonic() < deadline:
            assert driver.poll() is None, "the driver ended before finishing a bag"
            time.sleep(0.05)
    finally:
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        time.sleep(1.0)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)
    finished = len(list(out.glob(f"bags/*/{fleet_replay.DONE_FILE}")))
    assert 1 <= finished < GOOD_BAGS, "the driver was not killed mid-way"

    summary = fleet_replay.run_fleet(bags, _options(out), workers=2, progress=False)
    assert summary["bags_skipped"] >= finished and summary["bags_skipped"] + summary["bags_replayed"] == GOOD_BAGS
    assert summary["bags_failed"] == 1
    index = RecordingIndex(out / "index")
    table = index.table(columns=["key", "bag"])
    assert len(pc.unique(table["key"])) == len(table) == summary["clips"]
    assert len(index.part_files()) == GOOD_BAGS
    # A third run finds everything done.
    again = fleet_replay.run_fleet(bags, _options(out), workers=1, progress=False)
    assert again["bags_skipped"] == GOOD_BAGS and again["bags_replayed"] == 0 and len(index) == len(table)


def test_done_marker_is_keyed_by_content_and_model(fleet, bags):
    out, _ = fleet
    done = json.loads((out / "bags" / Path(bags[0]).name / fleet_replay.DONE_FILE).read_text())
    assert done["bag_hash"] == bag_content_hash(bags[0])
    assert done["model_version"] == load_manifest(bundled_manifest_path(), check_files=False).version


def test_cli_needs_bags(tmp_path, capsys):
    assert fleet_replay.main(["--out", str(tmp_path)]) == 2
    assert "no bags" in capsys.readouterr().err
    listing = tmp_path / "bags.txt"
    listing.write_text("# fleet\n/a/bag  # first\n\n/b/bag\n")
    assert fleet_replay.read_bag_list(listing) == ["/a/bag", "/b/bag"]
    assert fleet_replay.bag_names(["/x/run", "/y/run", "/z/other"]) == ["run", "run-2", "other"]
