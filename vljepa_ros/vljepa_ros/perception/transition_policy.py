"""Whether the pipeline computes world-state transitions for a batch: only when someone reads them.

A transition costs a second encoder clip (before frames, then after frames) and a second predictor call per
clip, as much again as the clip itself. The node supplies only "does ~/world_state_transition have a
subscriber"; this module decides. Visual states keep being recorded either way, so a subscriber that appears
later gets transitions at once, their look-back states taken from history.
"""

from __future__ import annotations

from vljepa_ros.perception.config import TRANSITIONS_ALWAYS


def transitions_wanted(mode: str, horizon_s: float, has_readers: bool) -> bool:
    """Compute transitions: enabled (horizon > 0) and either asked for always (``mode``) or read by someone now."""
    return horizon_s > 0 and (mode == TRANSITIONS_ALWAYS or has_readers)
