"""Files shipped with the package (the bundled model, config/): the installed share/vljepa_ros copy first, else
the source tree's. One lookup, so nodes, tools, tests and benchmarks agree on which copy they read."""

from __future__ import annotations

from pathlib import Path

try:
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
except ImportError:  # ament_index_python is optional: without it only the source tree is searched
    get_package_share_directory = None

PACKAGE = "vljepa_ros"
SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the ament package folder holding models/ and config/


def package_file(relative: str | Path) -> Path:
    """share/vljepa_ros/`relative` when an installed copy exists, else the source tree's path (which is
    returned even when it does not exist, so the caller's error names it)."""
    if get_package_share_directory is not None:
        try:
            installed = Path(get_package_share_directory(PACKAGE)) / relative
            if installed.exists():
                return installed
        except (PackageNotFoundError, OSError):  # OSError: AMENT_PREFIX_PATH unset (not installed with colcon)
            pass
    return SOURCE_ROOT / relative
