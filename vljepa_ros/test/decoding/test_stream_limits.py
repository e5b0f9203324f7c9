"""Bounded per-camera state (StreamTable), publisher sequence gaps (SequenceGapCounter) and log clipping."""

import math

import pytest

from vljepa_ros.decoding.change_detection import ChangeDetectorConfig
from vljepa_ros.decoding.config import StreamLimits, positive_finite
from vljepa_ros.decoding.decoders import RetrievalDecoder
from vljepa_ros.decoding.input_loss import SequenceGapCounter
from vljepa_ros.decoding.pipeline import DecodingPipeline
from vljepa_ros.decoding.stream_table import StreamTable
from vljepa_ros.perception.config import ConfigError

from support.selective_streams import NS, load_bank, make_stream


def table(max_streams=2, expiry_s=10.0):
    return StreamTable(StreamLimits(max_streams, expiry_s), dict)


def test_a_new_camera_is_refused_while_every_stream_is_active():
    t = table()
    assert t.touch("a", 0)[0] is not None and t.touch("b", 1 * NS)[0] is not None
    state, expired = t.touch("c", 5 * NS)
    assert state is None and expired == [] and t.refused_full == 1
    assert t.touch("a", 6 * NS)[0] is not None  # a known camera is never refused
    assert list(t) == ["a", "b"] and t.expired == 0


def test_the_least_recently_active_idle_stream_makes_room_for_a_new_one():
    t = table()
    t.touch("a", 0)
    t.touch("b", 1 * NS)
    t.touch("a", 2 * NS)  # now b is the least recently active
    state, expired = t.touch("c", 12 * NS)  # b idle 11 s, a idle 10 s (not longer than expiry)
    assert state == {} and expired == ["b"] and t.expired == 1 and t.refused_full == 0
    assert list(t) == ["a", "c"]


def test_expire_idle_drops_only_streams_idle_longer_than_the_expiry():
    t = table(max_streams=5)
    for k, camera in enumerate("abcd"):
        t.touch(camera, k * NS)
    t.get("a")["kept"] = True
    t.touch("a", 4 * NS)
    assert t.expire_idle(int(12.5 * NS)) == ["b", "c"] and t.expired == 2
    assert list(t) == ["a", "d"] and t.get("a") == {"kept": True} and t.idle_seconds("d", int(12.5 * NS)) == 9.5
    assert t.expire_idle(100 * NS) == ["d", "a"] and len(t) == 0 and t.get("a") is None


@pytest.mark.parametrize(
    "max_streams, expiry_s, named",
    [
        (0, 1.0, "max_streams"),
        (2.5, 1.0, "max_streams"),
        (True, 1.0, "max_streams"),
        (1, 0.0, "stream_expiry_s"),
        (1, math.inf, "stream_expiry_s"),
        (1, math.nan, "stream_expiry_s"),
    ],
)
def test_stream_limits_are_validated_naming_the_parameter(max_streams, expiry_s, named):
    with pytest.raises(ConfigError) as err:
        StreamLimits(max_streams, expiry_s)
    assert err.value.parameter == named


@pytest.mark.parametrize("value", [0, -1.0, math.inf, -math.inf, math.nan, True, "1"])
def test_positive_finite_refuses_non_finite_and_non_positive_values(value):
    with pytest.raises(ConfigError, match="statistics_period_s"):
        positive_finite("statistics_period_s", value)


def test_removed_stream_starts_over_with_a_first_decode():
    bank = load_bank()
    pipeline = DecodingPipeline(RetrievalDecoder(bank), ChangeDetectorConfig(window=2, settle=1))
    stream = make_stream(bank, [3], [5.0], noise=0.1, seed=1)
    events = [pipeline.feed("cam", "f", s, v) for s, v in zip(stream.stamps_ns, stream.vectors)]
    assert sum(e is not None for e in events) == 1
    pipeline.remove_stream("cam")
    pipeline.remove_stream("never-seen")
    assert pipeline.cameras == []
    events = [pipeline.feed("cam", "f", s, v) for s, v in zip(stream.stamps_ns, stream.vectors)]
    assert [e.reason.name for e in events if e is not None] == ["FIRST"]
    assert pipeline.statistics("cam").embeddings_seen == len(stream.stamps_ns)


def test_sequence_gaps_are_counted_per_publisher():
    counter = SequenceGapCounter()
    assert counter.observe(b"p1", 100) == 0  # the first sample only sets the baseline
    assert counter.observe(b"p1", 101) == 0
    assert counter.observe(b"p2", 7) == 0
    assert counter.observe(b"p1", 105) == 3
    assert counter.observe(b"p1", 103) == 0  # late or duplicate: nothing lost, baseline kept
    assert counter.observe(b"p1", 106) == 0
    assert counter.observe(b"p2", 10) == 2
    assert counter.observe(None, None) == 0 and counter.unnumbered == 1
    assert counter.lost == 5 and counter.publishers == 2


def test_the_publisher_table_is_bounded():
    counter = SequenceGapCounter(max_publishers=2)
    for publisher in (b"a", b"b", b"c"):
        counter.observe(publisher, 1)
    assert counter.publishers == 2
    assert counter.observe(b"a", 5) == 0  # forgotten: a new baseline, not a gap
    assert counter.observe(b"c", 3) == 1
