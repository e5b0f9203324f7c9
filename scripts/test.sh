#!/usr/bin/env bash
# The test command: set up (idempotent), then run the default suite (slow tests excluded; see README).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/python" -m pytest vljepa_ros/test -m "not slow" "$@"
