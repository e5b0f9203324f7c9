"""Official V-JEPA 2 checkpoint layout loads and matches; the encoder equals an independent numpy reference."""

import numpy as np
import pytest
import torch
from scipy.special import erf

from vljepa_ros.torch_models.checkpoint import (
    CheckpointError,
    load_official_encoder,
    load_predictor,
    save_predictor,
    select_encoder_state,
    strip_prefixes,
)
from vljepa_ros.torch_models.vjepa2_encoder import RoPE3D, VJepa2Encoder, encoder_config
from vljepa_ros.torch_models.vljepa_predictor import VLJepaPredictor, predictor_config

# Width 96 / 6 heads gives head_dim 16: sub-blocks of 4, 4 rotated channels left over (the ViT-L 64 -> 20x3+4 case).
CFG = encoder_config("tiny", embed_dim=96, num_heads=6, depth=2, num_frames=4, img_size=32)


def _official_layout(state):
    return {f"module.backbone.{k}": v.clone() for k, v in state.items()}


def test_official_layout_loads_target_encoder_and_matches(tmp_path):
    torch.manual_seed(0)
    target, online = VJepa2Encoder(CFG).eval(), VJepa2Encoder(CFG).eval()
    path = tmp_path / "vitl.pt"
    torch.save(
        {
            "encoder": _official_layout(online.state_dict()),
            "target_encoder": _official_layout(target.state_dict()),
            "predictor": {"module.backbone.predictor_embed.weight": torch.zeros(2, 2)},
            "epoch": 10,
            "lr": 1e-4,
        },
        path,
    )
    loaded = load_official_encoder(path, num_frames=4, img_size=32, num_heads=6)
    assert loaded.cfg == CFG
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), target(x), rtol=0, atol=0)
        assert not torch.allclose(loaded(x), online(x))
    forced = load_official_encoder(path, num_frames=4, img_size=32, num_heads=6, key="encoder")
    with torch.no_grad():
        torch.testing.assert_close(forced(x), online(x), rtol=0, atol=0)


def test_ema_encoder_key_of_2_1_files_and_pos_embed_ignored(tmp_path):
    torch.manual_seed(1)
    model = VJepa2Encoder(CFG).eval()
    state = _official_layout(model.state_dict())
    state["module.backbone.pos_embed"] = torch.zeros(1, 64, 96)
    key, selected = select_encoder_state({"ema_encoder": state, "encoder": {}})
    assert key == "ema_encoder" and selected.keys() == model.state_dict().keys()


def test_prefixes_stripped_in_any_order():
    t = torch.zeros(1)
    assert list(strip_prefixes({"backbone.module.norm.weight": t, "module.backbone.norm.bias": t, "norm.x": t})) == [
        "norm.weight",
        "norm.bias",
        "norm.x",
    ]


def test_mismatched_checkpoint_is_refused_with_key_names(tmp_path):
    torch.manual_seed(0)
    state = _official_layout(VJepa2Encoder(CFG).state_dict())
    del state["module.backbone.blocks.1.mlp.fc2.bias"]
    torch.save({"target_encoder": state}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"1 missing key\(s\) \['blocks.1.mlp.fc2.bias'\]"):
        load_official_encoder(tmp_path / "bad.pt", num_frames=4, img_size=32, num_heads=6)
    torch.save({"optimizer": {}}, tmp_path / "none.pt")
    with pytest.raises(CheckpointError, match="no encoder weights"):
        load_official_encoder(tmp_path / "none.pt")


def test_architecture_is_read_from_weight_shapes(tmp_path):
    cfg = encoder_config("tiny", embed_dim=768, num_heads=12, depth=1, mlp_dim=64, num_frames=2, img_size=16)
    torch.save({"target_encoder": _official_layout(VJepa2Encoder(cfg).state_dict())}, tmp_path / "b.pt")
    loaded = load_official_encoder(tmp_path / "b.pt", num_frames=2, img_size=16)
    assert (loaded.cfg.embed_dim, loaded.cfg.num_heads, loaded.cfg.depth, loaded.cfg.mlp_dim) == (768, 12, 1, 64)


