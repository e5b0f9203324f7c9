"""Rates, latency percentiles and per-stream counters, driven by explicit clocks."""

import pytest

from vljepa_ros.perception.run_stats import LatencyWindow, RateMeter, RestartWatch, StampLossMeter, StreamStats

S = 1_000_000_000


def test_rate_over_a_full_window():
    meter = RateMeter(window_s=2.0)
    for i in range(100):
        meter.add(i * S // 10)  # 10 Hz for 10 s
    assert meter.rate_hz(10 * S - S // 20) == pytest.approx(10.0)  # window (7.95, 9.95]: 20 events
    assert meter.total == 100


def test_rate_before_the_window_fills_uses_the_time_since_the_first_event():
    meter = RateMeter(window_s=10.0)
    for i in range(5):
        meter.add(S + i * S // 5)
    assert meter.rate_hz(2 * S) == pytest.approx(5.0)


def test_rate_decays_to_zero_when_events_stop():
    meter = RateMeter(window_s=1.0)
    meter.add(0)
    meter.add(S // 2)
    assert meter.rate_hz(S) > 0
    assert meter.rate_hz(5 * S) == 0.0
    assert RateMeter().rate_hz(S) == 0.0


def test_latency_percentiles_over_the_last_samples():
    window = LatencyWindow(size=100)
    assert window.percentile(50) is None
    for i in range(200):
        window.add(i / 1000)  # only the last 100: 0.100 .. 0.199
    assert len(window) == 100 and window.total == 200
    assert window.percentile(50) == pytest.approx(0.1495)
    assert window.percentile(95) == pytest.approx(0.19405)


def test_stream_stats_tracks_inputs_outputs_and_silence():
    stats = StreamStats(window_s=1.0)
    assert stats.seconds_since_input(5 * S) is None
    stats.on_input(S)
    stats.on_output(S + S // 10, 0.1)
    stats.drops["worker_behind"] += 2
    stats.malformed["truncated"] += 1
    assert stats.seconds_since_input(4 * S) == pytest.approx(3.0)
    assert stats.latency.percentile(50) == pytest.approx(0.1)
    assert stats.output_rate.total == 1 and stats.drops["worker_behind"] == 2


@pytest.mark.parametrize("make", [lambda: RateMeter(0), lambda: LatencyWindow(0)])
def test_invalid_settings_are_refused(make):
    with pytest.raises(ValueError):
        make()


MS = 1_000_000


def _meter_with(stamps):
    meter = StampLossMeter()
    for stamp in stamps:
        meter.add(stamp)
    return meter.loss()


def test_a_complete_stream_shows_its_rate_and_no_loss():
    loss = _meter_with(i * 33 * MS for i in range(100))
    assert loss.publisher_rate_hz == pytest.approx(1000 / 33) and loss.gaps == 0 and loss.lost_fraction == 0.0


def test_most_frames_missing_is_counted_from_the_stamp_gaps():
    # A 30 Hz publisher of which only every third frame plus a few neighbours arrive: the median delta is
    # three intervals, yet the rate and the loss come out right.
    kept = [i for i in range(300) if i % 3 == 0 or i % 30 == 1]
    loss = _meter_with(i * 33 * MS for i in kept)
    assert loss.publisher_rate_hz == pytest.approx(1000 / 33)
    sent = kept[-1] - kept[0] + 1
    assert loss.missing == sent - len(kept) and loss.intervals == len(kept) - 1
    assert loss.lost_fraction == pytest.approx((sent - len(kept)) / (sent - 1))


def test_stamp_jitter_is_not_loss():
    jitter = [0, 4, -4, 2, -2] * 20  # stamps +-4 ms off a 33 ms grid: deltas from 25 to 41 ms
    loss = _meter_with(i * 33 * MS + j * MS for i, j in enumerate(jitter))
    assert loss.missing == 0 and loss.publisher_rate_hz == pytest.approx(1000 / 33, rel=0.05)


def test_pauses_restarts_and_repeats_are_not_loss():
    stamps = [i * 33 * MS for i in range(30)]
    stamps += [stamps[-1] + 5 * S + i * 33 * MS for i in range(30)]  # a camera paused for 5 s
    stamps += [stamps[-1], stamps[-1] - 10 * MS]  # a repeated and an out-of-order stamp
    stamps += [i * 33 * MS for i in range(30)]  # the camera's clock restarted
    loss = _meter_with(stamps)
    assert loss.missing == 0 and loss.intervals == 29 + 29 + 29


def test_too_few_intervals_give_no_estimate():
    loss = _meter_with([0, 33 * MS, 99 * MS])
    assert loss.publisher_rate_hz is None and loss.lost_fraction == 0.0


def test_stream_stats_feeds_the_loss_meter_with_input_stamps():
    stats = StreamStats()
    for i in range(40):
        if i != 20:
            stats.on_input(i * 33 * MS, i * 33 * MS)
    stats.on_input(41 * 33 * MS)  # a frame without a stamp counts as input only
    assert stats.input_rate.total == 40 and stats.stamp_loss.loss().missing == 1


def test_restart_watch_counts_restarts_since_the_last_output():
    watch = RestartWatch()
    assert watch.since_output(0, 0) == 0
    assert watch.since_output(0, 2) == 2  # restarts and no output yet
    assert watch.since_output(5, 3) == 0  # a clip came out: counting starts again
    assert watch.since_output(5, 4) == 1  # one restart after a pause
    assert watch.since_output(5, 7) == 4
