"""The debug image's drawing (pure function): what is drawn changes the pixels where it is drawn, and only there."""

from dataclasses import replace

import numpy as np
import pytest

from vljepa_ros.perception.debug_overlay import CHANGE_BAR_MAX, CHANGE_BAR_MIN, MIN_WIDTH, OverlayState, draw_overlay

from support.perception_fixtures import moving_frame

FULL = OverlayState(
    camera="front",
    caption="a red cube on the left of a blue ball",
    caption_score=0.81,
    caption_age_s=1.5,
    change_score=0.12,
    top_action="the red cube falls",
    top_action_score=0.66,
    input_hz=30.0,
    output_hz=4.0,
    latency_s=0.045,
    processing_s=0.012,
)


def frame(height=480, width=640):
    return moving_frame(0.5, height=height, width=width)


def changed_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.any(a != b, axis=(1, 2)))


def test_the_drawn_caption_changes_pixels_of_the_raw_frame_in_the_top_band_only():
    raw = frame()
    before = raw.copy()
    captioned = draw_overlay(raw, FULL)
    assert np.array_equal(raw, before), "the input frame (maybe a message buffer) was written to"
    assert captioned.shape == raw.shape and captioned.dtype == np.uint8
    # Drawing changed the frame; another caption changes the top band and nothing below it.
    assert np.count_nonzero(np.any(captioned != raw, axis=2)) > 1000
    other = draw_overlay(raw, replace(FULL, caption="an empty table"))
    rows = changed_rows(captioned, other)
    assert rows.size > 5 and rows.max() < raw.shape[0] // 4
    # Text pixels differ between the two captions, not only the dimmed band behind them.
    assert np.count_nonzero(np.any(captioned[: raw.shape[0] // 4] != other[: raw.shape[0] // 4], axis=2)) > 200


def test_the_frame_shows_through_outside_the_bands():
    raw = frame()
    drawn = draw_overlay(raw, FULL)
    middle = slice(raw.shape[0] // 3, 2 * raw.shape[0] // 3)
    assert np.array_equal(drawn[middle], raw[middle])


def test_change_score_transition_and_rates_are_drawn_in_the_bottom_band():
    raw = frame()
    drawn = draw_overlay(raw, FULL)
    for change in (
        {"change_score": 0.40},
        {"top_action": "the light turns off"},
        {"input_hz": 12.0},
        {"latency_s": 0.250},
        {"processing_s": 0.030},
    ):
        rows = changed_rows(drawn, draw_overlay(raw, replace(FULL, **change)))
        assert rows.size > 0, change
        assert rows.min() > 2 * raw.shape[0] // 3, change


def test_the_change_bar_grows_with_the_score_on_a_log_scale_and_clips_at_its_ends():
    raw = np.zeros((480, 640, 3), np.uint8)

    def bar_pixels(score):
        drawn = draw_overlay(raw, OverlayState(camera="c", change_score=score))
        return int(np.count_nonzero(np.all(drawn == (255, 170, 0), axis=2)))

    assert bar_pixels(None) == 0 and bar_pixels(0.0) == 0 and bar_pixels(CHANGE_BAR_MIN) == 0
    assert bar_pixels(float("nan")) == 0
    one, two, three = bar_pixels(1e-3), bar_pixels(1e-2), bar_pixels(1e-1)
    assert 0 < one < two < three < bar_pixels(CHANGE_BAR_MAX)
    # Each decade adds the same length (a tick's few pixels aside).
    assert abs((three - two) - (two - one)) <= 0.05 * (two - one)
    assert bar_pixels(CHANGE_BAR_MAX) == bar_pixels(2.0)


def test_unknown_state_is_drawn_as_placeholders_without_failing():
    drawn = draw_overlay(frame(), OverlayState(camera="front"))
    assert drawn.shape == (480, 640, 3)


def test_small_frames_are_scaled_up_and_large_ones_keep_their_size():
    small = draw_overlay(frame(96, 128), FULL)
    assert small.shape == (360, MIN_WIDTH, 3)
    large = draw_overlay(frame(1080, 1920), FULL)
    assert large.shape == (1080, 1920, 3)


def test_long_and_non_ascii_captions_stay_within_two_lines():
    raw = frame()
    long_caption = " ".join(["a red cube next to a blue ball"] * 20) + " Ünïcödé " + "x" * 300
    drawn = draw_overlay(raw, replace(FULL, caption=long_caption))
    two_lines = draw_overlay(raw, replace(FULL, caption="a\nb " * 2 + "x" * 80))
    assert changed_rows(drawn, raw).size > 0
    # The caption band is as tall for a huge caption as for a two-line one.
    assert np.array_equal(drawn[200:], two_lines[200:])


@pytest.mark.parametrize(
    "bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32), np.zeros((0, 4, 3), np.uint8)]
)
def test_anything_but_an_rgb_uint8_frame_is_refused(bad):
    with pytest.raises(ValueError, match="RGB uint8"):
        draw_overlay(bad, FULL)
