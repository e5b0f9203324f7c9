"""The training resize without torch: antialiased bilinear equal to torch's, in the float path, the uint8-crop path
and the fused graph; models without `clip.resize` keep OpenCV's bilinear."""

import dataclasses

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vljepa_ros.export.model import export_tiny_random
from vljepa_ros.perception.config import PipelineConfig
from vljepa_ros.perception.pipeline import PerceptionPipeline
from vljepa_ros.runtime.antialias_resize import axis_matrix, resize_crop_antialiased
from vljepa_ros.runtime.manifest import ClipSpec, load_manifest, parse_manifest
from vljepa_ros.runtime.preprocessing import (
    crop_offsets,
    preprocess_clip,
    resize_and_crop,
    resized_crop_float,
    resized_size,
)
from vljepa_ros.runtime.vljepa_runtime import VLJepaRuntime

IMAGENET = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
DOWNSCALES = (1.0, 1.2, 1.5, 1.9, 2.0, 2.5, 3.0, 3.5, 4.0)


def _clip(resize_short: int, crop: int, antialias: bool = True) -> ClipSpec:
    return ClipSpec(8, 4.0, 2, 8, crop, resize_short, **IMAGENET, resize_antialias=antialias)


def torch_training_crop(frame: np.ndarray, clip: ClipSpec) -> np.ndarray:
    """torchvision's transform as open-vljepa trains: float 0..1, antialiased bilinear short side, centre crop."""
    size = resized_size(*frame.shape[:2], clip.resize_short)
    x = torch.from_numpy(frame).permute(2, 0, 1)[None].to(torch.float32) / 255.0
    x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    top, left = crop_offsets(*size, clip.crop_size)
    return x[0, :, top : top + clip.crop_size, left : left + clip.crop_size].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("downscale", DOWNSCALES)
@pytest.mark.parametrize("shape", [(480, 640), (720, 1280), (97, 131), (300, 200)])
def test_resize_equals_torch_antialiased_bilinear(shape, downscale):
    frame = np.random.default_rng(int(downscale * 10)).integers(0, 256, (*shape, 3), dtype=np.uint8)
    short = round(min(shape) / downscale)
    clip = _clip(short, min(short, 64))
    ours = resized_crop_float(frame, clip) / 255.0
    expected = torch_training_crop(frame, clip)
    assert ours.shape == expected.shape
    assert np.abs(ours - expected).max() <= 1e-3
    # Not a tautology: OpenCV's bilinear (today's path) is far off on noise once the frame is downscaled.
    if downscale >= 1.5:
        plain = dataclasses.replace(clip, resize_antialias=False)
        assert np.abs(resize_and_crop(frame, plain) / 255.0 - expected).max() > 0.05


def test_whole_frame_resize_and_matrix_form_agree_with_torch():
    frame = np.random.default_rng(1).integers(0, 256, (60, 90, 3), dtype=np.uint8)
    x = torch.from_numpy(frame).permute(2, 0, 1)[None].float()
    expected = F.interpolate(x, size=(25, 37), mode="bilinear", antialias=True, align_corners=False)[0].numpy()
    np.testing.assert_allclose(
        resize_crop_antialiased(frame, (25, 37), 0, 0, (25, 37)).transpose(2, 0, 1), expected, atol=1e-3
    )
    rows, cols = axis_matrix(60, 25), axis_matrix(90, 37)
    np.testing.assert_allclose(rows @ frame[..., 0].astype(np.float32) @ cols.T, expected[0], atol=1e-3)


def test_uint8_crops_round_the_float_crop():
    frame = np.random.default_rng(2).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    clip = _clip(48, 48)
    crop = resize_and_crop(frame, clip)
    assert crop.dtype == np.uint8
    assert np.abs(crop.astype(np.float32) - resized_crop_float(frame, clip)).max() <= 0.5 + 1e-4


def test_manifest_records_the_resize_and_old_manifests_keep_opencv(tmp_path_factory):
    plain = load_manifest(export_tiny_random(tmp_path_factory.mktemp("plain"), seed=0))
    assert not plain.clip.resize_antialias and plain.format_version == 1 and "resize" not in plain.to_dict()["clip"]
    frame = np.random.default_rng(3).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    rh, rw = resized_size(96, 128, plain.clip.resize_short)
    top, left = crop_offsets(rh, rw, plain.clip.crop_size)
    opencv = cv2.resize(frame, (rw, rh), interpolation=cv2.INTER_LINEAR)[top : top + 64, left : left + 64]
    np.testing.assert_array_equal(resize_and_crop(frame, plain.clip), opencv)

    path = export_tiny_random(tmp_path_factory.mktemp("antialias"), seed=0, antialias=True)
    manifest = load_manifest(path)
    raw = manifest.to_dict()
    assert manifest.clip.resize_antialias and manifest.format_version == 3
    assert raw["clip"]["resize"] == {"method": "bilinear", "antialias": True}
    raw["clip"]["resize"] = {"method": "bicubic", "antialias": True}
    with pytest.raises(ValueError, match="clip.resize.method"):
        parse_manifest(raw, manifest.root)


@pytest.fixture(scope="module")
def antialias_models(tmp_path_factory):
    """The same random weights exported unfused and with the preprocessing fused into the graph (48x64 frames)."""
    unfused = export_tiny_random(tmp_path_factory.mktemp("aa_unfused"), seed=0, antialias=True)
    fused = export_tiny_random(tmp_path_factory.mktemp("aa_fused"), seed=0, antialias=True, fused_frame_size=(48, 64))
    return (VLJepaRuntime.from_manifest(p, providers=("cpu",), warmup_runs=0) for p in (unfused, fused))


def test_camera_path_float_and_fused_graph_reproduce_the_training_transform(antialias_models):
    unfused, fused = antialias_models
    clip = unfused.manifest.clip
    frames = list(np.random.default_rng(4).integers(0, 256, (clip.frames, 48, 64, 3), dtype=np.uint8))
    # The pipeline's per-frame preparation (the node's and replay's camera path) equals the runtime's.
    pipeline = PerceptionPipeline(unfused, PipelineConfig(transition_horizon_s=0.0))
    np.testing.assert_array_equal(
        pipeline.clip_input([pipeline.prepare_frame(f) for f in frames]), preprocess_clip(frames, clip)
    )
    # Both equal torch's training transform followed by the same graphs.
    mean, std = np.asarray(clip.mean, np.float32), np.asarray(clip.std, np.float32)
    reference = np.stack([(torch_training_crop(f, clip) - mean) / std for f in frames]).transpose(3, 0, 1, 2)
    expected = unfused.encode(np.ascontiguousarray(reference, dtype=np.float32)[None])
    np.testing.assert_allclose(unfused.encode(preprocess_clip(frames, clip)[None]), expected, atol=1e-4)
    np.testing.assert_allclose(fused.encode(fused.prepare_clip(frames)[None]), expected, atol=1e-4)
