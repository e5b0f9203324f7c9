"""Decoding pipeline: per-camera streams, caption events, cost statistics, rejections, offline segments."""

import numpy as np
import pytest

from vljepa_ros.decoding.change_detection import ChangeDetectorConfig, DecodeReason, RejectedEmbedding
from vljepa_ros.decoding.decoders import RetrievalDecoder
from vljepa_ros.decoding.pipeline import DecodingPipeline, decode_segments, uniform_decode_count

from support.selective_streams import NS, load_bank, make_stream

BANK = load_bank()
FRONT = ["an empty floor", "a blue cube on the floor", "a blue cube on the floor in the dark"]
BACK = ["a red cube and a yellow cube on the floor", "a red cube and a blue ball on the floor"]


def plain_config(**kwargs) -> ChangeDetectorConfig:
    """The change detector without provisional decodes or second looks (the behaviour these tests describe)."""
    return ChangeDetectorConfig(
        **{"trigger": "change", "min_interval_s": 1.0, "provisional": False, "reconfirm_s": 0.0, **kwargs}
    )


CFG = plain_config(window=3, threshold=0.03, settle=2, min_interval_s=1.0)


def idx(text):
    return BANK.texts.index(text)


def test_two_cameras_are_decoded_independently():
    front = make_stream(BANK, [idx(t) for t in FRONT], [20.0, 15.0, 25.0], noise=0.2, seed=1)
    back = make_stream(BANK, [idx(t) for t in BACK], [30.0, 30.0], noise=0.2, seed=2, start_ns=1_000 * NS + 1)
    pipeline = DecodingPipeline(RetrievalDecoder(BANK), CFG, uniform_rate_hz=1.0)
    merged = sorted(
        [(int(s), "front", "front_optical", v) for s, v in zip(front.stamps_ns, front.vectors)]
        + [(int(s), "back", "back_optical", v) for s, v in zip(back.stamps_ns, back.vectors)],
        key=lambda item: item[0],
    )
    events = [e for s, cam, frame, v in merged if (e := pipeline.feed(cam, frame, s, v)) is not None]
    by_camera = {cam: [e for e in events if e.camera == cam] for cam in ("front", "back")}
    assert [e.text for e in by_camera["front"]] == FRONT
    assert [e.text for e in by_camera["back"]] == BACK
    assert all(e.frame_id == f"{e.camera}_optical" for e in events)
    assert [e.reason for e in by_camera["back"]] == [DecodeReason.FIRST, DecodeReason.CHANGE]
    for e in events:
        stream = front if e.camera == "front" else back
        assert e.segment_start_ns <= e.stamp_ns <= e.segment_end_ns
        assert stream.caption_at(e.stamp_ns) == idx(e.text)
        assert len(e.alternatives) == 2 and e.score > e.alternatives[0][1]
    assert pipeline.cameras == ["back", "front"]

    stats = pipeline.statistics("front")
    assert stats.embeddings_seen == len(front.stamps_ns) and stats.decodes == 3
    span = (front.stamps_ns[-1] - front.stamps_ns[0]) / NS
    assert stats.stream_seconds == pytest.approx(span)
    assert stats.uniform_decodes == uniform_decode_count(span, 1.0) == int(span) + 1
    assert stats.reduction_factor == pytest.approx(stats.uniform_decodes / 3)
    assert stats.decodes_per_minute == pytest.approx(3 * 60 / span)
    assert stats.last_stamp_ns == front.stamps_ns[-1] and stats.frame_id == "front_optical"
    pipeline.set_uniform_rate_hz(2.0)
    assert pipeline.statistics("front").uniform_decodes == uniform_decode_count(span, 2.0) == int(2 * span) + 1


