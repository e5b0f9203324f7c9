"""The perception node's /diagnostics statuses, built from explicit statistics and clocks."""

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus

from vljepa_ros.nodes.dds_transport import transport_line
from vljepa_ros.nodes.diagnostics import (
    DROP_REASONS,
    MALFORMED_REASONS,
    TRANSPORT_FIX,
    CameraHealth,
    ClockHealth,
    camera_status,
    clock_status,
)
from vljepa_ros.nodes.log_text import clipped, shorten
from vljepa_ros.perception.run_stats import StreamStats

S = 1_000_000_000
MS = 1_000_000


def _health(**overrides):
    values = dict(
        camera="front",
        topic="/front/image_raw",
        provider="CPUExecutionProvider",
        model="m (1)",
        enabled=True,
        stall_timeout_s=3.0,
        incompatible_qos=0,
        last_qos_problem="",
        clip_resets={},
        frames_subsampled=0,
    )
    values.update(overrides)
    return CameraHealth(**values)


def _streaming(stats, start_ns, count, keep=lambda i: True):
    for i in range(count):
        if keep(i):
            stats.on_input(start_ns + i * 33 * MS, start_ns + i * 33 * MS)
    return start_ns + count * 33 * MS


def test_every_counter_a_log_line_can_name_is_reported_from_the_start():
    status = camera_status("node", _health(), StreamStats(), S)
    keys = {kv.key: kv.value for kv in status.values}
    for reason in DROP_REASONS:
        assert keys[f"drops.{reason}"] == "0"
    for reason in MALFORMED_REASONS:
        assert keys[f"malformed.{reason}"] == "0"
    assert {"drops.inference_error", "drops.publish_error", "malformed.bad_stamp"} <= set(keys)


def test_one_restart_after_a_pause_is_not_a_warning_but_a_run_of_them_is():
    stats = StreamStats()
    now = _streaming(stats, S, 30)
    one = camera_status("node", _health(clip_resets={"gap": 5}, gap_restarts_since_output=1), stats, now)
    assert one.level == DiagnosticStatus.OK and one.message == "ok"
    many = camera_status("node", _health(clip_resets={"gap": 7}, gap_restarts_since_output=3), stats, now)
    assert many.level == DiagnosticStatus.WARN and "clips keep restarting" in many.message
    assert "3 since the last clip" in many.message


def test_stamps_jumping_ahead_and_back_with_every_frame_delivered_are_not_loss():
    """Fuzzed frames among good ones: every frame arrives every 33 ms, but one in four carries a stamp up to
    0.9 s ahead or behind. The stamps alone show long gaps; the arrivals show nothing missing."""
    rng = np.random.default_rng(4)
    stats = StreamStats()
    for i in range(600):
        received = S + i * 33 * MS
        jump = int(rng.integers(-900, 900)) * MS if i % 4 == 3 else 0
        stats.on_input(received, received + jump)
    status = camera_status("node", _health(), stats, S + 600 * 33 * MS)
    keys = {kv.key: kv.value for kv in status.values}
    assert status.level == DiagnosticStatus.OK, status.message
    assert keys["frames_missing"] == "0" and keys["lost_fraction"] == "0.000"
    assert int(keys["stamp_gaps"]) > 0  # the stamps did jump: the arrivals overruled them


def test_a_real_thirty_percent_loss_warns():
    rng = np.random.default_rng(6)
    kept = rng.random(600) >= 0.3
    stats = StreamStats()
    now = _streaming(stats, S, 600, keep=lambda i: kept[i])
    status = camera_status("node", _health(), stats, now)
    keys = {kv.key: kv.value for kv in status.values}
    assert status.level == DiagnosticStatus.WARN and TRANSPORT_FIX in status.message
    assert float(keys["lost_fraction"]) == pytest.approx(0.3, abs=0.05)


def test_frames_missing_by_their_stamps_warn_with_the_lost_fraction_and_the_fix():
    stats = StreamStats()
    now = _streaming(stats, S, 200, keep=lambda i: i % 3 == 0 or i % 10 == 1)
    status = camera_status("node", _health(), stats, now)
    keys = {kv.key: kv.value for kv in status.values}
    assert status.level == DiagnosticStatus.WARN and TRANSPORT_FIX in status.message
    assert f"{float(keys['lost_fraction']):.0%} of the frames on /front/image_raw are missing" in status.message
    assert float(keys["lost_fraction"]) > 0.5 and int(keys["frames_missing"]) > 0
    assert float(keys["publisher_rate_hz"]) == float(f"{1000 / 33:.2f}")

    complete = StreamStats()
    now = _streaming(complete, S, 200)
    assert camera_status("node", _health(), complete, now).level == DiagnosticStatus.OK


def test_clock_status_reports_sim_time_without_clock_and_a_paused_clock():
    off = clock_status("node", ClockHealth(False, 0, None, 3.0))
    assert off.level == DiagnosticStatus.OK
    waiting = clock_status("node", ClockHealth(True, 0, None, 3.0))
    assert waiting.level == DiagnosticStatus.WARN and "no /clock" in waiting.message
    paused = clock_status("node", ClockHealth(True, 12, 5.0, 3.0))
    assert paused.level == DiagnosticStatus.WARN and "paused" in paused.message
    assert {kv.key: kv.value for kv in paused.values}["clock_messages"] == "12"
    assert clock_status("node", ClockHealth(True, 12, 0.1, 3.0)).level == DiagnosticStatus.OK


def test_long_text_is_shortened_for_logs_with_its_length():
    assert shorten("short") == "short"
    long = "x" * 10_000
    assert shorten(long) == "x" * 80 + "... (10000 chars)"


def test_transport_line_names_the_rmw_and_every_transport_variable():
    line = transport_line({"FASTDDS_BUILTIN_TRANSPORTS": "UDPv4"}, "rmw_fastrtps_cpp")
    assert line.startswith("DDS transport: rmw rmw_fastrtps_cpp;") and "\n" not in line
    assert "FASTDDS_BUILTIN_TRANSPORTS=UDPv4" in line and "FASTDDS_DEFAULT_PROFILES_FILE=(unset)" in line
    assert "FASTRTPS_DEFAULT_PROFILES_FILE=(unset)" in line
    assert "ROS_AUTOMATIC_DISCOVERY_RANGE=(unset)" in line and "RMW_IMPLEMENTATION=(unset)" in line


def test_long_texts_are_clipped_with_their_length():
    assert clipped("front") == "'front'"
    line = clipped("x" * 10_000)
    assert len(line) < 120 and line.endswith("(10000 chars)")
    assert shorten("short") == "short" and shorten("y" * 500, 100).endswith("... (500 chars)")
