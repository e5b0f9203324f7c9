"""live_replay --start: seconds after the bag's first camera frame, validated like the other options."""

from pathlib import Path

import pytest

from vljepa_ros.bags import live_replay


def test_start_option_reaches_the_config():
    args = live_replay.build_parser().parse_args(["/bags/run", "--start", "12.5"])
    config = live_replay.config_from_args(args)
    assert config.start_s == 12.5 and config.bag == Path("/bags/run")
    assert live_replay.config_from_args(live_replay.build_parser().parse_args(["/bags/run"])).start_s == 0.0
    with pytest.raises(ValueError, match="start"):
        live_replay.LiveReplayConfig(bag=Path("/bags/run"), start_s=-1.0)
