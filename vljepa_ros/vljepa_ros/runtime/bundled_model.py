"""Where the default model shipped with the package lives (installed share/ copy first, else the source tree).

Plain Python (no rclpy), so the decoder node, the evaluation tools and the replay tool agree on one lookup.
"""

from __future__ import annotations

from pathlib import Path

from vljepa_ros.runtime.package_data import package_file

BUNDLED_MANIFEST = Path("models") / "tinyworld" / "manifest.yaml"
BUNDLED_WORLD_MODEL = Path("models") / "tinyworld_ac" / "world_model.yaml"  # the push world's AC predictor


def bundled_manifest_path() -> Path:
    """The bundled model's manifest.yaml (the path is returned even when the file does not exist yet)."""
    return package_file(BUNDLED_MANIFEST)


def bundled_world_model_path() -> Path:
    """The bundled world model's world_model.yaml (models/tinyworld_ac, trained on the tiny push world)."""
    return package_file(BUNDLED_WORLD_MODEL)
