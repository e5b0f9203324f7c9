"""Online change detector: validation, static streams, one decode per change, settle, transients, heartbeat."""

import numpy as np
import pytest

from vljepa_ros.decoding.change_detection import (
    ChangeDetector,
    ChangeDetectorConfig,
    DecodeReason,
    RejectedEmbedding,
)

from support.selective_streams import NS, load_bank, make_stream

BANK = load_bank()
# A walk through captions where each step changes one thing (as a tiny-world action does).
WALK = [
    "an empty floor",
    "a blue cube on the floor",
    "a blue cube on the floor in the dark",
    "an empty floor in the dark",
]


def plain_config(**kwargs) -> ChangeDetectorConfig:
    """The detector without provisional decodes or second looks (the behaviour these tests describe)."""
    return ChangeDetectorConfig(**{"provisional": False, "reconfirm_s": 0.0, **kwargs})


def idx(text):
    return BANK.texts.index(text)


def run(detector, stream):
    requests = []
    for stamp, vec in zip(stream.stamps_ns, stream.vectors):
        req = detector.update(int(stamp), vec)
        if req is not None:
            requests.append(req)
    return requests


@pytest.mark.parametrize(
    "field, value",
    [
        ("window", 0),
        ("window", 2.5),
        ("window", True),
        ("threshold", 0.0),
        ("threshold", 2.5),
        ("threshold", float("nan")),
        ("rearm_fraction", 0.0),
        ("rearm_fraction", 1.5),
        ("settle", -1),
        ("min_interval_s", -1.0),
        ("max_interval_s", float("inf")),
        ("max_interval_s", 0.5),
    ],
)
def test_config_rejects_bad_values_naming_the_parameter(field, value):
    kwargs = {field: value}
    if field == "max_interval_s" and value == 0.5:
        kwargs["min_interval_s"] = 1.0
    with pytest.raises(ValueError, match=field):
        ChangeDetectorConfig(**kwargs)


def test_static_stream_decodes_once():
    stream = make_stream(BANK, [idx("a blue cube on the floor")], [120.0], noise=0.2, seed=3)
    requests = run(ChangeDetector(plain_config(window=3, threshold=0.03, settle=2)), stream)
    assert [r.reason for r in requests] == [DecodeReason.FIRST]
    first = requests[0]
    # The first decode waits for `settle` more embeddings and averages all three.
    assert first.num_embeddings == 3
    assert first.stamp_ns == stream.stamps_ns[2]
    assert first.segment_start_ns == stream.stamps_ns[0]


def test_each_change_is_decoded_once_inside_its_segment_with_the_right_caption():
    captions = [idx(t) for t in WALK]
    stream = make_stream(BANK, captions, [15.0, 12.0, 10.0, 14.0], noise=0.2, seed=1)
    cfg = plain_config(window=3, threshold=0.03, settle=2, min_interval_s=1.0)
    requests = run(ChangeDetector(cfg), stream)
    assert [r.reason for r in requests] == [DecodeReason.FIRST] + [DecodeReason.CHANGE] * 3
    for k, req in enumerate(requests):
        assert req.segment_start_ns <= req.stamp_ns <= req.segment_end_ns
        assert stream.caption_at(req.stamp_ns) == captions[k]
        assert BANK.top_k(req.vector, 1)[0][0] == WALK[k]
        assert abs(np.linalg.norm(req.vector) - 1.0) < 1e-5
        if k:
            # The detected change point is near the true change (within the blend), the decode follows quickly.
            assert abs(req.change_ns - stream.change_ns[k - 1]) <= 2 * NS
            assert req.change_ns <= req.segment_start_ns
            assert 0 < req.stamp_ns - stream.change_ns[k - 1] <= 4 * NS
            assert req.change_score >= cfg.threshold


def test_segment_average_decodes_right_where_single_embeddings_do_not():
    # Noise large enough that single embeddings often retrieve the colour-swapped neighbour (cosine 0.997).
    text = "a red cube and a green cone on the floor in the dark"
    stream = make_stream(BANK, [idx(text)], [60.0], noise=1.0, seed=5)
    single_ok = np.mean([BANK.top_k(v, 1)[0][0] == text for v in stream.vectors])
    cfg = plain_config(window=4, threshold=0.5, settle=6, min_interval_s=1.0, max_interval_s=10.0)
    requests = run(ChangeDetector(cfg), stream)
    assert single_ok < 0.85
    assert len(requests) == 6
    assert all(BANK.top_k(r.vector, 1)[0][0] == text for r in requests)


def test_transient_blip_is_merged_back_without_a_decode():
    a, b = idx("a blue cube on the floor"), idx("an empty floor in the dark")
    stream = make_stream(BANK, [a, b, a], [20.0, 1.0, 20.0], noise=0.1, blend=0, seed=2)
    detector = ChangeDetector(plain_config(window=1, threshold=0.05, settle=4, min_interval_s=0.0))
    requests = run(detector, stream)
    assert [r.reason for r in requests] == [DecodeReason.FIRST]
    assert detector.transients == 1
    # Without a settle period the same blip is decoded (and then the return to `a` as well).
    eager = run(ChangeDetector(plain_config(window=1, threshold=0.05, settle=0, min_interval_s=0.0)), stream)
    assert [r.reason for r in eager] == [DecodeReason.FIRST, DecodeReason.CHANGE, DecodeReason.CHANGE]


