"""Clip sampling on the stamp grid, stride, transition look-back, keep-latest queue and state history."""

import threading
import time

import numpy as np
import pytest

from vljepa_ros.perception.clip_buffer import (
    SAMPLE,
    SKIP_OUT_OF_ORDER,
    SKIP_RATE,
    ClipBuffer,
    ReadyQueue,
    StateHistory,
)

MS = 1_000_000


def _feed(buf, stamps_ns, frame_id="cam"):
    """Offer every stamp like a camera would; returns (clips, skip reasons)."""
    clips, skips = [], []
    for stamp in stamps_ns:
        verdict = buf.check(stamp)
        if verdict != SAMPLE:
            skips.append(verdict)
            continue
        clip = buf.add(stamp, frame_id, f"frame@{stamp}")
        if clip is not None:
            clips.append(clip)
    return clips, skips


def test_30hz_camera_is_sampled_at_the_model_rate_by_stamp():
    buf = ClipBuffer("front", frames=4, frame_rate_hz=4.0)
    stamps = [int(i * 1e9 / 30) + 1000 * (i % 3) for i in range(300)]  # 10 s with jitter
    clips, skips = _feed(buf, stamps)
    sampled = 4 + len(clips) - 1
    assert 39 <= sampled <= 41  # 4 Hz over 10 s
    assert set(skips) == {SKIP_RATE}
    gaps = np.diff(clips[-1].stamps_ns)
    assert np.all(np.abs(gaps - 250 * MS) <= 34 * MS)  # never more than one camera period off the grid


