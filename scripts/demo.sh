#!/usr/bin/env bash
# The README's run command: set up (idempotent), then run the default demo: a generated tiny-world bag is
# replayed in real time into the perception and selective-decoding nodes over DDS; captions print as they are
# published, next to the ground-truth scene changes. Extra arguments go to the demo (see `demo --help`).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=ros_distro.sh
. "$ROOT/scripts/ros_distro.sh"  # ROS_DISTRO=jazzy: .venv-jazzy
bash "$ROOT/scripts/setup.sh"
# The shipped transport; DDS discovery stays on this host: the demo's traffic never leaves the machine.
. "$ROOT/scripts/transport_env.sh"
cd "$ROOT"
exec "$VENV/bin/demo" "$@"
