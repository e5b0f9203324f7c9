"""Rates, latency percentiles and per-stream counters, driven by explicit clocks."""

import pytest

from vljepa_ros.perception.run_stats import LatencyWindow, RateMeter, StreamStats

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
