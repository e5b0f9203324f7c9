#!/usr/bin/env bash
# The test command: set up (idempotent), lint and format checks, then the default suite (slow tests excluded; see
# README). `ROS_DISTRO=jazzy bash scripts/test.sh` does the same with .venv-jazzy (ROS 2 Jazzy). Extra arguments go
# to pytest.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=ros_distro.sh
. "$ROOT/scripts/ros_distro.sh"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
. "$ROOT/scripts/transport_env.sh"  # the shipped transport for every test process
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
exec "$VENV/bin/python" -m pytest vljepa_ros/test -m "not slow" "$@"
