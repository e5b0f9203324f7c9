"""Cut-short and damaged bags: every complete message before the cut is read, and the reader says where it
stopped; an MCAP chunk failing its CRC is skipped and its messages counted as lost; whole bags read as before."""

import numpy as np
import pytest

from vljepa_ros.bags import bag_io
from vljepa_ros.bags.mcap_stream import LOST_CRC, McapStream
from vljepa_ros.tiny_world.bag_writer import IMAGE_TOPIC

from support.damaged_bags import chunks, cut_copy, storage_file, with_chunk_crcs, world_bag


@pytest.fixture(scope="module")
def mcap_bag(tmp_path_factory):
    return world_bag(tmp_path_factory.mktemp("mcap") / "bag")


@pytest.fixture(scope="module")
def sqlite_bag(tmp_path_factory):
    return world_bag(tmp_path_factory.mktemp("sqlite") / "bag", storage="sqlite3")


def _read(bag):
    report = bag_io.BagReadReport()
    return list(bag_io.read_camera_frames(bag, report=report)), report


def test_a_whole_bag_reads_complete(mcap_bag):
    frames, report = _read(mcap_bag)
    assert report.complete and report.problem == "" and report.lost == {}
    assert report.messages_read == len(frames) == 64 and len(chunks(storage_file(mcap_bag, ".mcap").read_bytes())) >= 3
    assert [f.stamp_ns for f in frames] == sorted(f.stamp_ns for f in frames)


@pytest.mark.parametrize("fraction", [0.6, 0.33, 0.97])
def test_mcap_cut_short_yields_every_complete_message_before_the_cut(mcap_bag, tmp_path, fraction):
    whole, _ = _read(mcap_bag)
    data = storage_file(mcap_bag, ".mcap").read_bytes()
    cut_bag, cut = cut_copy(mcap_bag, tmp_path / "cut", ".mcap", fraction)
    # Found independently of the reader: a frame is complete when its CDR bytes end before the cut.
    expected = [f for f in whole if data.find(f.raw) + len(f.raw) <= cut]
    assert 0 < len(expected) < len(whole)
    frames, report = _read(cut_bag)
    assert [f.stamp_ns for f in frames] == [f.stamp_ns for f in expected]
    assert [f.raw for f in frames] == [f.raw for f in expected]
    assert not report.complete and ("cut short" in report.problem or "ends" in report.problem)
    assert report.messages_read == len(expected) and report.last_stamp_ns == expected[-1].stamp_ns
    # The topics of a cut-short bag (rosbags refuses it: no footer) come from its records.
    assert bag_io.camera_topics(cut_bag) == [IMAGE_TOPIC]


def test_a_chunk_failing_its_crc_is_skipped_and_its_messages_counted_lost(mcap_bag, tmp_path):
    whole, _ = _read(mcap_bag)
    intact = with_chunk_crcs(mcap_bag, tmp_path / "crc")
    frames, report = _read(intact)
    assert report.complete and report.lost == {} and [f.raw for f in frames] == [f.raw for f in whole]

    damaged = with_chunk_crcs(mcap_bag, tmp_path / "damaged", damage_chunk=1)
    stream = McapStream(storage_file(damaged, ".mcap"))
    kept = list(stream.messages())
    frames, report = _read(damaged)
    lost = report.lost[LOST_CRC]
    assert stream.account.chunks_skipped == {LOST_CRC: 1} and stream.account.lost == {LOST_CRC: lost}
    # Every message of the bag is either read or counted lost (camera frames and ground-truth captions alike).
    whole_stream = McapStream(storage_file(intact, ".mcap"))
    assert len(kept) + lost == len(list(whole_stream.messages()))
    assert 0 < len(frames) < len(whole) and {f.raw for f in frames} < {f.raw for f in whole}
    assert report.complete  # the file is whole; a chunk inside it was not


def test_sqlite_cut_short_yields_what_the_database_still_holds(sqlite_bag, tmp_path):
    whole, report = _read(sqlite_bag)
    assert report.complete and len(whole) == 64
    cut_bag, _ = cut_copy(sqlite_bag, tmp_path / "cut", ".db3", 0.6)
    frames, report = _read(cut_bag)
    assert not report.complete and "header declares" in report.problem
    assert 0 < len(frames) < len(whole)
    # What was read is the start of the recording, byte for byte.
    assert [f.raw for f in frames] == [f.raw for f in whole[: len(frames)]]
    assert report.last_stamp_ns == frames[-1].stamp_ns


def test_a_file_that_is_not_a_bag_is_still_refused(tmp_path):
    bag = tmp_path / "junk"
    bag.mkdir()
    (bag / "junk_0.mcap").write_bytes(b"\x89MCAP0\r\n" + bytes(64))
    with pytest.raises(bag_io.BagError):
        _read(bag)


def test_a_record_that_is_not_its_type_is_counted_and_reading_goes_on(tmp_path):
    store = bag_io.make_typestore()
    good = bag_io.make_image_message(store, np.zeros((4, 6, 3), np.uint8), 1_000, "cam")
    with bag_io.BagWriter(tmp_path / "bag", typestore=store) as writer:
        writer.write(IMAGE_TOPIC, bag_io.IMAGE_TYPE, 1_000, message=good)
        writer.write(IMAGE_TOPIC, bag_io.IMAGE_TYPE, 2_000, raw=b"\x00\x01\x00\x00not an image")
        writer.write(IMAGE_TOPIC, bag_io.IMAGE_TYPE, 3_000, message=good)
    frames, report = _read(tmp_path / "bag")
    assert len(frames) == 2 and report.lost == {bag_io.LOST_UNDESERIALIZABLE: 1} and report.complete
