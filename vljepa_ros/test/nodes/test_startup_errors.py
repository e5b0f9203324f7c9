"""Both nodes refuse a bad start-up configuration with exit code 2 and one stderr line naming the problem."""

import os
import subprocess

import pytest

from vljepa_ros.tools.node_process import node_command

from support.selective_streams import BANK_PATH

pytestmark = pytest.mark.ros


def write(path, text):
    path.write_text(text)
    return path


# name -> (file name, contents): params files rcl refuses with a traceback or silently ignores.
BAD_PARAMS_FILES = {
    "yaml_syntax_error": ("bad.yaml", "/**:\n  ros__parameters:\n    window: [3\n"),
    "a_list": ("list.yaml", "- window: 3\n"),
    "a_scalar": ("scalar.yaml", "window\n"),
    "empty": ("empty.yaml", ""),
    "no_ros__parameters": ("flat.yaml", "/**:\n  window: 3\n"),
}


def run(module: str, *ros_args: str) -> subprocess.CompletedProcess:
    command = node_command(f"vljepa_ros.nodes.{module}", ros_args=ros_args)
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)


def assert_refused(result: subprocess.CompletedProcess, *named: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert "refusing to start" in lines[0] and len(lines[0]) <= 450, lines[0]
    for text in named:
        assert text in lines[0], lines[0]


@pytest.mark.parametrize("module", ["decoder_node", "perception_node"])
@pytest.mark.parametrize("case", sorted(BAD_PARAMS_FILES))
def test_a_bad_params_file_is_refused_in_one_line_naming_it(module, case, tmp_path):
    path = write(tmp_path / BAD_PARAMS_FILES[case][0], BAD_PARAMS_FILES[case][1])
    assert_refused(run(module, "--params-file", str(path)), str(path))


@pytest.mark.parametrize("module", ["decoder_node", "perception_node"])
def test_a_missing_params_file_is_refused_in_one_line_naming_it(module, tmp_path):
    missing = tmp_path / "missing.yaml"
    assert_refused(run(module, "--params-file", str(missing)), str(missing))


DECODER_VALUES = [
    "diagnostics_period_s:=.inf",
    "statistics_period_s:=.inf",
    "stall_timeout_s:=.nan",
    "uniform_rate_hz:=.inf",
    "min_interval_s:=.inf",
    "max_interval_s:=.nan",
    "threshold:=.nan",
    "rearm_fraction:=.inf",
    "stream_expiry_s:=.inf",
    "stream_expiry_s:=.nan",
    "max_streams:=0",
]


@pytest.mark.parametrize("assignment", DECODER_VALUES)
def test_decoder_refuses_non_finite_and_out_of_range_numbers_naming_the_parameter(assignment):
    name = assignment.split(":=")[0]
    assert_refused(run("decoder_node", "-p", f"bank_path:={BANK_PATH}", "-p", assignment), name)


PERCEPTION_VALUES = [
    "diagnostics_period_s:=.inf",
    "stall_timeout_s:=.inf",
    "stall_timeout_s:=.nan",
    "frame_rate_hz:=.inf",
    "transition_horizon_s:=.nan",
    "camera_topics:=[]",
    "providers:=[]",
    f"camera_names:=[{'c' * 257}]",
]


@pytest.mark.parametrize("assignment", PERCEPTION_VALUES)
def test_perception_node_refuses_bad_values_naming_the_parameter(assignment):
    assert_refused(run("perception_node", "-p", assignment), assignment.split(":=")[0])


def test_a_very_long_value_is_not_echoed_in_full(tmp_path):
    long_path = "x" * 5000
    result = run("decoder_node", "-p", f"bank_path:={long_path}")
    assert_refused(result, "bank_path", "(5000 chars)")