def test_min_interval_delays_a_change_decode_but_does_not_lose_it():
    captions = [idx(t) for t in WALK[:3]]
    stream = make_stream(BANK, captions, [10.0, 3.0, 10.0], noise=0.1, blend=1, seed=4)
    requests = run(ChangeDetector(plain_config(window=2, threshold=0.03, settle=1, min_interval_s=5.0)), stream)
    change_times = [r.stamp_ns for r in requests if r.reason == DecodeReason.CHANGE]
    assert len(change_times) == 2
    assert change_times[1] - change_times[0] >= 5 * NS
    assert BANK.top_k(requests[-1].vector, 1)[0][0] == WALK[2]


def test_heartbeat_repeats_the_current_segment_after_max_interval():
    stream = make_stream(BANK, [idx("a blue cube on the floor")], [31.0], rate_hz=2.0, noise=0.1, seed=6)
    cfg = plain_config(window=3, threshold=0.05, settle=0, min_interval_s=1.0, max_interval_s=10.0)
    requests = run(ChangeDetector(cfg), stream)
    assert [r.reason for r in requests] == [DecodeReason.FIRST] + [DecodeReason.HEARTBEAT] * 3
    gaps = np.diff([r.stamp_ns for r in requests])
    assert np.all(gaps == 10 * NS)
    # A heartbeat covers the whole (growing) segment.
    assert [r.num_embeddings for r in requests] == [1, 21, 41, 61]
    assert all(r.segment_start_ns == stream.stamps_ns[0] for r in requests)


def test_hysteresis_stops_chatter_when_noise_hovers_around_the_threshold():
    stream = make_stream(BANK, [idx(WALK[1])], [100.0], noise=0.3, seed=8)
    probe = ChangeDetector(plain_config(window=2, threshold=2.0, settle=0))
    scores = []
    for stamp, vec in zip(stream.stamps_ns, stream.vectors):
        probe.update(int(stamp), vec)
        scores.append(probe.last_score)
    threshold = float(np.percentile(scores[10:], 90))  # noise alone crosses it about one time in ten
    low = float(np.min(scores[10:]))

    def count(rearm_fraction):
        cfg = plain_config(window=2, threshold=threshold, rearm_fraction=rearm_fraction, settle=0, min_interval_s=0.0)
        return len(run(ChangeDetector(cfg), stream))

    assert count(1.0) > 3  # re-arming at the threshold: every noise crossing is decoded
    assert count(0.9 * low / threshold) == 1  # re-arm level below the noise floor: only the first decode


def test_rejects_bad_embeddings_and_keeps_state():
    detector = ChangeDetector(plain_config(window=2, threshold=0.05, settle=0))
    vec = BANK.embeddings[0]
    assert detector.update(10 * NS, vec).reason == DecodeReason.FIRST
    cases = [
        (11 * NS, np.zeros_like(vec), "zero_norm"),
        (11 * NS, np.full_like(vec, np.nan), "non_finite"),
        (11 * NS, vec[:10], "dimension"),
        (11 * NS, np.stack([vec, vec]), "shape"),
        (9 * NS, vec, "stamp_backwards"),
    ]
    for stamp, bad, reason in cases:
        with pytest.raises(RejectedEmbedding) as err:
            detector.update(stamp, bad)
        assert err.value.reason == reason
    # Still the same stream: an equal stamp and the same vector are accepted, no new decode.
    assert detector.update(10 * NS, vec) is None


def test_a_threshold_under_the_noise_floor_is_visible_as_a_long_disarmed_wait():
    stream = make_stream(BANK, [idx(WALK[1])], [60.0], noise=0.3, seed=9)
    stuck = ChangeDetector(plain_config(window=2, threshold=0.001, settle=0, min_interval_s=0.0))
    healthy = ChangeDetector(plain_config(window=2, threshold=0.05, settle=0, min_interval_s=0.0))
    assert len(run(stuck, stream)) == 1 and len(run(healthy, stream)) == 1
    span_s = (stream.stamps_ns[-1] - stream.stamps_ns[0]) / NS
    assert stuck.disarmed_seconds() == pytest.approx(span_s)  # never re-armed after the first decode
    assert healthy.disarmed_seconds() == 0.0


def test_a_change_decode_averages_the_settled_window_not_the_blurred_transition():
    a, b = idx(WALK[0]), idx(WALK[1])
    stream = make_stream(BANK, [a, b], [20.0, 20.0], noise=0.1, blend=4, seed=13)  # 8 blurred embeddings
    cfg = plain_config(window=3, threshold=0.03, settle=8, min_interval_s=0.0)
    change = [r for r in run(ChangeDetector(cfg), stream) if r.reason == DecodeReason.CHANGE]
    assert len(change) == 1
    req = change[0]
    assert req.num_embeddings == 3
    assert req.segment_start_ns == req.stamp_ns - 2 * NS // 2  # the window: three embeddings at 2 Hz
    assert abs(req.change_ns - stream.change_ns[0]) <= 2 * NS  # the described state still starts at the change
    decoded_at = int(np.searchsorted(stream.stamps_ns, req.stamp_ns))
    since_change = stream.vectors[int(np.searchsorted(stream.stamps_ns, stream.change_ns[0])) : decoded_at + 1]
    blurred = since_change.mean(axis=0)
    clean = BANK.embeddings[b]
    assert float(req.vector @ clean) > float(blurred @ clean / np.linalg.norm(blurred))
