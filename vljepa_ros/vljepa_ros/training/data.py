"""Labelled model inputs from the tiny world, through the runtime's own preprocessing (no torch here).

Scene clips feed the caption query; transition clips are laid out as the runtime's `transition_clip` does
(first half of the clip the state before, second half the state after) and feed the transition query. Each
clip is rendered at a frame size drawn from `FRAME_SIZES`, so the model learns the world at the resolutions
it will meet (320x240 streams as well as smaller cameras) and `preprocess_clip` does the same resize and crop
as at run time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vljepa_ros.runtime.manifest import ClipSpec
from vljepa_ros.runtime.preprocessing import preprocess_clip
from vljepa_ros.tiny_world.clips import clip_rng, sample_scene_clip, sample_transition_clip

FRAME_SIZES: tuple[tuple[int, int], ...] = ((320, 240), (160, 120), (128, 96))
FRAME_SIZE_WEIGHTS = (0.2, 0.4, 0.4)


@dataclass(frozen=True)
class LabelledClips:
    """Encoder inputs (B, 3, T, S, S) float32 and the ground-truth text of each clip."""

    clips: np.ndarray
    texts: tuple[str, ...]


@dataclass(frozen=True)
class TransitionSet:
    """Transition inputs, their true action texts and three distractor texts each (4-way evaluation)."""

    clips: np.ndarray
    actions: tuple[str, ...]
    distractors: tuple[tuple[str, str, str], ...]


def _frame_size(rng: np.random.Generator, fixed: tuple[int, int] | None) -> tuple[int, int]:
    if fixed is not None:
        return fixed
    return FRAME_SIZES[int(rng.choice(len(FRAME_SIZES), p=FRAME_SIZE_WEIGHTS))]


def scene_inputs(
    seed: int, start: int, count: int, clip: ClipSpec, frame_size: tuple[int, int] | None = None
) -> LabelledClips:
    """Scene clips `start .. start+count-1` of data set `seed`, preprocessed, with their captions."""
    clips, texts = [], []
    for index in range(start, start + count):
        rng = clip_rng(seed, index, "scene")
        width, height = _frame_size(rng, frame_size)
        sample = sample_scene_clip(rng, frames=clip.frames, rate_hz=clip.frame_rate_hz, width=width, height=height)
        clips.append(preprocess_clip(sample.frames, clip))
        texts.append(sample.caption)
    return LabelledClips(np.stack(clips), tuple(texts))


def transition_inputs(
    seed: int, start: int, count: int, clip: ClipSpec, frame_size: tuple[int, int] | None = None
) -> TransitionSet:
    """Transition clips `start .. start+count-1` of data set `seed`, as before-half + after-half inputs."""
    if clip.frames % 2 or (clip.frames // 2) % clip.tubelet:
        raise ValueError(f"clip.frames={clip.frames} cannot be split into two halves of whole tubelets")
    half = clip.frames // 2
    clips, actions, distractors = [], [], []
    for index in range(start, start + count):
        rng = clip_rng(seed, index, "transition")
        width, height = _frame_size(rng, frame_size)
        sample = sample_transition_clip(rng, frames_per_state=half, width=width, height=height)
        clips.append(preprocess_clip(np.concatenate([sample.before_frames, sample.after_frames]), clip))
        actions.append(sample.action)
        distractors.append(sample.distractors)
    return TransitionSet(np.stack(clips), tuple(actions), tuple(distractors))
