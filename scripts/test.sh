#!/usr/bin/env bash
# The test command: set up (idempotent), lint and format checks, then the default suite (slow tests excluded; see
# README). Extra arguments go to pytest.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
. "$ROOT/scripts/transport_env.sh"  # the shipped transport for every test process
"$ROOT/.venv/bin/ruff" check .
"$ROOT/.venv/bin/ruff" format --check .
exec "$ROOT/.venv/bin/python" -m pytest vljepa_ros/test -m "not slow" "$@"
