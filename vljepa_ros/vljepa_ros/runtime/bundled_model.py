"""Where the default model shipped with the package lives (installed share/ copy first, else the source tree).

Plain Python (no rclpy), so the decoder node, the evaluation tools and the replay tool agree on one lookup.
"""

from __future__ import annotations

from pathlib import Path

from vljepa_ros.runtime.package_data import package_file

BUNDLED_MANIFEST = Path("models") / "tinyworld" / "manifest.yaml"


def bundled_manifest_path() -> Path:
    """The bundled model's manifest.yaml (the path is returned even when the file does not exist yet)."""
    return package_file(BUNDLED_MANIFEST)