# ------------------------------------------------------------------ independent numpy reference of the formula
def _numpy_rope(x, pos, tiled):
    """Per-channel loop: pair (2j, 2j+1) rotated by adjacent pairs; channel c uses omega[c mod d/2] (tiled)
    or omega[c // 2] (interleaved); omega_i = 1/10000^(i/(d/2)) within each of the 3 sub-blocks."""
    head_dim = x.shape[-1]
    d = 2 * ((head_dim // 3) // 2)
    out = x.copy()
    for block, p in enumerate(pos):  # depth, height, width positions of every token
        for c in range(d):
            i = (c % (d // 2)) if tiled else (c // 2)
            angle = p * (1.0 / 10000 ** (i / (d / 2)))
            ch = block * d + c
            partner = -x[..., ch + 1] if c % 2 == 0 else x[..., ch - 1]
            out[..., ch] = x[..., ch] * np.cos(angle) + partner * np.sin(angle)
    return out


def _positions(t, h, w):
    ft, fh, fw = np.meshgrid(np.arange(t), np.arange(h), np.arange(w), indexing="ij")
    return [ft.ravel().astype(np.float64), fh.ravel().astype(np.float64), fw.ravel().astype(np.float64)]


@pytest.mark.parametrize("tiled", [True, False])
def test_rope_matches_numpy_formula(tiled):
    grid = (2, 3, 4)
    rope = RoPE3D(head_dim=16, theta=10000.0, tiled=tiled)
    x = np.random.default_rng(0).standard_normal((1, 2, 24, 16)).astype(np.float32)
    cos, sin = rope.tables(grid)
    got = rope(torch.from_numpy(x), cos, sin).numpy()
    np.testing.assert_allclose(got, _numpy_rope(x.astype(np.float64), _positions(*grid), tiled), atol=1e-5)


def _layer_norm(x, w, b, eps=1e-6):
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps) * w + b


def _numpy_encoder(state, clip, cfg):
    """Straight numpy forward of the published architecture (tubelet conv as a matmul, softmax attention)."""
    s = {k: v.double().numpy() for k, v in state.items()}
    _, c, t, hh, ww = clip.shape
    tub, p = cfg.tubelet_size, cfg.patch_size
    gt, gh, gw = t // tub, hh // p, ww // p
    patches = clip.reshape(c, gt, tub, gh, p, gw, p).transpose(1, 3, 5, 0, 2, 4, 6).reshape(gt * gh * gw, -1)
    x = patches @ s["patch_embed.proj.weight"].reshape(cfg.embed_dim, -1).T + s["patch_embed.proj.bias"]
    pos = _positions(gt, gh, gw)
    heads, hd = cfg.num_heads, cfg.head_dim
    for i in range(cfg.depth):
        b = f"blocks.{i}."
        y = _layer_norm(x, s[b + "norm1.weight"], s[b + "norm1.bias"])
        qkv = (y @ s[b + "attn.qkv.weight"].T + s[b + "attn.qkv.bias"]).reshape(-1, 3, heads, hd).transpose(1, 2, 0, 3)
        q, k, v = (
            _numpy_rope(qkv[0], pos, cfg.rope_tiled_freqs),
            _numpy_rope(qkv[1], pos, cfg.rope_tiled_freqs),
            qkv[2],
        )
        logits = q @ k.transpose(0, 2, 1) / np.sqrt(hd)
        attn = np.exp(logits - logits.max(-1, keepdims=True))
        attn /= attn.sum(-1, keepdims=True)
        o = (attn @ v).transpose(1, 0, 2).reshape(-1, cfg.embed_dim)
        x = x + o @ s[b + "attn.proj.weight"].T + s[b + "attn.proj.bias"]
        y = _layer_norm(x, s[b + "norm2.weight"], s[b + "norm2.bias"])
        hmid = y @ s[b + "mlp.fc1.weight"].T + s[b + "mlp.fc1.bias"]
        hmid = 0.5 * hmid * (1 + erf(hmid / np.sqrt(2)))
        x = x + hmid @ s[b + "mlp.fc2.weight"].T + s[b + "mlp.fc2.bias"]
    return _layer_norm(x, s["norm.weight"], s["norm.bias"])


def test_encoder_matches_numpy_reference_with_2_0_quirk(tmp_path):
    torch.manual_seed(2)
    model = VJepa2Encoder(CFG).eval()
    torch.save({"target_encoder": _official_layout(model.state_dict())}, tmp_path / "ckpt.pt")
    loaded = load_official_encoder(tmp_path / "ckpt.pt", num_frames=4, img_size=32, num_heads=6)
    clip = np.random.default_rng(3).standard_normal((1, 3, 4, 32, 32))
    with torch.no_grad():
        got = loaded(torch.from_numpy(clip).float())[0].double().numpy()
    np.testing.assert_allclose(got, _numpy_encoder(loaded.state_dict(), clip, CFG), atol=2e-4)


def test_predictor_file_round_trip(tmp_path):
    torch.manual_seed(4)
    model = VLJepaPredictor(predictor_config("tiny", visual_dim=16)).eval()
    path = save_predictor(model, ["<pad>", "<unk>", "hello"], tmp_path / "pred.pt")
    loaded, vocab = load_predictor(path)
    assert vocab == ["<pad>", "<unk>", "hello"] and loaded.cfg == model.cfg
    ids, mask = torch.tensor([[2, 0, 0, 0, 0, 0, 0, 0]]), torch.tensor([[1, 0, 0, 0, 0, 0, 0, 0]])
    tokens = torch.randn(1, 5, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(tokens, ids, mask), model(tokens, ids, mask), rtol=0, atol=0)
