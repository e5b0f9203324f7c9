"""Preprocessing: V-JEPA 2 eval transform on RGB uint8 frames, checked against hand-computed values."""

import numpy as np
import pytest

from vljepa_ros.runtime.manifest import ClipSpec
from vljepa_ros.runtime.preprocessing import (
    MAX_CROP_VIEW_RATIO,
    crop_clip,
    crop_offsets,
    held_bytes,
    normalisation_constants,
    preprocess_clip,
    preprocess_image,
    resize_and_crop,
    resized_size,
    stack_frames,
)

CLIP = ClipSpec(
    frames=4,
    frame_rate_hz=4.0,
    tubelet=2,
    patch=8,
    crop_size=16,
    resize_short=18,
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
)


def test_resized_size_scales_short_side_and_truncates_long_side():
    assert resized_size(120, 160, 18) == (18, 24)
    assert resized_size(160, 120, 18) == (24, 18)
    assert resized_size(100, 333, 73) == (73, 243)  # 73*3.33 = 243.09 -> 243


def test_crop_offsets_centre():
    assert crop_offsets(18, 24, 16) == (1, 4)
    assert crop_offsets(16, 16, 16) == (0, 0)


def test_constant_colour_normalises_to_imagenet_formula():
    frame = np.empty((30, 40, 3), dtype=np.uint8)
    frame[:] = (10, 128, 250)
    out = preprocess_clip([frame] * 4, CLIP)
    assert out.shape == (3, 4, 16, 16) and out.dtype == np.float32
    for c, value in enumerate((10, 128, 250)):
        expected = (value / 255.0 - CLIP.mean[c]) / CLIP.std[c]
        np.testing.assert_allclose(out[c], expected, rtol=1e-5, atol=1e-5)


def test_crop_takes_the_centre_when_no_resize_is_needed():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (18, 24, 3), dtype=np.uint8)  # short side already resize_short
    np.testing.assert_array_equal(resize_and_crop(frame, CLIP), frame[1:17, 4:20])


def test_channel_and_time_layout():
    frames = [np.full((16, 16, 3), (t, 100 + t, 200 + t), dtype=np.uint8) for t in range(4)]
    clip = ClipSpec(**{**CLIP.__dict__, "resize_short": 16})
    out = preprocess_clip(frames, clip)
    for t in range(4):
        assert out[1, t, 5, 5] == pytest.approx(((100 + t) / 255 - clip.mean[1]) / clip.std[1], abs=1e-5)


def test_image_is_duplicated_across_frames():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    np.testing.assert_array_equal(preprocess_image(image, CLIP), preprocess_clip([image] * 4, CLIP))


def test_wrong_frame_count_is_rejected():
    frame = np.zeros((20, 20, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="clip needs 4 frames"):
        preprocess_clip([frame] * 3, CLIP)


@pytest.mark.parametrize(
    "bad", [np.zeros((20, 20, 3), np.float32), np.zeros((20, 20), np.uint8), np.zeros((20, 20, 4), np.uint8)]
)
def test_non_rgb_uint8_frames_are_rejected(bad):
    good = np.zeros((20, 20, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="frame 2: expected an RGB uint8"):
        preprocess_clip([good, good, bad, good], CLIP)


def test_stack_frames_for_fused_graph_keeps_uint8_and_resizes_odd_sizes():
    frames = [np.full((48, 64, 3), 7, np.uint8)] * 3 + [np.full((24, 32, 3), 9, np.uint8)]
    out = stack_frames(frames, CLIP, 48, 64)
    assert out.shape == (4, 48, 64, 3) and out.dtype == np.uint8
    assert np.all(out[:3] == 7) and np.all(out[3] == 9)


def test_crop_clip_is_the_uint8_crop_that_preprocess_clip_normalises():
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (30, 40, 3), dtype=np.uint8) for _ in range(4)]
    crops = crop_clip(frames, CLIP)
    assert crops.shape == (4, 16, 16, 3) and crops.dtype == np.uint8
    np.testing.assert_array_equal(crops[2], resize_and_crop(frames[2], CLIP))
    scale, offset = normalisation_constants(CLIP)
    np.testing.assert_array_equal(
        preprocess_clip(frames, CLIP), (crops.astype(np.float32) * scale + offset).transpose(3, 0, 1, 2)
    )
    with pytest.raises(ValueError, match="clip needs 4 frames"):
        crop_clip(frames[:3], CLIP)


def test_crop_of_a_much_larger_frame_is_copied_out():
    rng = np.random.default_rng(4)
    wide = rng.integers(0, 256, (18, 400, 3), dtype=np.uint8)  # short side already resize_short: no resize
    crop = resize_and_crop(wide, CLIP)
    np.testing.assert_array_equal(crop, wide[1:17, 192:208])
    assert not np.shares_memory(crop, wide) and crop.base is None and held_bytes(crop) == crop.nbytes


def test_crop_of_a_much_larger_resized_frame_does_not_keep_the_resized_frame():
    panorama = np.random.default_rng(5).integers(0, 256, (100, 4000, 3), dtype=np.uint8)
    crop = resize_and_crop(panorama, CLIP)  # resized to 18 x 720, then cropped to 16 x 16
    assert crop.shape == (16, 16, 3) and crop.base is None and held_bytes(crop) == 16 * 16 * 3


def test_crop_of_a_small_view_of_a_large_buffer_is_copied_out():
    big = np.random.default_rng(6).integers(0, 256, (1000, 1000, 3), dtype=np.uint8)
    frame = big[:18, :24]  # a small frame viewing a 3 MB buffer
    crop = resize_and_crop(frame, CLIP)
    np.testing.assert_array_equal(crop, frame[1:17, 4:20])
    assert not np.shares_memory(crop, big) and held_bytes(crop) == crop.nbytes


def test_crop_of_a_frame_at_most_twice_its_size_stays_a_view():
    frame = np.random.default_rng(7).integers(0, 256, (18, 24, 3), dtype=np.uint8)
    crop = resize_and_crop(frame, CLIP)
    assert np.shares_memory(crop, frame) and held_bytes(crop) == frame.nbytes <= MAX_CROP_VIEW_RATIO * crop.nbytes
    resized = resize_and_crop(np.zeros((36, 48, 3), np.uint8), CLIP)  # resized to 18 x 24: a view of that
    assert resized.base is not None and held_bytes(resized) == 18 * 24 * 3


def test_held_bytes_follows_views_to_the_buffer_they_keep_alive():
    data = bytearray(1200)
    view = np.frombuffer(data, np.uint8).reshape(20, 20, 3)[2:4, 2:4]
    assert held_bytes(view) == 1200
    assert held_bytes(np.zeros((5, 5), np.uint8)) == 25
    assert held_bytes(np.zeros((5, 5), np.uint8)[1:2]) == 25
