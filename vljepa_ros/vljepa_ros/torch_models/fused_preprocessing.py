"""Encoder with the preprocessing inside the graph: uint8 frames (B, T, H, W, 3) in, tokens out.

The steps equal `vljepa_ros.runtime.preprocessing` (short-side bilinear resize, centre crop, /255, mean/std) so a
GPU provider does them and the CPU side only copies frames. H and W are fixed per export (the camera size).
Bilinear resizing here works in float; OpenCV rounds its uint8 result, so the two paths differ by up to
about half a grey level. A model trained with antialiasing (`clip.resize_antialias`) resizes and crops in the
graph as two matrix products with the crop's rows of the triangle-filter matrices the host path uses
(runtime/antialias_resize.axis_matrix): the same weights, so the graph matches the host's float crop, and
ONNX Resize's antialias support is not needed from any provider.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vljepa_ros.runtime.antialias_resize import axis_matrix
from vljepa_ros.runtime.manifest import ClipSpec
from vljepa_ros.runtime.preprocessing import crop_offsets, resized_size
from vljepa_ros.torch_models.vjepa2_encoder import VJepa2Encoder


class FusedPreprocessingEncoder(nn.Module):
    """(B, T, H, W, 3) uint8 RGB frames -> (B, N, D) encoder tokens."""

    def __init__(self, encoder: VJepa2Encoder, clip: ClipSpec, height: int, width: int):
        super().__init__()
        if clip.frames != encoder.cfg.num_frames or clip.crop_size != encoder.cfg.img_size:
            raise ValueError("clip spec does not match the encoder's frames/crop size")
        self.encoder = encoder
        self.frames, self.crop = clip.frames, clip.crop_size
        self.resized = resized_size(height, width, clip.resize_short)
        self.offsets = crop_offsets(*self.resized, clip.crop_size)
        std = torch.tensor(clip.std, dtype=torch.float32)
        self.register_buffer("scale", (1.0 / (255.0 * std)).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("offset", (-torch.tensor(clip.mean) / std).view(1, 3, 1, 1), persistent=False)
        self.antialias = clip.resize_antialias
        if self.antialias:
            top, left = self.offsets
            rows = axis_matrix(height, self.resized[0], top, clip.crop_size)
            cols = axis_matrix(width, self.resized[1], left, clip.crop_size)
            self.register_buffer("rows", torch.from_numpy(rows), persistent=False)  # (S, H)
            self.register_buffer("cols", torch.from_numpy(cols).T.contiguous(), persistent=False)  # (W, S)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        b, t, h, w, c = frames.shape
        x = frames.reshape(b * t, h, w, c).permute(0, 3, 1, 2).to(torch.float32)
        if self.antialias:
            x = torch.matmul(torch.matmul(self.rows, x), self.cols) * self.scale + self.offset
            x = x.reshape(b, t, 3, self.crop, self.crop).permute(0, 2, 1, 3, 4)
            return self.encoder(x)
        if self.resized != (h, w):
            x = F.interpolate(x, size=self.resized, mode="bilinear", align_corners=False, antialias=False)
        top, left = self.offsets
        x = x[:, :, top : top + self.crop, left : left + self.crop] * self.scale + self.offset
        x = x.reshape(b, t, 3, self.crop, self.crop).permute(0, 2, 1, 3, 4)
        return self.encoder(x)
