"""Training side of the default model: the loss, the training inputs, and (slow) one short run end to end."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vljepa_ros.export.model import clip_spec_for  # noqa: E402
from vljepa_ros.runtime.preprocessing import preprocess_clip  # noqa: E402
from vljepa_ros.tiny_world.clips import clip_rng, sample_scene_clip, sample_transition_clip  # noqa: E402
from vljepa_ros.tiny_world.vocabulary import action_bank, caption_bank  # noqa: E402
from vljepa_ros.training.data import scene_inputs, transition_inputs  # noqa: E402
from vljepa_ros.training.train_tiny import TrainConfig, bidirectional_info_nce, build_models  # noqa: E402


def _bank(n=6, dim=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, dim, generator=g), dim=-1)


def test_info_nce_is_low_for_the_right_texts_and_high_for_wrong_ones():
    bank = _bank()
    target = torch.tensor([0, 1, 2, 2, 5])
    scale = torch.tensor(50.0)
    right = bidirectional_info_nce(bank[target] * 3.0, target, bank, scale)
    wrong = bidirectional_info_nce(bank[(target + 1) % 6], target, bank, scale)
    assert right.item() < 0.05 < 5.0 < wrong.item()


def test_info_nce_treats_clips_with_the_same_text_as_positives_of_each_other():
    bank = _bank()
    target = torch.tensor([3, 3, 3, 3])
    # Every clip predicts its text exactly: nothing is left to learn in either direction.
    loss = bidirectional_info_nce(bank[target], target, bank, torch.tensor(100.0))
    assert loss.item() < 1e-3
    # A single clip per text in a batch of one: text->clip is trivially 0, clip->text is the bank softmax.
    one = bidirectional_info_nce(bank[[0]], torch.tensor([0]), bank, torch.tensor(1.0))
    expected = -torch.log_softmax(bank[0] @ bank.T, dim=0)[0] / 2
    assert math.isclose(one.item(), expected.item(), rel_tol=1e-5)


def test_training_inputs_go_through_the_runtime_preprocessing():
    cfg = TrainConfig(depth=1, predictor_depth=1, embed_dim=48, heads=4, mlp_dim=96)
    encoder, _ = build_models(cfg, vocab_size=32)
    clip = clip_spec_for(encoder, cfg.frame_rate_hz)

    scenes = scene_inputs(5, 10, 2, clip, frame_size=(160, 120))
    assert scenes.clips.shape == (2, 3, clip.frames, clip.crop_size, clip.crop_size)
    raw_scene = sample_scene_clip(
        clip_rng(5, 10, "scene"), frames=clip.frames, rate_hz=clip.frame_rate_hz, width=160, height=120
    )
    np.testing.assert_array_equal(scenes.clips[0], preprocess_clip(raw_scene.frames, clip))
    assert scenes.texts[0] == raw_scene.caption

    moves = transition_inputs(5, 0, 3, clip, frame_size=(160, 120))
    raw = sample_transition_clip(clip_rng(5, 0, "transition"), frames_per_state=clip.frames // 2, width=160, height=120)
    expected = preprocess_clip(np.concatenate([raw.before_frames, raw.after_frames]), clip)
    np.testing.assert_array_equal(moves.clips[0], expected)
    assert moves.actions[0] == raw.action and set(moves.actions) <= set(action_bank())
    assert set(scenes.texts) <= set(caption_bank())


def test_training_inputs_are_deterministic_per_seed_and_index():
    cfg = TrainConfig()
    encoder, _ = build_models(cfg, vocab_size=32)
    clip = clip_spec_for(encoder, cfg.frame_rate_hz)
    a, b = scene_inputs(1, 0, 3, clip), scene_inputs(1, 0, 3, clip)
    np.testing.assert_array_equal(a.clips, b.clips)
    assert a.texts == b.texts