def test_rejected_embeddings_are_counted_and_do_not_disturb_the_stream():
    pipeline = DecodingPipeline(RetrievalDecoder(BANK), CFG)
    vec = BANK.embeddings[idx(FRONT[1])]
    for k in range(3):
        pipeline.feed("cam", "f", (10 + k) * NS, vec)
    for stamp, bad, _reason in [
        (20 * NS, vec[:100], "dimension"),
        (20 * NS, vec * np.nan, "non_finite"),
        (23 * NS // 2, vec, "stamp_backwards"),
        (20 * NS, vec * 0, "zero_norm"),
    ]:
        with pytest.raises(RejectedEmbedding):
            pipeline.feed("cam", "f", stamp, bad)
    stats = pipeline.statistics("cam")
    assert stats.rejected == {"dimension": 1, "non_finite": 1, "stamp_backwards": 1, "zero_norm": 1}
    assert stats.embeddings_seen == 3 and stats.decodes == 1
    with pytest.raises(KeyError):
        pipeline.statistics("never_seen")


def test_reset_stream_restarts_with_a_first_decode_and_set_config_keeps_state():
    pipeline = DecodingPipeline(RetrievalDecoder(BANK), CFG)
    vec = BANK.embeddings[idx(FRONT[0])]
    reasons = [e.reason for k in range(10) if (e := pipeline.feed("cam", "f", k * NS, vec))]
    assert reasons == [DecodeReason.FIRST]
    pipeline.set_config(plain_config(window=5, threshold=0.05, settle=0))
    assert pipeline.feed("cam", "f", 10 * NS, vec) is None  # same segment, nothing new
    pipeline.reset_stream("cam")
    event = pipeline.feed("cam", "f", 11 * NS, vec)
    assert event.reason == DecodeReason.FIRST and event.num_embeddings == 1
    assert pipeline.statistics("cam").decodes == 2


def test_decoder_with_another_dimension_restarts_streams():
    pipeline = DecodingPipeline(RetrievalDecoder(BANK), CFG)
    pipeline.feed("cam", "f", 0, BANK.embeddings[0])
    small = RetrievalDecoder.from_texts(["x", "y"], np.eye(2))
    pipeline.set_decoder(small)
    with pytest.raises(RejectedEmbedding):
        pipeline.feed("cam", "f", NS, BANK.embeddings[0])
    first = [pipeline.feed("cam", "f", (2 + k) * NS, np.array([0.0, 1.0])) for k in range(3)]
    assert first[2].reason == DecodeReason.FIRST and first[2].text == "y"


def test_uniform_rate_must_be_positive():
    with pytest.raises(ValueError, match="uniform_rate_hz"):
        DecodingPipeline(RetrievalDecoder(BANK), CFG, uniform_rate_hz=0.0)


def test_offline_segments_decode_once_per_segment_at_the_middle():
    captions = [idx(t) for t in FRONT + BACK]
    stream = make_stream(BANK, captions, [10.0, 14.0, 8.0, 20.0, 12.0], noise=0.3, seed=9)
    events = decode_segments(
        "cam", "cam_optical", stream.stamps_ns, stream.vectors, RetrievalDecoder(BANK), n_segments=len(captions)
    )
    assert [e.text for e in events] == FRONT + BACK
    assert all(e.reason == DecodeReason.SEGMENT for e in events)
    assert events[0].change_score == 0.0 and all(e.change_score > 0 for e in events[1:])
    assert sum(e.num_embeddings for e in events) == len(stream.stamps_ns)
    for e in events:
        assert e.segment_start_ns <= e.stamp_ns <= e.segment_end_ns
        middle = (e.segment_start_ns + e.segment_end_ns) / 2
        assert abs(e.stamp_ns - middle) <= 0.5 * NS
    with pytest.raises(ValueError, match="stamp"):
        decode_segments("cam", "f", stream.stamps_ns[:-1], stream.vectors, RetrievalDecoder(BANK), n_segments=2)


def test_offline_segments_follow_the_observed_order_across_a_clock_jump_back():
    captions = [idx(t) for t in FRONT]
    stream = make_stream(BANK, captions, [10.0, 10.0, 10.0], noise=0.2, seed=12)
    stamps = stream.stamps_ns.copy()
    stamps[30:] -= 3_600 * NS  # the clock was reset during the third scene
    events = decode_segments("cam", "f", stamps, stream.vectors, RetrievalDecoder(BANK), n_segments=3)
    assert [e.text for e in events] == FRONT
    for e in events:
        assert e.segment_start_ns <= e.stamp_ns <= e.segment_end_ns
    assert events[2].segment_start_ns < events[0].segment_start_ns  # the earliest stamp after the reset


def test_changing_the_window_mid_stream_keeps_detecting_changes():
    captions = [idx(t) for t in FRONT]
    stream = make_stream(BANK, captions, [20.0, 15.0, 20.0], noise=0.2, seed=11)
    pipeline = DecodingPipeline(RetrievalDecoder(BANK), plain_config(window=6, threshold=0.03, settle=2))
    events = []
    for k, (stamp, vec) in enumerate(zip(stream.stamps_ns, stream.vectors)):
        if k == 50:  # inside the second segment: shrink the window, keeping the stream's state
            pipeline.set_config(plain_config(window=2, threshold=0.03, settle=2))
        if k == 90:  # grow it again
            pipeline.set_config(plain_config(window=4, threshold=0.03, settle=2))
        event = pipeline.feed("cam", "f", int(stamp), vec)
        if event is not None:
            events.append(event)
    assert [e.text for e in events] == FRONT
    assert [e.reason for e in events] == [DecodeReason.FIRST, DecodeReason.CHANGE, DecodeReason.CHANGE]


def test_a_camera_clock_restart_restarts_its_stream_and_small_steps_back_are_rejected():
    pipeline = DecodingPipeline(RetrievalDecoder(BANK), CFG)
    first = make_stream(BANK, [idx(FRONT[0]), idx(FRONT[1])], [10.0, 10.0], noise=0.2, seed=13)
    for stamp, vec in zip(first.stamps_ns, first.vectors):
        pipeline.feed("cam", "f", int(stamp), vec)
    last = int(first.stamps_ns[-1])
    with pytest.raises(RejectedEmbedding):  # half a second back: an out-of-order message
        pipeline.feed("cam", "f", last - NS // 2, first.vectors[-1])
    again = make_stream(BANK, [idx(FRONT[2])], [10.0], noise=0.2, seed=14, start_ns=5 * NS)  # clock restarted
    events = [e for s, v in zip(again.stamps_ns, again.vectors) if (e := pipeline.feed("cam", "f", int(s), v))]
    assert [(e.reason, e.text) for e in events] == [(DecodeReason.FIRST, FRONT[2])]
    stats = pipeline.statistics("cam")
    assert stats.clock_restarts == 1 and stats.rejected == {"stamp_backwards": 1}
    expected = (last - first.stamps_ns[0] + again.stamps_ns[-1] - again.stamps_ns[0]) / NS
    assert stats.stream_seconds == pytest.approx(expected)
    assert stats.embeddings_seen == len(first.stamps_ns) + len(again.stamps_ns)
