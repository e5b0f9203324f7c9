"""`load_encoder` on small random files in the three real layouts: Hugging Face folders (checked against
transformers' VJEPA2Model, in torch and through ONNX Runtime), V-JEPA 2.1 `.pt` (checked against an independent
numpy forward of the 2.1 math at two crops), 2.0 `.pt`; wrong, partial and unknown files refused."""

import json
from dataclasses import replace

import numpy as np
import onnxruntime as ort
import pytest
import torch
from safetensors.torch import save_file
from scipy.special import erf

from vljepa_ros.export.model import export_encoder
from vljepa_ros.torch_models.checkpoint import CheckpointError, load_official_encoder
from vljepa_ros.torch_models.checkpoint_layouts import LAYOUT_2_0, LAYOUT_2_1, LAYOUT_HF, hf_encoder_config
from vljepa_ros.torch_models.encoder_loading import describe, load_encoder
from vljepa_ros.torch_models.vjepa2_encoder import ENCODER_PRESETS, VJepa2Encoder, encoder_config

# Width 96 / 6 heads: head_dim 16, RoPE sub-blocks of 4 and 4 channels left unrotated (like ViT-L's 64 -> 20x3+4).
WIDTH, HEADS, DEPTH, MLP = 96, 6, 2, 192


def _randomise(named_tensors):
    """Every tensor random (norm weights around 1), so a swapped or misplaced weight changes the output."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in named_tensors:
            offset = 1.0 if "norm" in name and name.endswith("weight") else 0.0
            t.copy_(torch.randn(t.shape, generator=gen) * 0.1 + offset)


# ------------------------------------------------------------------ Hugging Face folders, via transformers
@pytest.fixture(scope="module")
def transformers():
    return pytest.importorskip("transformers")


def _hf_config(transformers, **extra):
    return transformers.VJEPA2Config(
        hidden_size=WIDTH,
        num_hidden_layers=DEPTH,
        num_attention_heads=HEADS,
        mlp_ratio=MLP / WIDTH,
        patch_size=8,
        crop_size=32,
        frames_per_clip=4,
        tubelet_size=2,
        pred_hidden_size=32,
        pred_num_hidden_layers=1,
        pred_num_attention_heads=2,
        num_pooler_layers=1,
        **extra,
    )


@pytest.fixture(scope="module")
def hf_model(transformers, tmp_path_factory):
    """(folder written by save_pretrained, the transformers VJEPA2Model it holds)."""
    model = transformers.VJEPA2Model(_hf_config(transformers)).eval()
    _randomise(model.named_parameters())
    folder = tmp_path_factory.mktemp("hf") / "vjepa2-tiny"
    model.save_pretrained(folder)
    return folder, model


def _clip(frames=4, size=32, batch=2, seed=1):
    """(B, T, C, H, W), Hugging Face's input layout."""
    return torch.randn(batch, frames, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_hf_folder_matches_transformers(hf_model):
    folder, reference = hf_model
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    ours, info = load_encoder(folder, num_frames=4)
    assert info.layout == LAYOUT_HF and info.entry == "model.safetensors" and info.ignored == ("predictor.*",)
    assert (ours.cfg.img_size, ours.cfg.num_heads, ours.cfg.mlp_dim, ours.cfg.patch_size) == (32, HEADS, MLP, 8)
    assert "hf-vjepa2 [model.safetensors] width 96, depth 2, 6 heads, clip 4x32px" in describe(info, ours)
    x = _clip()
    with torch.no_grad():
        expected = reference(pixel_values_videos=x, skip_predictor=True).last_hidden_state
        got = ours(x.permute(0, 2, 1, 3, 4))
    assert (got - expected).abs().max().item() <= 1e-4
    same_file, _ = load_encoder(folder / "model.safetensors", num_frames=4)
    with torch.no_grad():
        torch.testing.assert_close(same_file(x.permute(0, 2, 1, 3, 4)), got, rtol=0, atol=0)


def test_hf_encoder_through_onnx_runtime_matches_transformers(hf_model, tmp_path):
    folder, reference = hf_model
    ours, _ = load_encoder(folder, num_frames=4)
    path = tmp_path / "encoder.onnx"
    export_encoder(ours, path, log=lambda _: None)
    x = _clip(seed=2)
    with torch.no_grad():
        expected = reference(pixel_values_videos=x, skip_predictor=True).last_hidden_state.numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.permute(0, 2, 1, 3, 4).numpy()})
    assert np.abs(got - expected).max() <= 1e-4


