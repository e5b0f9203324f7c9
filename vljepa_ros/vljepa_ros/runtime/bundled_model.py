"""Where the default model shipped with the package lives (installed share/ copy first, else the source tree).

Plain Python (no rclpy), so the decoder node, the evaluation tools and the replay tool agree on one lookup.
"""

from __future__ import annotations

from pathlib import Path

BUNDLED_MANIFEST = Path("models") / "tinyworld" / "manifest.yaml"


def bundled_manifest_path() -> Path:
    """The bundled model's manifest.yaml (the path is returned even when the file does not exist yet)."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            installed = Path(get_package_share_directory("vljepa_ros")) / BUNDLED_MANIFEST
            if installed.is_file():
                return installed
        except (PackageNotFoundError, OSError):
            pass
    except ImportError:
        pass
    return Path(__file__).resolve().parents[2] / BUNDLED_MANIFEST
