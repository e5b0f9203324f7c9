"""Tiny world generator: determinism from the seed, ground truth consistent with what is drawn, vocabulary."""

from collections import Counter

import numpy as np
import pytest

from vljepa_ros.tiny_world.clips import (
    CAPTION_PRESERVING_KINDS,
    clip_rng,
    sample_scene_clip,
    sample_transition_clip,
)
from vljepa_ros.tiny_world.render import layout, render
from vljepa_ros.tiny_world.stream import StreamConfig, generate_stream
from vljepa_ros.tiny_world.vocabulary import (
    ACTION_KINDS,
    COLOURS,
    SHAPES,
    action_bank,
    caption_bank,
    caption_text,
)
from vljepa_ros.tiny_world.world import (
    X_LIMIT,
    Scene,
    WorldObject,
    possible_actions,
    random_scene,
    sample_transition,
)

CAPTIONS = set(caption_bank())
ACTIONS = set(action_bank())
# The model sees the centre square that resize-short-side 73 + centre crop 64 leaves: 64/73 of the height.
VISIBLE_FRACTION = 64 / 73


def test_vocabulary_is_closed_compositional_and_unique():
    captions, actions = caption_bank(), action_bank()
    assert len(captions) == len(CAPTIONS) and len(actions) == len(ACTIONS)
    assert len(COLOURS) * len(SHAPES) >= 6 and len(ACTION_KINDS) >= 8
    assert "a red cube and a blue ball on the floor" in CAPTIONS
    assert "a red cube and a blue ball on the floor in the dark" in CAPTIONS
    assert "a green ball on a red cube" in CAPTIONS
    assert "an empty floor" in CAPTIONS
    assert {
        "the lights turn off",
        "the red cube pushes the blue ball",
        "the red cube turns green",
        "the yellow cone is put on the blue cube",
        "a green ball appears",
    } <= ACTIONS
    # One scene, one caption: the order objects are listed in does not depend on where they stand.
    assert caption_text([("blue", "ball"), ("red", "cube")], [], True) == caption_text(
        [("red", "cube"), ("blue", "ball")], [], True
    )


def test_random_scenes_and_transitions_stay_inside_the_vocabulary():
    rng = np.random.default_rng(11)
    kinds = Counter()
    for _ in range(300):
        scene = random_scene(rng)
        assert scene.caption in CAPTIONS
        assert len({o.kind for o in scene.objects}) == len(scene.objects)
        assert all(abs(o.x) <= X_LIMIT for o in scene.objects)
        transition = sample_transition(rng)
        kinds[transition.action.kind] += 1
        assert transition.text in ACTIONS
        assert transition.before.caption in CAPTIONS and transition.after.caption in CAPTIONS
        assert transition.before != transition.after
    assert set(kinds) == set(ACTION_KINDS), "uniform kind sampling must reach every action kind"
    assert min(kinds.values()) >= 10


def test_caption_changes_exactly_for_the_actions_that_change_what_is_there():
    rng = np.random.default_rng(5)
    for kind in ACTION_KINDS:
        for _ in range(10):
            transition = sample_transition(rng, kind=kind)
            assert transition.changes_caption == (kind not in CAPTION_PRESERVING_KINDS), transition.text


def test_every_possible_action_of_a_scene_is_in_the_action_bank():
    rng = np.random.default_rng(2)
    for _ in range(100):
        scene = random_scene(rng)
        for spec in possible_actions(scene):
            assert spec.text(scene) in ACTIONS


def test_clips_are_deterministic_from_seed_and_index():
    a = sample_scene_clip(clip_rng(3, 17, "scene"), width=96, height=72)
    b = sample_scene_clip(clip_rng(3, 17, "scene"), width=96, height=72)
    c = sample_scene_clip(clip_rng(4, 17, "scene"), width=96, height=72)
    assert a.caption == b.caption and np.array_equal(a.frames, b.frames)
    assert not np.array_equal(a.frames, c.frames)
    assert a.frames.shape == (8, 72, 96, 3) and a.frames.dtype == np.uint8

    t1 = sample_transition_clip(clip_rng(3, 17, "transition"), width=96, height=72)
    t2 = sample_transition_clip(clip_rng(3, 17, "transition"), width=96, height=72)
    assert t1.action == t2.action and t1.distractors == t2.distractors
    assert np.array_equal(t1.before_frames, t2.before_frames) and np.array_equal(t1.after_frames, t2.after_frames)
    assert t1.before_frames.shape == (4, 72, 96, 3)


def test_transition_clips_have_three_distinct_plausible_distractors():
    for index in range(60):
        clip = sample_transition_clip(clip_rng(0, index, "transition"), frames_per_state=2, width=64, height=48)
        assert len(clip.distractors) == 3 and len(set(clip.distractors)) == 3
        assert clip.action not in clip.distractors
        assert set(clip.distractors) <= ACTIONS
        possible = {s.text(clip.transition.before) for s in possible_actions(clip.transition.before)}
        assert set(clip.distractors) <= possible


