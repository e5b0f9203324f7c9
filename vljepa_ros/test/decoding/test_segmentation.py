"""Offline Ward segmentation with temporal connectivity: against a brute-force reference and true boundaries."""

import numpy as np
import pytest

from vljepa_ros.decoding.segmentation import Segment, segment_means, ward_segments

from support.selective_streams import load_bank, make_stream


def brute_force_ward(x, n_segments):
    """Reference: recompute every adjacent merge cost from scratch at each step."""
    segs = [[i] for i in range(len(x))]
    while len(segs) > n_segments:
        costs = []
        for a, b in zip(segs, segs[1:]):
            ma, mb = x[a].mean(0), x[b].mean(0)
            costs.append(len(a) * len(b) / (len(a) + len(b)) * np.sum((ma - mb) ** 2))
        k = int(np.argmin(costs))
        segs[k : k + 2] = [segs[k] + segs[k + 1]]
    return [Segment(s[0], s[-1] + 1) for s in segs]


@pytest.mark.parametrize("seed", range(5))
def test_matches_brute_force_reference(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(40, 6))
    for n in (1, 3, 7, 40):
        assert ward_segments(x, n_segments=n) == brute_force_ward(x, n)


def test_finds_true_boundaries_of_a_noisy_piecewise_constant_stream():
    bank = load_bank()
    captions = [0, 10, 20, 30, 40]
    stream = make_stream(bank, captions, [12.0, 8.0, 20.0, 6.0, 10.0], noise=0.3, blend=1, seed=3)
    segments = ward_segments(stream.vectors, n_segments=len(captions))
    starts = [stream.stamps_ns[s.start] for s in segments[1:]]
    assert len(segments) == len(captions)
    assert np.all(np.abs(np.asarray(starts) - np.asarray(stream.change_ns)) <= 1e9)
    means = segment_means(stream.vectors, segments)
    assert [bank.top_k(m, 1)[0][0] for m in means] == [bank.texts[c] for c in captions]
    assert np.allclose(np.linalg.norm(means, axis=1), 1.0, atol=1e-5)


def test_distance_threshold_stops_merging():
    x = np.repeat(np.eye(3), [5, 4, 6], axis=0)  # three exact clusters, Ward distance between them > 1
    assert ward_segments(x, distance_threshold=0.0) == [Segment(0, 5), Segment(5, 9), Segment(9, 15)]
    assert ward_segments(x, distance_threshold=1e9) == [Segment(0, 15)]
    assert len(ward_segments(x, n_segments=100)) == 15  # capped at the stream length


def test_segments_cover_the_stream_in_order():
    x = np.random.default_rng(0).normal(size=(200, 8))
    segments = ward_segments(x, n_segments=17)
    assert segments[0].start == 0 and segments[-1].stop == 200
    assert all(a.stop == b.start for a, b in zip(segments, segments[1:]))
    assert all(s.start <= s.middle < s.stop for s in segments)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(vectors=np.zeros((0, 3)), n_segments=1), "vectors"),
        (dict(vectors=np.zeros(5), n_segments=1), "vectors"),
        (dict(vectors=np.full((3, 2), np.nan), n_segments=1), "NaN"),
        (dict(vectors=np.zeros((3, 2))), "exactly one"),
        (dict(vectors=np.zeros((3, 2)), n_segments=2, distance_threshold=1.0), "exactly one"),
        (dict(vectors=np.zeros((3, 2)), n_segments=0), "n_segments"),
        (dict(vectors=np.zeros((3, 2)), distance_threshold=-1.0), "distance_threshold"),
    ],
)
def test_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ward_segments(**kwargs)
