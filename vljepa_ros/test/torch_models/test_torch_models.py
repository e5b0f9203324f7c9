"""PyTorch reference modules: V-JEPA 2 encoder and VL-JEPA predictor behaviour at tiny sizes."""

import pytest
import torch

from vljepa_ros.torch_models.vjepa2_encoder import (
    ENCODER_PRESETS,
    VJepa2Encoder,
    encoder_config,
    rope_sub_dim,
)
from vljepa_ros.torch_models.vljepa_predictor import VLJepaPredictor, predictor_config


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return VJepa2Encoder(encoder_config("tiny")).eval()


def test_encoder_token_count_and_width(encoder):
    with torch.no_grad():
        out = encoder(torch.randn(2, 3, 8, 64, 64))
    assert out.shape == (2, 4 * 8 * 8, 96)


def test_image_input_equals_duplicated_frames(encoder):
    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a = encoder(image)
        b = encoder(image[:, :, None].repeat(1, 1, 8, 1, 1))
    torch.testing.assert_close(a, b)


def test_rope_makes_output_depend_on_token_order(encoder):
    """Without positions, attention is permutation-equivariant; swapping two frames' tubelets must change tokens."""
    x = torch.randn(1, 3, 8, 64, 64)
    swapped = torch.cat([x[:, :, 2:4], x[:, :, 0:2], x[:, :, 4:]], dim=2)
    with torch.no_grad():
        a, b = encoder(x), encoder(swapped)
    # token block of tubelet 0 in `a` vs block of the same content (now tubelet 1) in `b`
    assert not torch.allclose(a[:, :64], b[:, 64:128], atol=1e-4)


def test_tiled_and_interleaved_rope_differ():
    torch.manual_seed(0)
    tiled = VJepa2Encoder(encoder_config("tiny", rope_tiled_freqs=True)).eval()
    inter = VJepa2Encoder(encoder_config("tiny", rope_tiled_freqs=False)).eval()
    inter.load_state_dict(tiled.state_dict())
    x = torch.randn(1, 3, 8, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(tiled(x), inter(x), atol=1e-4)


def test_presets_match_published_sizes():
    assert rope_sub_dim(64) == 20 and rope_sub_dim(80) == 26
    vit_l = ENCODER_PRESETS["vit_l"]
    assert (vit_l.embed_dim, vit_l.depth, vit_l.num_heads, vit_l.mlp_dim, vit_l.num_tokens) == (
        1024,
        24,
        16,
        4096,
        2048,
    )
    assert ENCODER_PRESETS["vit_g"].head_dim == 64
    with torch.device("meta"):
        n = sum(p.numel() for p in VJepa2Encoder(vit_l).parameters())
    assert 300e6 < n < 310e6  # ViT-L: ~304M


def test_encoder_config_rejects_bad_shapes():
    with pytest.raises(ValueError, match="not a multiple of patch_size"):
        encoder_config("tiny", img_size=60)
    with pytest.raises(ValueError, match="unknown encoder preset"):
        encoder_config("vit_x")


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(1)
    return VLJepaPredictor(predictor_config("tiny", visual_dim=96)).eval()


def _query(ids, length, max_tokens=8):
    ids = torch.tensor([ids + [0] * (max_tokens - len(ids))])
    mask = (torch.arange(max_tokens)[None] < length).long()
    return ids, mask


def test_predictor_output_shape(predictor):
    ids, mask = _query([5, 6, 7], 3)
    with torch.no_grad():
        out = predictor(torch.randn(1, 20, 96), ids, mask)
    assert out.shape == (1, 32)


def test_pad_positions_do_not_influence_the_output(predictor):
    tokens = torch.randn(1, 20, 96)
    ids, mask = _query([5, 6, 7], 3)
    other = ids.clone()
    other[0, 3:] = torch.arange(10, 15)  # garbage ids under mask 0
    with torch.no_grad():
        torch.testing.assert_close(predictor(tokens, ids, mask), predictor(tokens, other, mask))


def test_query_changes_the_output(predictor):
    tokens = torch.randn(1, 20, 96)
    with torch.no_grad():
        a = predictor(tokens, *_query([5, 6, 7], 3))
        b = predictor(tokens, *_query([5, 6, 8], 3))
    assert not torch.allclose(a, b, atol=1e-5)


def test_attention_is_bidirectional(predictor):
    """A query token placed after the visual tokens still changes what the visual positions attend to."""
    tokens = torch.randn(1, 20, 96)
    captured = {}
    hook = predictor.norm.register_forward_hook(lambda m, i, o: captured.setdefault(len(captured), o))
    with torch.no_grad():
        predictor(tokens, *_query([5], 1))
        predictor(tokens, *_query([9], 1))
    hook.remove()
    assert not torch.allclose(captured[0][:, 0], captured[1][:, 0], atol=1e-6)


def test_gqa_configuration_and_paper_size():
    cfg = predictor_config("paper")
    assert (cfg.hidden_dim, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.depth) == (2048, 32, 8, 64, 8)
    layer_k = VLJepaPredictor(predictor_config("tiny")).layers[0].self_attn.k_proj
    assert layer_k.out_features == 2 * 16  # 2 KV heads x head_dim 16
    with pytest.raises(ValueError, match="not a multiple of num_kv_heads"):
        predictor_config("tiny", num_kv_heads=3)
