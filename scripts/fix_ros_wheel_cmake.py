"""Point the ROS wheels' exported CMake files at this interpreter's include directories.

The PyPI ROS wheels were built under /opt/python/cp311-cp311 and their *Export.cmake files name that
machine's Python and numpy include folders; CMake refuses to configure against imported targets whose
include paths do not exist. Rewriting them is idempotent and must be redone after installing any
further ros-* interface wheel.
"""

import re
import sys
import sysconfig
from pathlib import Path

import numpy

BUILD_PREFIX = "/opt/python/cp311-cp311"


def main() -> int:
    share = Path(sys.prefix) / "share"
    numpy_include = numpy.get_include()
    python_include = sysconfig.get_paths()["include"]
    pattern = re.compile(
        re.escape(BUILD_PREFIX) + r"(/include/python3\.\d+|/lib/python3\.\d+/site-packages/numpy/_core/include)"
    )

    def replace(match: re.Match) -> str:
        return python_include if match.group(1).startswith("/include") else numpy_include

    changed = 0
    for path in share.rglob("*.cmake"):
        text = path.read_text()
        if BUILD_PREFIX not in text:
            continue
        path.write_text(pattern.sub(replace, text))
        changed += 1
    print(f"fix_ros_wheel_cmake: rewrote {changed} CMake file(s) under {share}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
