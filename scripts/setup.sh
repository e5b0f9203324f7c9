#!/usr/bin/env bash
# Fresh Debian 12 / Python 3.11 machine -> .venv with ROS 2 Kilted (PyPI wheels), ONNX Runtime, the export and
# test tools, vljepa_msgs built into the venv and vljepa_ros installed (editable). `ROS_DISTRO=jazzy bash
# scripts/setup.sh` builds .venv-jazzy with ROS 2 Jazzy instead. Idempotent: a second run checks stamps and
# changes nothing.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=ros_distro.sh
. "$ROOT/scripts/ros_distro.sh"
PYTHON=${PYTHON:-python3}
log() { echo "[setup] $*"; }
# This workplace's pip config names an extra index that pip warns about once per package; hide only that line.
pip_install() {
  "$PY" -m pip install -q "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  return "${PIPESTATUS[0]}"
}

missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v g++ >/dev/null || missing+=(g++)
command -v make >/dev/null || missing+=(make)
"$PYTHON" -c "import venv, ensurepip" 2>/dev/null || missing+=(python3-venv)
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "[setup] missing ${missing[*]}: run 'sudo apt-get install ${missing[*]}' and retry" >&2
    exit 1
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
# One venv holds one distro: wheels of two distros in one site-packages would shadow each other.
venv_distro=$(cat "$VENV/.vljepa-distro" 2>/dev/null || echo "$ROS_DISTRO")
if [ "$venv_distro" != "$ROS_DISTRO" ]; then
  echo "[setup] $VENV holds ROS 2 $venv_distro, not $ROS_DISTRO: choose another VLJEPA_VENV" >&2
  exit 2
fi
echo "$ROS_DISTRO" > "$VENV/.vljepa-distro"

ros_list="$VENV/.vljepa-ros-requirements.txt"
ros_requirements > "$ros_list"
req_hash=$(cat "$ros_list" "$ROOT"/requirements/*.txt | sha256sum | cut -c1-16)
if [ "$(cat "$VENV/.vljepa-requirements" 2>/dev/null)" != "$req_hash" ]; then
  log "installing Python packages (ROS 2 ${ROS_DISTRO^} wheels, onnxruntime, torch CPU, test tools)"
  pip_install --upgrade pip
  # torch first and pinned: a later unpinned requirement would otherwise pull the multi-GB CUDA build.
  pip_install torch==2.13.0
  pip_install -r "$ros_list" -r "$ROOT/requirements/runtime.txt" -r "$ROOT/requirements/build.txt" \
    -r "$ROOT/requirements/dev.txt"
  rm -f "$VENV/.vljepa-msgs"
  echo "$req_hash" > "$VENV/.vljepa-requirements"
else
  log "Python packages up to date"
fi
# Every time (idempotent, 0.2 s): a venv set up before a fix was added gets it too.
"$PY" "$ROOT/scripts/fix_ros_wheel_cmake.py" >/dev/null

msgs_hash=$(cat "$ROOT"/vljepa_msgs/package.xml "$ROOT"/vljepa_msgs/CMakeLists.txt "$ROOT"/vljepa_msgs/msg/*.msg "$ROOT"/vljepa_msgs/action/*.action | sha256sum | cut -c1-16)
if [ "$(cat "$VENV/.vljepa-msgs" 2>/dev/null)" != "$msgs_hash" ]; then
  log "building vljepa_msgs into the venv"
  build="$ROOT/build/$ROS_DISTRO/vljepa_msgs"
  rm -rf "$build"; mkdir -p "$build"
  AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" PATH="$VENV/bin:$PATH" \
    cmake -S "$ROOT/vljepa_msgs" -B "$build" -DCMAKE_INSTALL_PREFIX="$VENV" -DBUILD_TESTING=OFF \
      -DPython3_EXECUTABLE="$PY" -DCMAKE_BUILD_TYPE=Release >"$build/setup.log" 2>&1 \
    && cmake --build "$build" -j"$(nproc)" >>"$build/setup.log" 2>&1 \
    && cmake --install "$build" >>"$build/setup.log" 2>&1 \
    || { echo "[setup] vljepa_msgs build failed; last lines of $build/setup.log:" >&2; tail -20 "$build/setup.log" >&2; exit 1; }
  echo "$msgs_hash" > "$VENV/.vljepa-msgs"
else
  log "vljepa_msgs up to date"
fi

if ! "$PY" -m pip show -q vljepa_ros >/dev/null 2>&1; then
  log "installing vljepa_ros (editable)"
  # compat mode puts the source folder on sys.path, so a run from the repository root (where ./vljepa_ros is
  # the ROS package folder, an implicit namespace package) still imports the real Python package.
  pip_install --no-deps --no-build-isolation -e "$ROOT/vljepa_ros" --config-settings editable_mode=compat
else
  log "vljepa_ros installed"
fi

"$PY" -c "from vljepa_msgs.msg import Embedding; import rclpy, onnxruntime; print('[setup] ready: ROS 2 $ROS_DISTRO rclpy, vljepa_msgs, onnxruntime', onnxruntime.__version__)"
