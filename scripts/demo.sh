#!/usr/bin/env bash
# The README's run command: set up (idempotent), then run the default demo: a generated tiny-world bag is
# replayed in real time into the perception and selective-decoding nodes over DDS; captions print as they are
# published, next to the ground-truth scene changes. Extra arguments go to the demo (see `demo --help`).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/setup.sh"
# DDS discovery stays on this host: the demo's traffic never leaves the machine.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
cd "$ROOT"
exec "$ROOT/.venv/bin/demo" "$@"
