#!/usr/bin/env bash
# The benchmark command: set up (idempotent), then run every benchmark in one run and print the table.
# Writes out/bench/results.json (all numbers) and out/bench/results.md (the table). `--quick`: ~3 minutes.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=ros_distro.sh
. "$ROOT/scripts/ros_distro.sh"  # ROS_DISTRO=jazzy: .venv-jazzy
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
. "$ROOT/scripts/transport_env.sh"  # shipped transport; benchmark traffic stays on this host
exec "$VENV/bin/python" "$ROOT/benchmarks/run_all.py" "$@"
