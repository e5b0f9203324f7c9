"""Moments: grouping a stream's clips into runs of one state, their mean vectors, and search by moment."""

import numpy as np
import pyarrow as pa
import pytest

from vljepa_ros.index.moment_search import MomentSearcher
from vljepa_ros.index.moments import MOMENT_DISTANCE, moment_of_rows, moment_vectors, stream_boundaries
from vljepa_ros.index.recording_index import RecordingIndex
from vljepa_ros.index.results_page import results_html
from vljepa_ros.index.search import ClipSearcher, Filters

from support.index_rows import clip_rows

DIM = 4
E = np.eye(DIM, dtype=np.float32)


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def rows(bag_hash: str, vectors, segment_starts=None, camera: str = "cam") -> pa.Table:
    """One clip per vector, a second apart from t = 0; every clip in one decoded segment unless told."""
    starts = [0] * len(vectors) if segment_starts is None else segment_starts
    return clip_rows(
        bag_hash,
        [unit(v) for v in vectors],
        camera=camera,
        caption=[f"caption {bag_hash} {s}" for s in starts],
        segment_start_ns=starts,
        segment_end_ns=starts,
    )


def noisy_state(axis: int, count: int) -> list:
    """`count` clips of one state: its axis plus alternating noise along the next axis (mean: the axis)."""
    other = (axis + 1) % DIM
    return [E[axis] + (0.5 if i % 2 == 0 else -0.5) * E[other] for i in range(count)]


def test_stream_boundaries_split_at_state_changes_and_decoded_segments():
    stream = np.stack([unit(v) for v in [E[0]] * 5 + [E[1]] * 4 + [E[2]] * 6])
    assert stream_boundaries(stream, [0] * 15, MOMENT_DISTANCE).tolist() == [0, 5, 9]
    segments = [0, 0, 7, 7, 7] + [7] * 10
    assert stream_boundaries(stream, segments, MOMENT_DISTANCE).tolist() == [0, 2, 5, 9]
    assert stream_boundaries(stream, [None] * 15, MOMENT_DISTANCE).tolist() == [0, 5, 9]
    # Past every Ward distance the stream is one moment; identical clips merge even at distance 0.
    assert stream_boundaries(stream, [0] * 15, 100.0).tolist() == [0]
    assert stream_boundaries(stream, [0] * 15, 0.0).tolist() == [0, 5, 9]
    assert stream_boundaries(stream[:0], [], MOMENT_DISTANCE).tolist() == []


def test_moments_are_numbered_per_stream_in_time_order():
    vectors = np.stack([unit(v) for v in [E[1], E[3], E[0], E[3], E[1], E[3], E[0]]])
    streams = ["a", "b", "a", "b", "a", "b", "a"]
    stamps = np.array([3, 0, 1, 1, 2, 2, 0], dtype=np.int64)  # stream "a" out of time order
    moments = moment_of_rows(streams, stamps, [None] * 7, vectors, MOMENT_DISTANCE)
    # "a" in time: rows 6, 2 (state e0) then 4, 0 (state e1); "b": rows 1, 3, 5, one state.
    assert moments.tolist() == [1, 2, 0, 2, 1, 2, 0]


def test_moment_vectors_are_unit_means_of_contiguous_runs():
    vectors = np.array([[1, 0], [0, 1], [3, 0], [0, 2], [0, 5]], dtype=np.float32)
    means, starts = moment_vectors(vectors, np.array([4, 4, 6, 6, 6]))
    assert starts.tolist() == [0, 2]
    assert means == pytest.approx(np.array([[np.sqrt(0.5), np.sqrt(0.5)], [3 / np.sqrt(58), 7 / np.sqrt(58)]]))
    empty, none = moment_vectors(vectors[:0], np.zeros(0, np.int64))
    assert empty.shape == (0, 2) and none.tolist() == []


@pytest.fixture
def searcher(tmp_path):
    """Bag aa: one noisy state along e0. Bag bb: state e2, a clip straddling into e0, then state e3."""
    index = RecordingIndex(tmp_path)
    index.add_bag(rows("aa", noisy_state(0, 6)), "aa", "v1")
    straddle = E[0] + 0.3 * E[2]  # scores 0.958 against e0, above every single clip of aa (0.894)
    index.add_bag(rows("bb", [E[2]] * 6 + [straddle] + [E[3]] * 6), "bb", "v1")
    return ClipSearcher.load(index)


def test_the_moment_of_the_true_state_outranks_a_straddling_clip(searcher):
    query = E[0]
    assert searcher.search(query, 1)[0].bag == "bag_bb"  # single clips: the straddling one wins
    moments = MomentSearcher(searcher)
    assert len(moments) == 3
    hits = moments.search(query, top_k=5)
    assert [h.bag for h in hits] == ["bag_aa", "bag_bb", "bag_bb"]  # one hit per moment, no neighbouring repeats
    best = hits[0]
    assert best.score == pytest.approx(1.0, abs=1e-6)
    assert (best.clips, best.start_t_s, best.end_t_s, best.t_s) == (6, 0.0, 5.0, 2.0)  # shown by its middle clip
    assert best.key == searcher.columns["key"][2] and best.caption == "caption aa 0"
    assert best.replay_command == "live_replay /bags/aa --start 0.00"
    assert [h.clips for h in hits[1:]] == [7, 6]  # the straddling clip joins the state it blurs into most
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_filters_drop_clips_before_moments_are_averaged(searcher):
    moments = MomentSearcher(searcher)
    late = moments.search(E[0], 1, Filters(after_ns=3_000_000_000))[0]
    assert (late.bag, late.clips, late.start_t_s, late.end_t_s, late.t_s) == ("bag_aa", 3, 3.0, 5.0, 4.0)
    assert moments.search(E[0], 5, Filters(camera="rear")) == []
    assert moments.search(E[0], 5, Filters(model_version="v9")) == []
    moments.build_ann()
    assert moments.search(E[0], 1, use_ann=True)[0].key == moments.search(E[0], 1)[0].key


def test_a_decoded_segment_boundary_splits_a_moment(tmp_path):
    index = RecordingIndex(tmp_path)
    index.add_bag(rows("aa", noisy_state(0, 6), segment_starts=[0, 0, 0, 3, 3, 3]), "aa", "v1")
    hits = MomentSearcher(ClipSearcher.load(index)).search(E[0], 5)
    assert [(h.start_t_s, h.end_t_s, h.caption) for h in sorted(hits, key=lambda h: h.start_t_s)] == [
        (0.0, 2.0, "caption aa 0"),
        (3.0, 5.0, "caption aa 3"),
    ]


def test_the_results_page_shows_a_moments_span(searcher):
    hits = MomentSearcher(searcher).search(E[0], 1)
    assert "0.00-5.00 s (6 clips), shown: 2.00 s" in results_html("e0", hits, {})
