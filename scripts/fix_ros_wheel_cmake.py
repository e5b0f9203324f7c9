"""Point the ROS wheels' exported CMake files at this interpreter's include directories.

The PyPI ROS wheels were built under /opt/python/cp311-cp311 and their *Export.cmake files name that
machine's Python and numpy include folders; CMake refuses to configure against imported targets whose
include paths do not exist. Their Fast DDS target also links the build machine's /usr/lib64/libtinyxml2.so,
which the wheel vendors (libfastdds loads its own copy through its RPATH), so a C++ program linking rcl fails
with "No rule to make target '/usr/lib64/libtinyxml2.so'"; that entry is dropped when the file is absent.
Rewriting them is idempotent and must be redone after installing any further ros-* interface wheel.
"""

import re
import sys
import sysconfig
from pathlib import Path

import numpy

BUILD_PREFIX = "/opt/python/cp311-cp311"
BUILD_TINYXML2 = "/usr/lib64/libtinyxml2.so"


def main() -> int:
    share = Path(sys.prefix) / "share"
    numpy_include = numpy.get_include()
    python_include = sysconfig.get_paths()["include"]
    pattern = re.compile(
        re.escape(BUILD_PREFIX) + r"(/include/python3\.\d+|/lib/python3\.\d+/site-packages/numpy/_core/include)"
    )

    def replace(match: re.Match) -> str:
        return python_include if match.group(1).startswith("/include") else numpy_include

    drop_tinyxml2 = not Path(BUILD_TINYXML2).exists()
    changed = 0
    for path in share.rglob("*.cmake"):
        text = path.read_text()
        fixed = pattern.sub(replace, text) if BUILD_PREFIX in text else text
        if drop_tinyxml2:
            fixed = fixed.replace(f"{BUILD_TINYXML2};", "")
        if fixed != text:
            path.write_text(fixed)
            changed += 1
    print(f"fix_ros_wheel_cmake: rewrote {changed} CMake file(s) under {share}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