def test_hf_video_classifier_folder_loads_its_backbone(transformers, tmp_path):
    classifier = transformers.VJEPA2ForVideoClassification(_hf_config(transformers, num_labels=3)).eval()
    _randomise(classifier.named_parameters())
    classifier.save_pretrained(tmp_path / "cls")
    ours, info = load_encoder(tmp_path / "cls", num_frames=4)
    assert info.ignored == ("predictor.*", "pooler.*", "classifier.*")
    x = _clip(seed=3)
    with torch.no_grad():
        expected = classifier.vjepa2(pixel_values_videos=x, skip_predictor=True).last_hidden_state
        assert (ours(x.permute(0, 2, 1, 3, 4)) - expected).abs().max().item() <= 1e-4


# ------------------------------------------------------------------ Hugging Face folders, written by hand
def _hf_tensors(model: VJepa2Encoder) -> dict[str, torch.Tensor]:
    """Our weights under VJEPA2Model's names (query/key/value split), plus a predictor the encoder ignores."""
    s = model.state_dict()
    out = {
        "encoder.embeddings.patch_embeddings.proj.weight": s["patch_embed.proj.weight"],
        "encoder.embeddings.patch_embeddings.proj.bias": s["patch_embed.proj.bias"],
        "encoder.layernorm.weight": s["norm.weight"],
        "encoder.layernorm.bias": s["norm.bias"],
        "predictor.embeddings.predictor_embeddings.weight": torch.zeros(32, WIDTH),
    }
    for i in range(model.cfg.depth):
        hf, our = f"encoder.layer.{i}.", f"blocks.{i}."
        for p in ("weight", "bias"):
            q, k, v = s[f"{our}attn.qkv.{p}"].chunk(3)
            out |= {f"{hf}attention.query.{p}": q, f"{hf}attention.key.{p}": k, f"{hf}attention.value.{p}": v}
            out[f"{hf}attention.proj.{p}"] = s[f"{our}attn.proj.{p}"]
            for name in ("norm1", "norm2", "mlp.fc1", "mlp.fc2"):
                out[f"{hf}{name}.{p}"] = s[f"{our}{name}.{p}"]
    return {k: v.contiguous() for k, v in out.items()}


HF_CONFIG = {
    "model_type": "vjepa2",
    "hidden_size": WIDTH,
    "num_hidden_layers": DEPTH,
    "num_attention_heads": HEADS,
    "mlp_ratio": MLP / WIDTH,
    "patch_size": 8,
    "tubelet_size": 2,
    "crop_size": 32,
    "frames_per_clip": 64,
    "layer_norm_eps": 1e-6,
    "qkv_bias": True,
    "hidden_act": "gelu",
}


def _write_hf(folder, tensors, config=None):
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(config or HF_CONFIG))
    return folder


@pytest.fixture(scope="module")
def tiny_2_0():
    torch.manual_seed(0)
    model = VJepa2Encoder(
        encoder_config("tiny", embed_dim=WIDTH, num_heads=HEADS, depth=DEPTH, mlp_dim=MLP, num_frames=4, img_size=32)
    ).eval()
    _randomise(model.state_dict().items())
    return model


def test_hand_written_hf_folder_equals_the_model_it_came_from(tiny_2_0, tmp_path):
    folder = _write_hf(tmp_path / "hf", _hf_tensors(tiny_2_0))
    loaded, _ = load_encoder(folder, num_frames=4)
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), tiny_2_0(x), rtol=0, atol=0)
    larger, _ = load_encoder(folder, num_frames=8, img_size=48)
    assert (larger.cfg.num_frames, larger.cfg.img_size, larger.cfg.num_tokens) == (8, 48, 4 * 6 * 6)


