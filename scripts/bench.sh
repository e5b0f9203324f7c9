#!/usr/bin/env bash
# The benchmark command: set up (idempotent), then run every benchmark in one run and print the table.
# Writes out/bench/results.json (all numbers) and out/bench/results.md (the table). `--quick`: ~3 minutes.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
. "$ROOT/scripts/transport_env.sh"  # shipped transport; benchmark traffic stays on this host
exec "$ROOT/.venv/bin/python" "$ROOT/benchmarks/run_all.py" "$@"
