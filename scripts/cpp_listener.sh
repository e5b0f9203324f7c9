#!/usr/bin/env bash
# Builds examples/embedding_listener_cpp (a C++ consumer of vljepa_msgs/Embedding, written against rcl) against
# this checkout's virtual environment and runs it with the shipped DDS transport; arguments go to the program
# (--topic, --count, --timeout, --best-effort). On a robot with ROS 2 installed, colcon builds the example with
# the workspace instead: `ros2 run vljepa_embedding_listener embedding_listener`.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=ros_distro.sh
. "$ROOT/scripts/ros_distro.sh"
PY="$VENV/bin/python"
[ -x "$PY" ] || { echo "cpp_listener: no virtual environment at $VENV (run scripts/setup.sh)" >&2; exit 2; }
# The ROS wheels' Python start-up sets LD_LIBRARY_PATH to their vendored libraries; the PyPI librcl also names
# the Python message libraries, so a C++ program linking it links libpython as well.
read -r LIBPYTHON_DIR LIBPYTHON WHEEL_LIBRARY_PATH < <("$PY" -c '
import os, sysconfig
print(sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME"), os.environ.get("LD_LIBRARY_PATH", ""))')
if [ ! -e "$LIBPYTHON_DIR/$LIBPYTHON" ]; then
  echo "cpp_listener: $LIBPYTHON_DIR/$LIBPYTHON missing: the PyPI rcl needs a shared-library Python" >&2
  exit 2
fi
build="$ROOT/build/$ROS_DISTRO/embedding_listener"
mkdir -p "$build"
if [ ! -f "$build/CMakeCache.txt" ]; then
  # --as-needed keeps the wheels' extra link interfaces out of the program; their libraries resolve their own
  # dependencies at run time, which the linker cannot see (hence --allow-shlib-undefined).
  AMENT_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH" cmake -S "$ROOT/examples/embedding_listener_cpp" -B "$build" \
    -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$PY" \
    -DCMAKE_EXE_LINKER_FLAGS="-Wl,--as-needed -Wl,--allow-shlib-undefined" \
    -DCMAKE_CXX_STANDARD_LIBRARIES="-Wl,--no-as-needed $LIBPYTHON_DIR/$LIBPYTHON -Wl,-rpath,$LIBPYTHON_DIR" \
    >"$build/build.log" 2>&1 || { tail -20 "$build/build.log" >&2; rm -f "$build/CMakeCache.txt"; exit 2; }
fi
cmake --build "$build" -j"$(nproc)" >>"$build/build.log" 2>&1 || { tail -20 "$build/build.log" >&2; exit 2; }
# shellcheck source=transport_env.sh
. "$ROOT/scripts/transport_env.sh"
export LD_LIBRARY_PATH="$WHEEL_LIBRARY_PATH"
exec "$build/embedding_listener" "$@"