def test_sharded_hf_folder_loads_every_shard(tiny_2_0, tmp_path):
    tensors = _hf_tensors(tiny_2_0)
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for file, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, str(tmp_path / file))
    weight_map = {k: file for file, keys in shards.items() for k in keys}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (tmp_path / "config.json").write_text(json.dumps(HF_CONFIG))
    loaded, info = load_encoder(tmp_path, num_frames=4)
    assert info.entry == ", ".join(shards)
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), tiny_2_0(x), rtol=0, atol=0)


def test_published_hf_configs_give_the_published_sizes():
    vit_l = hf_encoder_config({"model_type": "vjepa2"}, num_frames=16, img_size=None, num_heads=None)
    assert vit_l == ENCODER_PRESETS["vit_l"]  # VJEPA2Config's defaults are vjepa2-vitl-fpc64-256
    vit_g = {"model_type": "vjepa2", "hidden_size": 1408, "num_hidden_layers": 40, "num_attention_heads": 22}
    vit_g = hf_encoder_config({**vit_g, "mlp_ratio": 48 / 11, "crop_size": 384}, 16, None, None)
    assert vit_g == replace(ENCODER_PRESETS["vit_g"], img_size=384)


def test_partial_or_wrong_hf_folders_are_refused_with_key_names(tiny_2_0, tmp_path):
    tensors = _hf_tensors(tiny_2_0)
    partial = {k: v for k, v in tensors.items() if k != "encoder.layer.1.attention.key.bias"}
    with pytest.raises(CheckpointError, match=r"1 missing key\(s\) \['encoder.layer.1.attention.key.bias'\]"):
        load_encoder(_write_hf(tmp_path / "partial", partial))
    extra = {**tensors, "encoder.layer.0.attention.rel_pos": torch.zeros(3)}
    with pytest.raises(CheckpointError, match=r"1 unexpected \['encoder.layer.0.attention.rel_pos'\]"):
        load_encoder(_write_hf(tmp_path / "extra", extra))
    wrong = {**tensors, "encoder.layer.0.mlp.fc1.weight": torch.zeros(MLP + 1, WIDTH)}
    with pytest.raises(CheckpointError, match=r"encoder.layer.0.mlp.fc1.weight has shape \(193, 96\)"):
        load_encoder(_write_hf(tmp_path / "wrong", wrong))
    with pytest.raises(CheckpointError, match="num_heads 4 contradicts config.json num_attention_heads 6"):
        load_encoder(_write_hf(tmp_path / "ok", tensors), num_heads=4)
    with pytest.raises(CheckpointError, match="model_type is 'vit'"):
        load_encoder(_write_hf(tmp_path / "vit", tensors, {**HF_CONFIG, "model_type": "vit"}))


# ------------------------------------------------------------------ V-JEPA 2.1 `.pt`, reference key names
P21, FRAMES21 = 16, 2  # the released 2.1 patch size (RoPE pretraining grid 16x16); one tubelet of two frames