def test_first_clip_needs_t_frames_then_one_per_stride():
    buf = ClipBuffer("c", frames=3, frame_rate_hz=10.0, stride=2)
    clips, _ = _feed(buf, [i * 100 * MS for i in range(9)])
    assert [c.stamps_ns[-1] // (100 * MS) for c in clips] == [2, 4, 6, 8]
    first = clips[0]
    assert first.stamps_ns == (0, 100 * MS, 200 * MS)
    assert first.frames == tuple(f"frame@{s}" for s in first.stamps_ns)
    assert first.stamp_ns == first.stamps_ns[-1] and first.clip_start_ns == first.stamps_ns[0]
    assert [c.sequence for c in clips] == [1, 2, 3, 4]


def test_first_clip_starts_at_the_first_frame():
    buf = ClipBuffer("c", frames=2, frame_rate_hz=10.0)
    clips, _ = _feed(buf, [0, 100 * MS])
    assert clips[0].stamps_ns == (0, 100 * MS)


def test_out_of_order_frames_are_reported_and_a_clock_restart_resets():
    buf = ClipBuffer("c", frames=2, frame_rate_hz=10.0)
    _feed(buf, [5000 * MS, 5100 * MS])
    assert buf.check(5050 * MS) == SKIP_OUT_OF_ORDER
    assert buf.check(5100 * MS) == SKIP_OUT_OF_ORDER
    assert buf.check(100 * MS) == SAMPLE  # far in the past: bag looped
    clips, _ = _feed(buf, [100 * MS, 200 * MS])
    assert buf.resets == {"clock_back": 1}
    assert clips[0].stamps_ns == (100 * MS, 200 * MS)


def test_gap_restarts_the_sampling_grid_and_the_clip():
    buf = ClipBuffer("c", frames=2, frame_rate_hz=10.0)
    _feed(buf, [0, 100 * MS])
    assert buf.check(1000 * MS) == SAMPLE
    assert buf.add(1000 * MS, "c", None) is None  # a clip never spans the 0.9 s gap
    assert buf.resets == {"gap": 1}
    assert buf.check(1050 * MS) == SKIP_RATE
    assert buf.check(1100 * MS) == SAMPLE
    assert buf.add(1100 * MS, "c", None).stamps_ns == (1000 * MS, 1100 * MS)


def test_a_missed_sample_is_not_a_gap_but_two_are():
    buf = ClipBuffer("c", frames=3, frame_rate_hz=10.0)
    clips, _ = _feed(buf, [0, 100 * MS, 300 * MS])  # 200 ms missing: two periods, still one clip
    assert clips[0].stamps_ns == (0, 100 * MS, 300 * MS) and not buf.resets
    _feed(buf, [301 * MS + 200 * MS])
    assert buf.resets == {"gap": 1}


def test_before_clip_is_the_clip_a_horizon_earlier():
    buf = ClipBuffer("c", frames=3, frame_rate_hz=10.0, transition_horizon_s=0.5)
    clips, _ = _feed(buf, [i * 100 * MS for i in range(12)])
    by_end = {c.stamp_ns // (100 * MS): c for c in clips}
    assert by_end[6].before is None  # the clip ending at 0.1 s never existed (needs frames 0..2)
    assert by_end[7].before.stamps_ns == (0, 100 * MS, 200 * MS)
    assert by_end[11].before.stamps_ns == (400 * MS, 500 * MS, 600 * MS)
    assert by_end[11].before.frames == tuple(f"frame@{s}" for s in (400 * MS, 500 * MS, 600 * MS))


def test_before_clip_tolerates_stamp_jitter_of_half_a_period():
    buf = ClipBuffer("c", frames=1, frame_rate_hz=10.0, transition_horizon_s=0.3)
    clips, _ = _feed(buf, [0, 104 * MS, 199 * MS, 305 * MS])
    assert clips[-1].before.stamp_ns == 0  # 305 - 300 = 5 ms past the horizon: still the right frame


def test_no_horizon_means_no_before_clip():
    buf = ClipBuffer("c", frames=2, frame_rate_hz=10.0)
    clips, _ = _feed(buf, [i * 100 * MS for i in range(20)])
    assert all(c.before is None for c in clips)


@pytest.mark.parametrize(
    "kwargs",
    [dict(frames=0), dict(frame_rate_hz=0.0), dict(stride=0), dict(transition_horizon_s=-1.0)],
)
def test_invalid_buffer_settings_name_the_parameter(kwargs):
    args = dict(camera="c", frames=2, frame_rate_hz=4.0) | kwargs
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        ClipBuffer(**args)


def _clip(buf_camera, n):
    buf = ClipBuffer(buf_camera, frames=1, frame_rate_hz=10.0)
    return [buf.add(i * 100 * MS, buf_camera, i) for i in range(n)]


def test_ready_queue_drops_the_oldest_clip_when_behind():
    q = ReadyQueue(depth=2)
    a = _clip("a", 4)
    assert q.put(a[0]) is None and q.put(a[1]) is None
    assert q.put(a[2]) is a[0]
    assert q.put(a[3]) is a[1]
    assert q.pending() == 2
    assert q.take_batch(8, 0) == [a[2]]
    assert q.take_batch(8, 0) == [a[3]]
    assert q.take_batch(8, 0) == []


def test_ready_queue_batches_one_clip_per_camera_round_robin():
    q = ReadyQueue(depth=3)
    a, b, c = _clip("a", 2), _clip("b", 2), _clip("c", 1)
    for clip in (a[0], b[0], c[0], a[1], b[1]):
        q.put(clip)
    assert q.take_batch(2, 0) == [a[0], b[0]]
    assert q.take_batch(2, 0) == [c[0], a[1]]  # c is not starved by the batch limit
    assert q.take_batch(2, 0) == [b[1]]


def test_ready_queue_wakes_a_waiting_worker_and_close_releases_it():
    q = ReadyQueue()
    got = []
    worker = threading.Thread(target=lambda: got.append(q.take_batch(4, 5.0)))
    worker.start()
    clip = _clip("a", 1)[0]
    q.put(clip)
    worker.join(5.0)
    assert got == [[clip]]
    worker = threading.Thread(target=lambda: got.append(q.take_batch(4, 5.0)))
    worker.start()
    q.close()
    worker.join(5.0)
    assert not worker.is_alive() and got[-1] == []


def _wait_until_idle(q, timeout_s=5.0):
    """Block until a worker thread sits in take_batch with nothing to take (it has reached its wait)."""
    deadline = time.monotonic() + timeout_s
    while not q._idle_workers and time.monotonic() < deadline:
        time.sleep(0.001)
    assert q._idle_workers, "the worker never reached take_batch"


def test_hand_off_returns_at_once_without_an_idle_worker():
    q = ReadyQueue()
    clip = _clip("a", 1)[0]
    q.put(clip)
    # No worker waits: nobody would take the clip, so hand_off must not wait out its (long) timeout.
    start = time.monotonic()
    assert q.hand_off(clip, timeout_s=30.0) is False
    assert time.monotonic() - start < 10.0 and q.pending() == 1


def test_hand_off_waits_until_the_idle_worker_has_taken_the_clip():
    q = ReadyQueue()
    got = []
    worker = threading.Thread(target=lambda: got.append(q.take_batch(4, 30.0)))
    worker.start()
    _wait_until_idle(q)
    clip = _clip("a", 1)[0]
    q.put(clip)
    assert q.hand_off(clip, timeout_s=30.0) is True
    assert q.pending() == 0  # taken before hand_off returned, not merely queued
    worker.join(5.0)
    assert got == [[clip]]


def test_hand_off_is_released_by_close():
    q = ReadyQueue()
    q._idle_workers = 1  # a worker that is idle but never scheduled: only close() can end the wait
    clip = _clip("a", 1)[0]
    q.put(clip)
    results = []
    producer = threading.Thread(target=lambda: results.append(q.hand_off(clip, timeout_s=30.0)))
    producer.start()
    time.sleep(0.05)
    assert producer.is_alive()
    q.close()
    producer.join(5.0)
    assert results == [True] and not producer.is_alive()


def test_ready_queue_clear_returns_what_was_waiting():
    q = ReadyQueue(depth=2)
    clips = _clip("a", 2)
    for clip in clips:
        q.put(clip)
    assert q.clear() == clips and q.pending() == 0


def test_state_history_finds_exact_stamps_and_prunes_old_ones():
    h = StateHistory(keep_s=1.0)
    for i in range(30):
        h.record(i * 100 * MS, np.full(2, i, np.float32))
    assert h.get(2900 * MS)[0] == 29
    assert h.get(1900 * MS)[0] == 19
    assert h.get(1850 * MS) is None
    assert h.get(1800 * MS - 1) is None and h.get(1000 * MS) is None  # older than keep_s
    h.record(50 * MS, np.zeros(2, np.float32))  # clock restarted
    assert h.get(2900 * MS) is None and h.get(50 * MS) is not None


@pytest.mark.parametrize("camera_hz,model_hz", [(30.3, 10.0), (4.0, 4.0), (30.0, 4.0), (15.0, 7.5)])
def test_sampled_rate_matches_the_model_rate_under_jitter(camera_hz, model_hz):
    rng = np.random.default_rng(0)
    buf = ClipBuffer("c", frames=1, frame_rate_hz=model_hz)
    period = 1e9 / camera_hz
    stamps = [int(i * period + rng.uniform(-0.1, 0.1) * period) for i in range(int(20 * camera_hz))]
    clips, _ = _feed(buf, stamps)
    assert len(clips) == pytest.approx(20 * model_hz, abs=1)
