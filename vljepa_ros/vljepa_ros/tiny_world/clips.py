"""Short labelled clips for training and evaluation: scene clips with a caption, transition clips with an action.

A scene clip shows one scene for `frames` frames at `rate_hz`, sometimes with an action in progress that does
not change the caption (moving, pushing, growing...), so the caption must not depend on where things are.
A transition clip is the WorldPrediction-style pair: frames of the initial state, then frames of the final
state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vljepa_ros.tiny_world.render import layout, render
from vljepa_ros.tiny_world.timeline import Event, Timeline
from vljepa_ros.tiny_world.world import (
    Scene,
    Transition,
    apply_action,
    distractor_actions,
    lift_object,
    possible_actions,
    random_scene,
    sample_transition,
)

# Actions that leave the caption as it is: they may happen inside a scene clip.
CAPTION_PRESERVING_KINDS = ("move_left", "move_right", "push", "grow", "shrink", "fall")


@dataclass(frozen=True)
class SceneClip:
    """Frames (T, H, W, 3) uint8 of one scene and its caption."""

    frames: np.ndarray
    caption: str
    scene: Scene


@dataclass(frozen=True)
class TransitionClip:
    """Frames of the state before and after an action, the action's text and three plausible wrong ones."""

    before_frames: np.ndarray
    after_frames: np.ndarray
    action: str
    kind: str
    distractors: tuple[str, ...]
    transition: Transition


def sample_scene_clip(
    rng: np.random.Generator,
    frames: int = 8,
    rate_hz: float = 4.0,
    width: int = 320,
    height: int = 240,
    motion_probability: float = 0.5,
) -> SceneClip:
    """A random scene clip; with `motion_probability` a caption-preserving action happens during it."""
    _check_clip_args(frames, rate_hz, width, height)
    scene = random_scene(rng)
    timeline = Timeline(scene)
    if rng.random() < motion_probability:
        timeline = _with_motion(rng, scene, duration_s=frames / rate_hz) or timeline
    seeds = rng.integers(2**63, size=frames)
    clip = np.stack([timeline.render_at(i / rate_hz, width, height, int(seeds[i])) for i in range(frames)])
    return SceneClip(clip, timeline.initial.caption, timeline.initial)


def _with_motion(rng: np.random.Generator, scene: Scene, duration_s: float) -> Timeline | None:
    kind = CAPTION_PRESERVING_KINDS[int(rng.integers(len(CAPTION_PRESERVING_KINDS)))]
    start_scene = scene
    if kind == "fall":
        loose = scene.loose()
        if not loose:
            return None
        start_scene = lift_object(scene, loose[int(rng.integers(len(loose)))].oid, rng)
    specs = [s for s in possible_actions(start_scene) if s.kind == kind]
    if not specs:
        return None
    spec = specs[int(rng.integers(len(specs)))]
    after = apply_action(start_scene, spec, rng)
    if after is None:
        return None
    length = float(rng.uniform(0.5, 1.0)) * duration_s
    start = float(rng.uniform(0.0, duration_s - length))
    event = Event(start, start + length, Transition(start_scene, after, spec, spec.text(start_scene)))
    return Timeline(start_scene, (event,))


def sample_transition_clip(
    rng: np.random.Generator, frames_per_state: int = 4, width: int = 320, height: int = 240, kind: str | None = None
) -> TransitionClip:
    """A random transition as frames of the initial and the final state (each with its own sensor noise)."""
    _check_clip_args(frames_per_state, 1.0, width, height)
    transition = sample_transition(rng, kind=kind)
    distractors = tuple(distractor_actions(transition, rng))
    seeds = rng.integers(2**63, size=2 * frames_per_state)
    before, after = layout(transition.before), layout(transition.after)
    before_frames = np.stack(
        [render(before, width, height, np.random.default_rng(int(s))) for s in seeds[:frames_per_state]]
    )
    after_frames = np.stack(
        [render(after, width, height, np.random.default_rng(int(s))) for s in seeds[frames_per_state:]]
    )
    return TransitionClip(before_frames, after_frames, transition.text, transition.action.kind, distractors, transition)


def clip_rng(seed: int, index: int, stream: str) -> np.random.Generator:
    """The generator for clip `index` of data set `stream` ('scene' or 'transition') under `seed`.

    Every clip has its own generator, so clip i is the same whoever renders it and in whatever order.
    """
    tag = {"scene": 0, "transition": 1}[stream]
    return np.random.default_rng([seed, tag, index])


def _check_clip_args(frames: int, rate_hz: float, width: int, height: int) -> None:
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if rate_hz <= 0:
        raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
    if width < 32 or height < 32:
        raise ValueError(f"frame size must be at least 32x32, got {width}x{height}")
