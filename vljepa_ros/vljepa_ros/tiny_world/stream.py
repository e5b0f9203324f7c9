"""Long tiny-world streams: a timeline of actions, its frames, and the ground truth of what happens when.

The ground truth lists every event (action, start/end) and the caption segments: the times at which the
scene's meaning (its caption) changes are the midpoints of caption-changing events. Actions that keep the
caption (moving, pushing, growing...) are mixed in, as a change detector must not fire on them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from vljepa_ros.tiny_world.timeline import Event, Timeline
from vljepa_ros.tiny_world.world import Scene, Transition, apply_action, possible_actions, random_scene

DEFAULT_START_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z: stamps are reproducible, not wall clock
NS = 1_000_000_000


@dataclass(frozen=True)
class StreamConfig:
    """Shape of a generated stream; validated on construction."""

    seed: int = 0
    duration_s: float = 90.0
    fps: float = 10.0
    width: int = 320
    height: int = 240
    event_duration_s: float = 1.0
    gap_range_s: tuple[float, float] = (4.0, 9.0)
    caption_change_probability: float = 0.75
    start_ns: int = DEFAULT_START_NS

    def __post_init__(self):
        if self.duration_s <= 0:
            raise ValueError(f"duration_s must be > 0, got {self.duration_s}")
        if self.fps <= 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if self.width < 32 or self.height < 32:
            raise ValueError(f"width and height must be >= 32, got {self.width}x{self.height}")
        if self.event_duration_s <= 0:
            raise ValueError(f"event_duration_s must be > 0, got {self.event_duration_s}")
        if not 0 < self.gap_range_s[0] <= self.gap_range_s[1]:
            raise ValueError(f"gap_range_s must be 0 < low <= high, got {self.gap_range_s}")
        if not 0 <= self.caption_change_probability <= 1:
            raise ValueError(f"caption_change_probability must be in [0, 1], got {self.caption_change_probability}")

    @property
    def frame_count(self) -> int:
        """Number of frames in the stream."""
        return int(np.floor(self.duration_s * self.fps + 1e-9))


@dataclass(frozen=True)
class Stream:
    """A generated stream: its config and timeline; frames are rendered on demand."""

    config: StreamConfig
    timeline: Timeline

    def frame_time_s(self, index: int) -> float:
        """Seconds from the stream start of frame `index`."""
        return index / self.config.fps

    def stamp_ns(self, index: int) -> int:
        """Header stamp of frame `index` (integer nanoseconds)."""
        return self.config.start_ns + int(round(index * NS / self.config.fps))

    def frame(self, index: int) -> np.ndarray:
        """RGB uint8 frame `index` (noise seeded per frame, so any frame can be rendered alone)."""
        if not 0 <= index < self.config.frame_count:
            raise IndexError(f"frame {index} outside 0..{self.config.frame_count - 1}")
        cfg = self.config
        noise_seed = int(np.random.SeedSequence([cfg.seed, 7, index]).generate_state(1)[0])
        return self.timeline.render_at(self.frame_time_s(index), cfg.width, cfg.height, noise_seed)

    def frames(self) -> Iterator[tuple[int, np.ndarray]]:
        """(stamp_ns, frame) for every frame in order."""
        for index in range(self.config.frame_count):
            yield self.stamp_ns(index), self.frame(index)

    def ground_truth(self) -> dict:
        """JSON-ready ground truth: events, caption segments and the change times (seconds and stamps)."""
        cfg = self.config
        events = [_event_record(e, cfg.start_ns) for e in self.timeline.events]
        changes = [e for e in self.timeline.events if e.transition.changes_caption]
        bounds = [0.0] + [e.mid_s for e in changes] + [cfg.duration_s]
        captions = [self.timeline.initial.caption] + [e.transition.after.caption for e in changes]
        segments = [
            {
                "start_s": start,
                "end_s": end,
                "start_ns": _ns(start, cfg.start_ns),
                "end_ns": _ns(end, cfg.start_ns),
                "caption": caption,
            }
            for start, end, caption in zip(bounds[:-1], bounds[1:], captions)
        ]
        return {
            "format": "tiny_world_stream/1",
            "seed": cfg.seed,
            "duration_s": cfg.duration_s,
            "fps": cfg.fps,
            "width": cfg.width,
            "height": cfg.height,
            "frame_count": cfg.frame_count,
            "start_ns": cfg.start_ns,
            "events": events,
            "segments": segments,
            "change_times_s": [e.mid_s for e in changes],
            "change_stamps_ns": [_ns(e.mid_s, cfg.start_ns) for e in changes],
        }


def _ns(t_s: float, start_ns: int) -> int:
    return start_ns + int(round(t_s * NS))


def _event_record(event: Event, start_ns: int) -> dict:
    transition = event.transition
    return {
        "start_s": event.start_s,
        "end_s": event.end_s,
        "mid_s": event.mid_s,
        "start_ns": _ns(event.start_s, start_ns),
        "end_ns": _ns(event.end_s, start_ns),
        "kind": transition.action.kind,
        "action": transition.text,
        "changes_caption": transition.changes_caption,
        "caption_before": transition.before.caption,
        "caption_after": transition.after.caption,
    }


def generate_stream(config: StreamConfig) -> Stream:
    """The stream `config` describes; the same config always gives the same stream."""
    rng = np.random.default_rng([config.seed, 3])
    initial = scene = random_scene(rng, n_objects=int(rng.integers(1, 3)), stack_probability=0.0)
    events: list[Event] = []
    t = float(rng.uniform(*config.gap_range_s)) / 2
    while t + config.event_duration_s < config.duration_s:
        transition = _next_transition(rng, scene, config.caption_change_probability)
        events.append(Event(t, t + config.event_duration_s, transition))
        scene = transition.after
        t += config.event_duration_s + float(rng.uniform(*config.gap_range_s))
    return Stream(config, Timeline(initial, tuple(events)))


def _next_transition(
    rng: np.random.Generator, scene: Scene, caption_change_probability: float, tries: int = 100
) -> Transition:
    """A random applicable action, kind first (so kinds with many variants do not crowd out the others);
    it changes the caption with the given probability whenever the scene allows both."""
    want_change = rng.random() < caption_change_probability
    fallback = None
    for _ in range(tries):
        specs = [s for s in possible_actions(scene) if s.kind != "fall"]
        kinds = sorted({s.kind for s in specs})
        kind = kinds[int(rng.integers(len(kinds)))]
        of_kind = [s for s in specs if s.kind == kind]
        spec = of_kind[int(rng.integers(len(of_kind)))]
        after = apply_action(scene, spec, rng)
        if after is None:
            continue
        transition = Transition(scene, after, spec, spec.text(scene))
        if transition.changes_caption == want_change:
            return transition
        fallback = fallback or transition
    if fallback is None:
        raise RuntimeError("no applicable action found for the stream")
    return fallback
