"""search_recordings reads --after/--before the same way on Python 3.10 and 3.11+."""

import pytest

from vljepa_ros.tools.search_recordings import parse_time_ns

JAN_1_2026_NS = 1_767_225_600 * 10**9


@pytest.mark.parametrize(
    "text",
    ["1767225600", "1767225600.0", "2026-01-01T00:00:00", "2026-01-01T00:00:00Z", "2026-01-01T01:00:00+01:00"],
)
def test_unix_seconds_and_iso_8601_with_or_without_zone(text):
    assert parse_time_ns(text) == JAN_1_2026_NS


def test_half_seconds_and_a_bad_time():
    assert parse_time_ns("1767225600.5") == JAN_1_2026_NS + 500_000_000
    with pytest.raises(ValueError):
        parse_time_ns("yesterday")
