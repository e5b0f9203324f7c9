"""The tiny-world ground truth stored beside a generated bag, as the report draws it.

Shared by the replay tool and the demo: both mark the true scene changes on their report timelines.
"""

from __future__ import annotations

import json
from pathlib import Path

from vljepa_ros.tiny_world.bag_writer import GROUND_TRUTH_FILE
from vljepa_ros.tools.report import TruthChange


def load_truth(bag: Path) -> dict | None:
    """The tiny-world ground truth stored beside a generated bag, or None for other bags."""
    file = Path(bag) / GROUND_TRUTH_FILE
    return json.loads(file.read_text()) if file.is_file() else None


def truth_changes(truth: dict | None, camera_topic: str) -> list[TruthChange]:
    """Report TruthChange list (one per caption segment after the first) for the camera on `camera_topic`."""
    if not truth or truth.get("image_topic") != camera_topic:
        return []
    return [TruthChange(int(s["start_ns"]), s["caption"]) for s in truth["segments"][1:]]
