#!/usr/bin/env bash
# The plain-Python core's tests (runtime/, perception/, decoding/, index/: no ROS, no torch) under Python 3.10, the
# Python of ROS 2 Humble and JetPack 6. Builds .venv-py310 with just the core's requirements. Fails, never skips,
# when no Python 3.10 is found. Extra arguments go to pytest.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VLJEPA_PY310_VENV:-$ROOT/.venv-py310}
log() { echo "[py3.10] $*"; }

# python3.10 on PATH, or a pyenv-installed 3.10 that pyenv's shim only runs when selected.
is_py310() { "$@" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; }
PY310=(python3.10)
if ! is_py310 "${PY310[@]}" && command -v pyenv >/dev/null; then
  version=$(pyenv versions --bare 2>/dev/null | grep -E '^3\.10(\.|$)' | tail -1 || true)
  [ -n "$version" ] && PY310=(env PYENV_VERSION="$version" python3.10)
fi
if ! is_py310 "${PY310[@]}"; then
  echo "[py3.10] FAILED: no Python 3.10 found (python3.10 on PATH or a pyenv 3.10); install it, e.g." \
    "'apt-get install python3.10-venv' on Ubuntu 22.04 or 'pyenv install 3.10'" >&2
  exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment $VENV"
  "${PY310[@]}" -m venv "$VENV"
fi
req_hash=$(cat "$ROOT"/requirements/core{,-test}.txt | sha256sum | cut -c1-16)
if [ "$(cat "$VENV/.vljepa-requirements" 2>/dev/null)" != "$req_hash" ]; then
  log "installing the core's requirements (requirements/core-test.txt)"
  "$VENV/bin/python" -m pip install -q -r "$ROOT/requirements/core-test.txt" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  echo "$req_hash" > "$VENV/.vljepa-requirements"
fi

# The tests' small random model is exported with torch, which the core does not need: the 3.11 venv (scripts/setup.sh)
# writes it once per run and the tests copy it (test/support/tiny_models.py).
EXPORT_PY=${VLJEPA_EXPORT_PYTHON:-$ROOT/.venv/bin/python}
[ -x "$EXPORT_PY" ] || { echo "[py3.10] FAILED: $EXPORT_PY missing: run 'bash scripts/setup.sh' first" >&2; exit 1; }
export VLJEPA_TINY_MODEL_DIR="$VENV/tiny-model"
rm -rf "$VLJEPA_TINY_MODEL_DIR"
PYTHONPATH="$ROOT/vljepa_ros/test" "$EXPORT_PY" -c 'import sys; from support.tiny_models import prebuild
prebuild(sys.argv[1])' "$VLJEPA_TINY_MODEL_DIR"

cd "$ROOT"
# Every module (nodes and tools too, which need ROS to run) must at least parse on 3.10.
log "compiling every Python file under $("$VENV/bin/python" --version)"
"$VENV/bin/python" -m compileall -q vljepa_ros/vljepa_ros vljepa_ros/launch vljepa_ros/test benchmarks scripts
log "the core's tests (and search_recordings' time parsing, which differs between 3.10 and 3.11)"
# The source tree on the path stands in for an install: the core needs nothing built.
PYTHONPATH="$ROOT/vljepa_ros${PYTHONPATH:+:$PYTHONPATH}" exec "$VENV/bin/python" -m pytest \
  vljepa_ros/test/runtime vljepa_ros/test/perception vljepa_ros/test/decoding vljepa_ros/test/index \
  vljepa_ros/test/tools/test_search_time.py -m "not slow" "$@"
