"""Properties of the antialiased resize that hold without a reference implementation (torch parity is in
test/export/test_antialias_resize.py, which needs the export side)."""

import numpy as np
import pytest

from vljepa_ros.runtime.antialias_resize import axis_matrix, axis_taps, resize_crop_antialiased


@pytest.mark.parametrize(("n_in", "n_out"), [(480, 256), (720, 256), (256, 256), (97, 40), (300, 77)])
def test_each_output_pixel_is_a_weighted_mean_of_nearby_inputs(n_in, n_out):
    matrix = axis_matrix(n_in, n_out)
    assert matrix.shape == (n_out, n_in)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-6)
    assert (matrix >= 0).all()
    index, weight = axis_taps(n_in, n_out)
    scale = n_in / n_out
    centres = scale * (np.arange(n_out) + 0.5)
    used = np.where(weight > 0, index, -1)
    # Taps reach no further than the triangle's half-width (scale when downscaling) from the output's centre.
    reach = np.abs(np.where(weight > 0, index + 0.5 - centres[:, None], 0)).max()
    assert reach <= max(scale, 1.0) + 1e-9
    assert (used < n_in).all()


def test_no_resize_returns_the_crop_and_a_constant_frame_stays_constant():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    same = resize_crop_antialiased(frame, (120, 160), 10, 20, (80, 100))  # size is the whole resized frame
    np.testing.assert_allclose(same, frame[10:90, 20:120].astype(np.float32), atol=1e-4)
    grey = np.full((480, 640, 3), 77, dtype=np.uint8)
    small = resize_crop_antialiased(grey, (256, 341), 0, 42, (256, 256))
    assert small.shape == (256, 256, 3)
    np.testing.assert_allclose(small, 77.0, atol=1e-3)


def test_downscaling_averages_away_a_pattern_that_point_sampling_would_alias():
    stripes = np.zeros((64, 64, 1), dtype=np.uint8)
    stripes[:, ::2] = 255  # one-pixel columns: a 2x point-sampling downscale would keep only one colour
    out = resize_crop_antialiased(stripes, (32, 32), 0, 0, (32, 32))
    np.testing.assert_allclose(out[:, 1:-1], 127.5, atol=1.0)