def _reference_2_1_state(seed: int) -> dict[str, torch.Tensor]:
    """An encoder state under app/vjepa_2_1 VisionTransformer's names (img_temporal_dim_size=1,
    modality_embedding=True), random values."""
    gen = torch.Generator().manual_seed(seed)
    shapes = {
        "patch_embed.proj.weight": (WIDTH, 3, 2, P21, P21),
        "patch_embed.proj.bias": (WIDTH,),
        "patch_embed_img.proj.weight": (WIDTH, 3, 1, P21, P21),
        "patch_embed_img.proj.bias": (WIDTH,),
        "img_mod_embed": (1, 1, WIDTH),
        "video_mod_embed": (1, 1, WIDTH),
    }
    for i in range(DEPTH):
        b = f"blocks.{i}."
        shapes |= {b + "norm1.weight": (WIDTH,), b + "norm1.bias": (WIDTH,)}
        shapes |= {b + "attn.qkv.weight": (3 * WIDTH, WIDTH), b + "attn.qkv.bias": (3 * WIDTH,)}
        shapes |= {b + "attn.proj.weight": (WIDTH, WIDTH), b + "attn.proj.bias": (WIDTH,)}
        shapes |= {b + "norm2.weight": (WIDTH,), b + "norm2.bias": (WIDTH,)}
        shapes |= {b + "mlp.fc1.weight": (MLP, WIDTH), b + "mlp.fc1.bias": (MLP,)}
        shapes |= {b + "mlp.fc2.weight": (WIDTH, MLP), b + "mlp.fc2.bias": (WIDTH,)}
    for i in range(4):
        shapes |= {f"norms_block.{i}.weight": (WIDTH,), f"norms_block.{i}.bias": (WIDTH,)}
    out = {}
    for name, shape in shapes.items():
        offset = 1.0 if "norm" in name and name.endswith("weight") else 0.0
        out[name] = torch.randn(shape, generator=gen) * 0.1 + offset
    return out


def _save_2_1(path, state, **others):
    torch.save({"ema_encoder": {f"module.backbone.{k}": v for k, v in state.items()}, **others}, path)
    return path


@pytest.fixture(scope="module")
def file_2_1(tmp_path_factory):
    state = _reference_2_1_state(seed=5)
    online = {f"module.backbone.{k}": v for k, v in _reference_2_1_state(seed=6).items()}
    path = tmp_path_factory.mktemp("v21") / "vjepa2_1_tiny.pt"
    return _save_2_1(path, state, encoder=online, predictor={"module.backbone.mask_tokens.0": torch.zeros(1)}), state


