"""Antialiased bilinear resizing without torch: the resize open-vljepa and V-JEPA 2 were trained with.

torch's `interpolate(mode="bilinear", antialias=True, align_corners=False)` (and torchvision's Resize with
antialias, as PIL) resamples each axis separately with a triangle filter whose support grows with the
downscale factor: output pixel i of an axis scaled from `n_in` to `n_out` (scale s = n_in / n_out) is centred
at s * (i + 0.5) in input coordinates and weighs input pixel j by max(0, 1 - |j + 0.5 - centre| / max(s, 1)),
over the inputs within max(s, 1) of the centre, the weights normalised to sum to one. Upscaling (s < 1) keeps
the support of plain bilinear. OpenCV's INTER_LINEAR always blends two pixels, so downscaled frames alias.

Only the pixels of the centre crop are computed, from the input columns the crop's column taps read.
"""

from __future__ import annotations

import numpy as np

# Most bytes of gathered input rows held at once (a 4096-wide frame downscaled 16x has 33 taps per row).
GATHER_BYTES = 16 * 2**20


def axis_taps(n_in: int, n_out: int, start: int = 0, count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(index, weight), each (count, K): the K input pixels output pixels start..start+count-1 blend, and their
    normalised float32 weights (padding taps have weight 0 and a valid index)."""
    count = n_out - start if count is None else count
    scale = n_in / n_out
    support = max(scale, 1.0)  # the triangle's half-width in input pixels
    centre = scale * (np.arange(start, start + count, dtype=np.float64) + 0.5)
    low = np.maximum(np.floor(centre - support + 0.5), 0).astype(np.int64)
    high = np.minimum(np.floor(centre + support + 0.5), n_in).astype(np.int64)
    taps = int((high - low).max())
    index = low[:, None] + np.arange(taps)
    weight = np.clip(1.0 - np.abs((index + 0.5 - centre[:, None]) / support), 0.0, None)
    weight[index >= high[:, None]] = 0.0
    weight /= weight.sum(axis=1, keepdims=True)
    return np.minimum(index, n_in - 1), weight.astype(np.float32)


def axis_matrix(n_in: int, n_out: int, start: int = 0, count: int | None = None) -> np.ndarray:
    """The same resampling as a dense (count, n_in) float32 matrix (for graphs: out = M @ in)."""
    index, weight = axis_taps(n_in, n_out, start, count)
    matrix = np.zeros((index.shape[0], n_in), dtype=np.float32)
    np.add.at(matrix, (np.arange(index.shape[0])[:, None], index), weight)
    return matrix


def _resample_rows(x: np.ndarray, index: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """(n, m) -> (count, m) float32: each output row the weighted sum of its K input rows, as one batched
    (1, K) @ (K, m) product per row, in blocks of rows so the gathered rows stay under GATHER_BYTES."""
    count, taps = index.shape
    rows_per_block = max(1, GATHER_BYTES // max(1, taps * x.shape[1] * 4))
    out = np.empty((count, x.shape[1]), dtype=np.float32)
    for start in range(0, count, rows_per_block):
        block = slice(start, start + rows_per_block)
        gathered = x[index[block]].astype(np.float32, copy=False)  # (rows, K, m)
        out[block] = np.matmul(weight[block, None, :], gathered)[:, 0]
    return out


def resize_crop_antialiased(
    frame: np.ndarray, size: tuple[int, int], top: int, left: int, crop: tuple[int, int]
) -> np.ndarray:
    """The (crop_h, crop_w) window at (top, left) of ``frame`` (H, W, C) resized to ``size`` = (h, w) with
    antialiased bilinear filtering, as float32 in the frame's units (0..255 for uint8), not rounded.

    Rows first, on the input columns the crop's column taps read; then columns, as rows of the transposed
    result (whole-row gathers and batched products: about 3x faster than per-tap gathers, docs/benchmarks.md).
    """
    height, width, channels = frame.shape
    rows, row_w = axis_taps(height, size[0], top, crop[0])
    cols, col_w = axis_taps(width, size[1], left, crop[1])
    first, last = int(cols.min()), int(cols.max()) + 1
    down = _resample_rows(frame[:, first:last].reshape(height, -1), rows, row_w)
    down = down.reshape(crop[0], last - first, channels).transpose(1, 0, 2).reshape(last - first, -1)
    across = _resample_rows(down, cols - first, col_w)
    return across.reshape(crop[1], crop[0], channels).transpose(1, 0, 2)
