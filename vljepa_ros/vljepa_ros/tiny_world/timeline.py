"""A scene evolving over time: an initial state and timed actions, rendered frame by frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vljepa_ros.tiny_world.render import FramePose, blend_poses, layout, render
from vljepa_ros.tiny_world.world import Scene, Transition


@dataclass(frozen=True)
class Event:
    """One action happening between `start_s` and `end_s` (seconds from the timeline's start)."""

    start_s: float
    end_s: float
    transition: Transition

    @property
    def mid_s(self) -> float:
        """The instant the state counts as changed (its caption switches here)."""
        return (self.start_s + self.end_s) / 2


@dataclass(frozen=True)
class Timeline:
    """An initial scene and non-overlapping events in time order, each starting from the previous state."""

    initial: Scene
    events: tuple[Event, ...] = ()

    def __post_init__(self):
        state, last_end = self.initial, float("-inf")
        for event in self.events:
            if event.start_s < last_end or event.end_s <= event.start_s:
                raise ValueError(f"events must not overlap and must have positive length: {event}")
            if event.transition.before != state:
                raise ValueError(f"event at {event.start_s:.2f} s does not start from the previous state")
            state, last_end = event.transition.after, event.end_s

    def scene_at(self, t_s: float) -> Scene:
        """The settled state at time t (during an event: the state before it until its midpoint)."""
        scene = self.initial
        for event in self.events:
            if t_s >= event.mid_s:
                scene = event.transition.after
        return scene

    def pose_at(self, t_s: float) -> FramePose:
        """What the frame at time t shows, blending the states of an event in progress."""
        scene = self.initial
        for event in self.events:
            if t_s < event.start_s:
                break
            if t_s < event.end_s:
                alpha = (t_s - event.start_s) / (event.end_s - event.start_s)
                smooth = alpha * alpha * (3 - 2 * alpha)
                return blend_poses(layout(event.transition.before), layout(event.transition.after), smooth)
            scene = event.transition.after
        return layout(scene)

    def render_at(self, t_s: float, width: int, height: int, noise_seed: int | None) -> np.ndarray:
        """RGB uint8 frame at time t; `noise_seed` makes the sensor noise reproducible per frame."""
        rng = None if noise_seed is None else np.random.default_rng(noise_seed)
        return render(self.pose_at(t_s), width, height, rng)