def _rope(x, pos):
    """2.1 rotary embedding, numpy: interleaved frequencies (channel c uses omega[c // 2]), adjacent pairs."""
    d = 2 * ((x.shape[-1] // 3) // 2)
    out = x.copy()
    for block, p in enumerate(pos):
        seg = x[..., block * d : (block + 1) * d]
        angle = p[:, None] * (1.0 / 10000 ** ((np.arange(d) // 2) / (d / 2)))[None, :]
        rotated = np.stack([-seg[..., 1::2], seg[..., 0::2]], axis=-1).reshape(seg.shape)
        out[..., block * d : (block + 1) * d] = seg * np.cos(angle) + rotated * np.sin(angle)
    return out


def _layer_norm(x, w, b, eps=1e-6):
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps) * w + b


def _numpy_2_1(state, clip):
    """app/vjepa_2_1 forward in float64 for one (3, T, H, W) clip; T == 1 takes the image path."""
    s = {k: v.double().numpy() for k, v in state.items()}
    c, t, hh, ww = clip.shape
    image = t == 1
    tub, embed = (1, "patch_embed_img") if image else (2, "patch_embed")
    gt, gh, gw = t // tub, hh // P21, ww // P21
    patches = clip.reshape(c, gt, tub, gh, P21, gw, P21).transpose(1, 3, 5, 0, 2, 4, 6).reshape(gt * gh * gw, -1)
    x = patches @ s[f"{embed}.proj.weight"].reshape(WIDTH, -1).T + s[f"{embed}.proj.bias"]
    x = x + s["img_mod_embed" if image else "video_mod_embed"][0]
    ft, fh, fw = (a.ravel().astype(np.float64) for a in np.meshgrid(*map(np.arange, (gt, gh, gw)), indexing="ij"))
    pos = [ft, fh * (16 - 1) / (gh - 1), fw * (16 - 1) / (gw - 1)]  # interpolate_rope onto the 16x16 grid
    hd = WIDTH // HEADS
    for i in range(DEPTH):
        b = f"blocks.{i}."
        y = _layer_norm(x, s[b + "norm1.weight"], s[b + "norm1.bias"])
        qkv = (y @ s[b + "attn.qkv.weight"].T + s[b + "attn.qkv.bias"]).reshape(-1, 3, HEADS, hd).transpose(1, 2, 0, 3)
        q, k, v = _rope(qkv[0], pos), _rope(qkv[1], pos), qkv[2]
        logits = q @ k.transpose(0, 2, 1) / np.sqrt(hd)
        attn = np.exp(logits - logits.max(-1, keepdims=True))
        attn /= attn.sum(-1, keepdims=True)
        x = x + (attn @ v).transpose(1, 0, 2).reshape(-1, WIDTH) @ s[b + "attn.proj.weight"].T + s[b + "attn.proj.bias"]
        y = _layer_norm(x, s[b + "norm2.weight"], s[b + "norm2.bias"])
        hmid = y @ s[b + "mlp.fc1.weight"].T + s[b + "mlp.fc1.bias"]
        x = x + (0.5 * hmid * (1 + erf(hmid / np.sqrt(2)))) @ s[b + "mlp.fc2.weight"].T + s[b + "mlp.fc2.bias"]
    return _layer_norm(x, s["norms_block.3.weight"], s["norms_block.3.bias"])


@pytest.mark.parametrize("crop", [256, 384])  # 16x16 (positions unscaled) and 24x24 (scaled by 15/23) patches
def test_2_1_file_matches_numpy_reference(file_2_1, crop):
    path, state = file_2_1
    model, info = load_encoder(path, num_frames=FRAMES21, img_size=crop, num_heads=HEADS)
    assert info.layout == LAYOUT_2_1 and info.entry == "ema_encoder" and info.ignored == ("encoder", "predictor")
    assert (model.cfg.rope_tiled_freqs, model.cfg.rope_pretrain_grid, model.cfg.hierarchical_norms) == (False, 16, 4)
    clip = np.random.default_rng(crop).standard_normal((1, 3, FRAMES21, crop, crop))
    with torch.no_grad():
        got = model(torch.from_numpy(clip).float())[0].double().numpy()
    np.testing.assert_allclose(got, _numpy_2_1(state, clip[0]), atol=1e-4, rtol=0)


def test_2_1_single_frame_takes_the_image_path(file_2_1):
    path, state = file_2_1
    model, _ = load_encoder(path, num_frames=FRAMES21, img_size=384, num_heads=HEADS)
    frame = np.random.default_rng(7).standard_normal((1, 3, 1, 384, 384))
    with torch.no_grad():
        got = model(torch.from_numpy(frame).float())[0].double().numpy()
    np.testing.assert_allclose(got, _numpy_2_1(state, frame[0]), atol=1e-4, rtol=0)


def test_2_1_position_scaling_matters_off_the_pretraining_crop(file_2_1):
    path, _ = file_2_1
    model, _ = load_encoder(path, num_frames=FRAMES21, img_size=384, num_heads=HEADS)
    unscaled = VJepa2Encoder(replace(model.cfg, rope_pretrain_grid=None)).eval()
    unscaled.load_state_dict(model.state_dict())
    x = torch.randn(1, 3, FRAMES21, 384, 384)
    with torch.no_grad():
        assert not torch.allclose(model(x), unscaled(x), atol=1e-3)


def test_2_1_encoder_through_onnx_runtime(file_2_1, tmp_path):
    path, state = file_2_1
    model, _ = load_encoder(path, num_frames=FRAMES21, img_size=96, num_heads=HEADS)  # 6x6: positions x 15/5
    export_encoder(model, tmp_path / "encoder.onnx", log=lambda _: None)
    clip = np.random.default_rng(8).standard_normal((1, 3, FRAMES21, 96, 96))
    session = ort.InferenceSession(str(tmp_path / "encoder.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: clip.astype(np.float32)})
    np.testing.assert_allclose(got[0], _numpy_2_1(state, clip[0]), atol=1e-4, rtol=0)


def test_partial_2_1_files_are_refused_with_key_names(tmp_path):
    state = _reference_2_1_state(seed=9)
    for dropped in ("norms_block.3.bias", "video_mod_embed", "patch_embed_img.proj.bias"):
        path = _save_2_1(tmp_path / "partial.pt", {k: v for k, v in state.items() if k != dropped})
        with pytest.raises(CheckpointError, match=rf"1 missing key\(s\) \['{dropped}'\]"):
            load_encoder(path, num_frames=FRAMES21, num_heads=HEADS)
    path = _save_2_1(tmp_path / "extra.pt", {**state, "register_tokens": torch.zeros(1, 4, WIDTH)})
    with pytest.raises(CheckpointError, match=r"1 unexpected \['register_tokens'\]"):
        load_encoder(path, num_frames=FRAMES21, num_heads=HEADS)


# ------------------------------------------------------------------ V-JEPA 2.0 `.pt`, heads, unknown files
def test_2_0_file_equals_load_official_encoder_and_drops_pos_embed(tiny_2_0, tmp_path):
    state = {f"module.backbone.{k}": v for k, v in tiny_2_0.state_dict().items()}
    state["module.backbone.pos_embed"] = torch.zeros(1, 16, WIDTH)
    torch.save({"encoder": state, "target_encoder": state, "epoch": 3}, tmp_path / "vitl.pt")
    model, info = load_encoder(tmp_path / "vitl.pt", num_frames=4, img_size=32, num_heads=HEADS)
    assert info.layout == LAYOUT_2_0 and info.entry == "target_encoder"
    assert info.ignored == ("encoder", "epoch", "pos_embed")
    official = load_official_encoder(tmp_path / "vitl.pt", num_frames=4, img_size=32, num_heads=HEADS)
    assert model.cfg == official.cfg == tiny_2_0.cfg
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), official(x), rtol=0, atol=0)
    default_crop, _ = load_encoder(tmp_path / "vitl.pt", num_heads=HEADS)
    assert (default_crop.cfg.num_frames, default_crop.cfg.img_size) == (16, 256)


def test_num_heads_is_needed_only_for_unpublished_widths(tiny_2_0, tmp_path):
    torch.save({"target_encoder": tiny_2_0.state_dict()}, tmp_path / "w96.pt")
    with pytest.raises(CheckpointError, match="unknown width 96: pass num_heads"):
        load_encoder(tmp_path / "w96.pt")
    four, _ = load_encoder(tmp_path / "w96.pt", num_heads=4)
    assert four.cfg.num_heads == 4 and four.cfg.head_dim == 24
    vit_b = VJepa2Encoder(encoder_config("tiny", embed_dim=768, num_heads=12, depth=1, mlp_dim=32, img_size=16))
    torch.save({"target_encoder": vit_b.state_dict()}, tmp_path / "b.pt")
    assert load_encoder(tmp_path / "b.pt", img_size=16)[0].cfg.num_heads == 12


def _one_line_refusal(path, match):
    with pytest.raises(CheckpointError, match=match) as err:
        load_encoder(path)
    assert "\n" not in str(err.value)


def test_unknown_layouts_are_refused_in_one_line(tmp_path):
    torch.save({"optimizer": {}, "epoch": 3}, tmp_path / "opt.pt")
    _one_line_refusal(tmp_path / "opt.pt", r"opt.pt: no encoder found; top-level keys: \['epoch', 'optimizer'\]")
    torch.save({"model_state_dict": {"predictor.w": torch.zeros(1)}, "config": {}}, tmp_path / "best.pt")
    _one_line_refusal(tmp_path / "best.pt", r"top-level keys: \['config', 'model_state_dict'\]")
    torch.save({"target_encoder": {"backbone.head.weight": torch.zeros(1)}}, tmp_path / "head.pt")
    _one_line_refusal(tmp_path / "head.pt", r"no encoder found under 'target_encoder' \(no patch_embed.proj.weight\)")
    (tmp_path / "notes.pt").write_text("not a checkpoint\nat all\n")
    _one_line_refusal(tmp_path / "notes.pt", "notes.pt: not a readable torch checkpoint")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "weights.bin").write_bytes(b"")
    _one_line_refusal(tmp_path / "folder", r"needs config.json \+ model.safetensors, found \['weights.bin'\]")
    _one_line_refusal(tmp_path / "missing.pt", "no such file or folder")