def test_before_and_after_frames_differ_where_the_action_happened():
    for kind in ACTION_KINDS:
        clip = sample_transition_clip(np.random.default_rng(7), frames_per_state=1, width=160, height=120, kind=kind)
        diff = np.abs(clip.before_frames[0].astype(int) - clip.after_frames[0].astype(int)).max(axis=2)
        assert (diff > 40).sum() > 20, f"{kind}: the action left no visible change"


def test_objects_are_drawn_inside_the_centre_crop_the_model_sees():
    width, height = 320, 240
    empty = render(layout(Scene(())), width, height)
    half_visible = VISIBLE_FRACTION * height / 2
    for x in (-X_LIMIT, X_LIMIT):
        for shape in SHAPES:
            scene = Scene((WorldObject(0, "yellow", shape, x, scale=1.6),))
            drawn = np.abs(render(layout(scene), width, height).astype(int) - empty.astype(int)).max(axis=2) > 10
            rows, cols = np.nonzero(drawn)
            assert cols.size > 0
            assert cols.min() >= width / 2 - half_visible and cols.max() <= width / 2 + half_visible
            assert rows.min() >= height / 2 - half_visible and rows.max() <= height / 2 + half_visible


def test_lights_off_darkens_the_frame_and_keeps_colours_apart():
    scene = Scene((WorldObject(0, "red", "cube", -0.15, 1.0), WorldObject(1, "green", "ball", 0.15, 1.0)))
    lit = render(layout(scene), 160, 120)
    dark = render(layout(Scene(scene.objects, lights_on=False)), 160, 120)
    assert dark.mean() < 0.6 * lit.mean()
    red_pixel, green_pixel = dark[75, 80 - 18], dark[75, 80 + 18]
    assert red_pixel[0] > red_pixel[1] + 20 and green_pixel[1] > green_pixel[0] + 20


def test_stream_is_deterministic_and_its_ground_truth_is_consistent():
    config = StreamConfig(seed=9, duration_s=60.0, fps=5.0, width=96, height=72)
    stream, again = generate_stream(config), generate_stream(config)
    truth = stream.ground_truth()
    assert truth == again.ground_truth()
    for index in (0, 77, config.frame_count - 1):
        assert np.array_equal(stream.frame(index), again.frame(index))
    other = generate_stream(StreamConfig(seed=10, duration_s=60.0, fps=5.0, width=96, height=72))
    assert other.ground_truth()["events"] != truth["events"]

    assert truth["frame_count"] == 300 and len(truth["events"]) >= 5
    events = truth["events"]
    assert all(a["end_s"] <= b["start_s"] for a, b in zip(events, events[1:]))
    assert {e["action"] for e in events} <= ACTIONS
    segments = truth["segments"]
    assert segments[0]["start_s"] == 0.0 and segments[-1]["end_s"] == config.duration_s
    assert all(a["end_s"] == b["start_s"] and a["caption"] != b["caption"] for a, b in zip(segments, segments[1:]))
    assert {s["caption"] for s in segments} <= CAPTIONS
    assert truth["change_times_s"] == [s["start_s"] for s in segments[1:]]
    changing = [e for e in events if e["changes_caption"]]
    assert len(changing) == len(segments) - 1
    for event, before, after in zip(changing, segments, segments[1:]):
        assert event["caption_before"] == before["caption"] and event["caption_after"] == after["caption"]
    assert any(not e["changes_caption"] for e in events), "streams mix in caption-preserving actions"


def test_stream_frames_follow_the_timeline():
    stream = generate_stream(StreamConfig(seed=4, duration_s=40.0, fps=4.0, width=96, height=72))
    event = next(e for e in stream.timeline.events if e.transition.changes_caption)
    before_index = int(np.floor(event.start_s * 4)) - 1
    after_index = int(np.ceil(event.end_s * 4)) + 1
    before, after = stream.frame(before_index), stream.frame(after_index)
    clean_before = render(layout(event.transition.before), 96, 72)
    clean_after = render(layout(event.transition.after), 96, 72)
    # Frames equal the clean render of the settled state up to the sensor noise.
    assert np.abs(before.astype(int) - clean_before.astype(int)).max() <= 4
    assert np.abs(after.astype(int) - clean_after.astype(int)).max() <= 4
    assert stream.timeline.scene_at(event.start_s).caption == event.transition.before.caption
    assert stream.timeline.scene_at(event.end_s).caption == event.transition.after.caption
    assert stream.stamp_ns(4) - stream.stamp_ns(0) == 1_000_000_000


@pytest.mark.parametrize(
    "field,value", [("duration_s", 0.0), ("fps", -1.0), ("width", 8), ("caption_change_probability", 1.5)]
)
def test_stream_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field.split("_")[0]):
        StreamConfig(**{field: value})
