"""fleet_replay on a local Ray over good, cut-short, CRC-damaged and unreadable bags: every clip of every
readable part is indexed exactly once, and each bag's status and reason are in the fleet summary."""

import json

import pyarrow.compute as pc
import pytest

from vljepa_ros.bags import bag_io
from vljepa_ros.index.recording_index import RecordingIndex
from vljepa_ros.tools import fleet_replay, replay

from support.damaged_bags import cut_copy, with_chunk_crcs, world_bag


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    root = tmp_path_factory.mktemp("damaged_fleet")
    good = world_bag(root / "good", seed=11)
    good_sqlite = world_bag(root / "good_sqlite", seed=12, storage="sqlite3")
    unreadable = root / "unreadable"
    unreadable.mkdir()
    (unreadable / "unreadable_0.mcap").write_bytes(b"\x89MCAP0\r\n" + bytes(64))
    return {
        "good": good,
        "cut_mcap": cut_copy(good, root / "cut_mcap", ".mcap", 0.6)[0],
        "cut_sqlite": cut_copy(good_sqlite, root / "cut_sqlite", ".db3", 0.6)[0],
        "crc_damaged": with_chunk_crcs(good, root / "crc_damaged", damage_chunk=1),
        "unreadable": unreadable,
    }


def _options(out):
    args = fleet_replay.build_parser().parse_args(["--out", str(out), "--no-report", "--no-progress"])
    return fleet_replay.options_from_args(args)


def test_every_readable_clip_is_indexed_once_and_every_bag_has_its_status(bags, tmp_path):
    out = tmp_path / "out"
    summary = fleet_replay.run_fleet([str(b) for b in bags.values()], _options(out), workers=2, progress=False)
    status = {o["name"]: o["status"] for o in summary["outcomes"]}
    assert status == {
        "good": "done",
        "cut_mcap": "partial",
        "cut_sqlite": "partial",
        "crc_damaged": "partial",
        "unreadable": "failed",
    }
    reasons = {p["name"]: p["reason"] for p in summary["partial"]}
    assert "cut short" in reasons["cut_mcap"] and "cut short" in reasons["cut_sqlite"]
    assert "chunk_crc_mismatch" in reasons["crc_damaged"]
    assert [f["name"] for f in summary["failures"]] == ["unreadable"] and "BagError" in summary["failures"][0]["reason"]
    assert summary["bags_partial"] == 3 and summary["bags_failed"] == 1

    table = RecordingIndex(out / "index").table()
    assert len(pc.unique(table["key"])) == len(table) == summary["clips"]
    clips = {}
    for outcome in summary["outcomes"]:
        if outcome["status"] == "failed":
            assert not (table["bag"].to_numpy(zero_copy_only=False) == outcome["name"]).any()
            continue
        embeddings = bag_io.read_messages(out / "bags" / outcome["name"] / "bag", replay.TOPIC_EMBEDDING)
        rows = table.filter(pc.equal(table["bag"], outcome["name"]))
        assert len(rows) == len(embeddings) == outcome["clips"] > 0
        assert sorted(rows["stamp_ns"].to_pylist()) == [bag_io.stamp_to_ns(m.header.stamp) for _, m in embeddings]
        clips[outcome["name"]] = outcome["clips"]
        bag_summary = json.loads((out / "bags" / outcome["name"] / "summary.json").read_text())
        assert bag_summary["input"] == outcome["input"]
    # A cut at 60% keeps about 60% of the clips; a damaged chunk loses some.
    assert clips["cut_mcap"] < clips["good"] and clips["cut_sqlite"] < clips["good"]
    assert clips["crc_damaged"] < clips["good"]

    # A rerun skips what it finished, partial bags included (the same bytes give the same result), and
    # still reports them as partial; the failed bag is tried again.
    again = fleet_replay.run_fleet([str(b) for b in bags.values()], _options(out), workers=1, progress=False)
    assert again["bags_skipped"] == 4 and again["bags_failed"] == 1 and again["bags_partial"] == 3
    assert len(RecordingIndex(out / "index")) == len(table)
