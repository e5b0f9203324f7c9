"""The three published V-JEPA encoder layouts: for each, how to recognise it, its config and its key map.

- V-JEPA 2.0 `.pt` (facebookresearch/vjepa2 `src/`): our parameter names are the file's (after `module.` /
  `backbone.` are stripped); tiled-frequency RoPE; output `norm`.
- V-JEPA 2.1 `.pt` (`app/vjepa_2_1`): the same names plus `patch_embed_img` (tubelet 1), `video_mod_embed` /
  `img_mod_embed` and four hierarchical `norms_block` (the last one gives the output, there is no `norm`);
  interleaved RoPE with row/column positions scaled onto the pretraining grid (`interpolate_rope`).
- Hugging Face `VJEPA2Model` folder (config.json + model.safetensors): query/key/value kept apart
  (concatenated into our fused `qkv`), other names as in HF_LAYER_NAMES; the same math as 2.0.

A key map is {our parameter name: (source key, ...)}; several source keys are concatenated along dim 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch

from vljepa_ros.torch_models.checkpoint import CheckpointError, encoder_config_from_state
from vljepa_ros.torch_models.vjepa2_encoder import VJepa2Encoder, VJepa2EncoderConfig

KeyMap = dict[str, tuple[str, ...]]

LAYOUT_2_0 = "vjepa2.0-pt"
LAYOUT_2_1 = "vjepa2.1-pt"
LAYOUT_HF = "hf-vjepa2"

# ------------------------------------------------------------------ V-JEPA 2.0 / 2.1 `.pt`
# Entries of a training checkpoint that may hold the encoder, in order of preference: 2.1 B/L (distilled) keep
# theirs under `ema_encoder`, so a `target_encoder` next to it may be the teacher; 2.0 and 2.1 g/G use
# `target_encoder` (the EMA teacher); `encoder` (the online network) is the fallback.
PT_ENCODER_ENTRIES = ("ema_encoder", "target_encoder", "encoder")
# Keys a 2.0 file may carry that a RoPE encoder has no parameter for (a stale sin-cos table); 2.1 files are
# loaded strictly by the reference code, so nothing is dropped there.
PT_2_0_IGNORED_KEYS = ("pos_embed",)
# Keys only a 2.1 encoder has.
PT_2_1_MARKERS = ("norms_block.", "video_mod_embed", "img_mod_embed", "patch_embed_img.")
# Native crops: the released 2.1 encoders are all 384 px; 2.0 ones mostly 256 (the weights do not say).
PT_2_0_NATIVE_CROP = 256
PT_2_1_NATIVE_CROP = 384
# 2.1 RoPE pretraining grid by patch size (app/vjepa_2_1 RoPEAttention: 252/14 or 256/16 patches per side).
PT_2_1_PRETRAIN_GRID = {14: 18, 16: 16}
# 2.1 always builds four hierarchical norms (`norms_block`), whatever the depth.
PT_2_1_HIERARCHICAL_NORMS = 4


def is_2_1_state(state: Mapping[str, Any]) -> bool:
    """True when an encoder state dict (prefixes stripped) has any key only V-JEPA 2.1 encoders have."""
    return any(key.startswith(PT_2_1_MARKERS) for key in state)


def pt_2_0_config(
    state: Mapping[str, torch.Tensor], num_frames: int, img_size: int, num_heads: int | None
) -> VJepa2EncoderConfig:
    """2.0 architecture from the weight shapes; heads from the width unless given."""
    return encoder_config_from_state(state, num_frames, img_size, rope_tiled_freqs=True, num_heads=num_heads)


def pt_2_1_config(
    state: Mapping[str, torch.Tensor], num_frames: int, img_size: int, num_heads: int | None
) -> VJepa2EncoderConfig:
    """2.1 architecture: the 2.0 one read off the shapes, with the 2.1 RoPE, embeddings and norms."""
    base = encoder_config_from_state(state, num_frames, img_size, rope_tiled_freqs=False, num_heads=num_heads)
    if base.patch_size not in PT_2_1_PRETRAIN_GRID:
        raise CheckpointError(
            f"V-JEPA 2.1 patch size {base.patch_size}: no RoPE pretraining grid known "
            f"(only for patch sizes {sorted(PT_2_1_PRETRAIN_GRID)})"
        )
    return replace(
        base,
        rope_pretrain_grid=PT_2_1_PRETRAIN_GRID[base.patch_size],
        modality_embedding="video_mod_embed" in state or "img_mod_embed" in state,
        image_patch_embed=any(key.startswith("patch_embed_img.") for key in state),
        hierarchical_norms=PT_2_1_HIERARCHICAL_NORMS,
    )


def pt_key_map(model: VJepa2Encoder) -> KeyMap:
    """2.0 and 2.1 `.pt`: every parameter under its own name."""
    return {key: (key,) for key in model.state_dict()}


# ------------------------------------------------------------------ Hugging Face `VJEPA2Model`
HF_CONFIG = "config.json"
HF_WEIGHTS = "model.safetensors"
HF_WEIGHTS_INDEX = "model.safetensors.index.json"  # sharded weights: {"weight_map": {key: file}}
HF_MODEL_TYPE = "vjepa2"
# `VJEPA2ForVideoClassification` nests the model under `vjepa2.`; stripped before mapping.
HF_STRIP_PREFIX = "vjepa2."
# Parts of HF files the encoder does not use: the JEPA predictor, and a classifier's attentive pooler and head.
HF_IGNORED_PREFIXES = ("predictor.", "pooler.", "classifier.")
# VJEPA2Config fields read here, with that class's defaults (used when config.json leaves one out).
HF_CONFIG_DEFAULTS = {
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "mlp_ratio": 4.0,
    "patch_size": 16,
    "tubelet_size": 2,
    "in_chans": 3,
    "crop_size": 256,
    "layer_norm_eps": 1e-6,
    "qkv_bias": True,
    "hidden_act": "gelu",
}
# Our block parameter -> HF's, under `blocks.{i}.` / `encoder.layer.{i}.` (the fused qkv is handled apart).
HF_LAYER_NAMES = {
    "norm1": "norm1",
    "attn.proj": "attention.proj",
    "norm2": "norm2",
    "mlp.fc1": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
}


def hf_config_value(config: Mapping[str, Any], name: str) -> Any:
    """One VJEPA2Config field from config.json, or the class default."""
    return config.get(name, HF_CONFIG_DEFAULTS[name])


def hf_encoder_config(
    config: Mapping[str, Any], num_frames: int, img_size: int | None, num_heads: int | None
) -> VJepa2EncoderConfig:
    """Our config from a VJEPA2Config dict; `img_size=None` takes its `crop_size`."""
    if config.get("model_type") != HF_MODEL_TYPE:
        raise CheckpointError(f"config.json model_type is {config.get('model_type')!r}, expected {HF_MODEL_TYPE!r}")
    if hf_config_value(config, "hidden_act") != "gelu":
        raise CheckpointError(f"config.json hidden_act {config['hidden_act']!r}: only 'gelu' is implemented")
    heads = hf_config_value(config, "num_attention_heads")
    if num_heads is not None and num_heads != heads:
        raise CheckpointError(f"num_heads {num_heads} contradicts config.json num_attention_heads {heads}")
    patch = hf_config_value(config, "patch_size")
    if isinstance(patch, list | tuple):
        if len(set(patch)) != 1:
            raise CheckpointError(f"config.json patch_size {patch}: only square patches are implemented")
        patch = patch[0]
    width = hf_config_value(config, "hidden_size")
    return VJepa2EncoderConfig(
        embed_dim=width,
        depth=hf_config_value(config, "num_hidden_layers"),
        num_heads=heads,
        mlp_dim=int(width * hf_config_value(config, "mlp_ratio")),  # VJEPA2MLP's hidden size
        patch_size=patch,
        tubelet_size=hf_config_value(config, "tubelet_size"),
        in_chans=hf_config_value(config, "in_chans"),
        num_frames=num_frames,
        img_size=img_size or hf_config_value(config, "crop_size"),
        qkv_bias=hf_config_value(config, "qkv_bias"),
        norm_eps=hf_config_value(config, "layer_norm_eps"),
        rope_tiled_freqs=True,
    )


def hf_key_map(model: VJepa2Encoder) -> KeyMap:
    """Our names -> HF `VJEPA2Model` names (after HF_STRIP_PREFIX)."""
    cfg = model.cfg
    params = ("weight", "bias")
    key_map: KeyMap = {f"patch_embed.proj.{p}": (f"encoder.embeddings.patch_embeddings.proj.{p}",) for p in params}
    for i in range(cfg.depth):
        ours, theirs = f"blocks.{i}.", f"encoder.layer.{i}."
        for p in params if cfg.qkv_bias else ("weight",):
            key_map[f"{ours}attn.qkv.{p}"] = tuple(f"{theirs}attention.{n}.{p}" for n in ("query", "key", "value"))
        for our_name, their_name in HF_LAYER_NAMES.items():
            for p in params:
                key_map[f"{ours}{our_name}.{p}"] = (f"{theirs}{their_name}.{p}",)
    key_map.update({f"norm.{p}": (f"encoder.layernorm.{p}",) for p in params})
    return key_map
