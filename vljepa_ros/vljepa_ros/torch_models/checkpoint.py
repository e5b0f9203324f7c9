"""Checkpoint loading: official V-JEPA 2.0 encoder files, and this project's predictor files.

`encoder_loading.load_encoder` is the entry point for encoder weights in any layout (2.0 / 2.1 `.pt`, Hugging
Face folders); this module holds the pieces shared with it.

Official encoder files are dicts holding several state dicts (`encoder`, `target_encoder`, `predictor`,
optimiser state, ...); the encoder weights to use are `target_encoder` (the EMA teacher; 2.1 B/L name it
`ema_encoder`), falling back to `encoder`. Tensor keys carry `module.` (DDP) and `backbone.` (wrapper)
prefixes, which are stripped. Everything is read with `torch.load(..., weights_only=True)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from vljepa_ros.torch_models.vjepa2_encoder import VJepa2Encoder, VJepa2EncoderConfig
from vljepa_ros.torch_models.vljepa_predictor import VLJepaPredictor, VLJepaPredictorConfig

ENCODER_KEYS = ("target_encoder", "ema_encoder", "encoder")
STRIP_PREFIXES = ("module.", "backbone.")
# Entries a RoPE encoder has no parameter for (a stale sin-cos table in some files); dropped on load.
IGNORED_KEYS = ("pos_embed",)
# Head counts of the published sizes, keyed by width (not recoverable from the weights).
HEADS_OF_WIDTH = {768: 12, 1024: 16, 1280: 16, 1408: 22, 1664: 26}


class CheckpointError(ValueError):
    """A checkpoint file does not hold what the model needs."""


def strip_prefixes(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove leading `module.`/`backbone.` (in any order, repeated) from every key."""
    out = {}
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for prefix in STRIP_PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix) :], True
        out[key] = value
    return out


def _drop_ignored(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if k not in IGNORED_KEYS}


def select_encoder_state(checkpoint: Mapping[str, Any], key: str | None = None) -> tuple[str, dict[str, torch.Tensor]]:
    """(which key was used, encoder state dict with prefixes stripped) from a loaded official checkpoint.

    `key` forces one entry (e.g. "encoder", which the torch.hub loader uses); otherwise the first of
    ENCODER_KEYS present is taken.
    """
    if key is not None:
        if not isinstance(checkpoint.get(key), Mapping):
            raise CheckpointError(f"no state dict under {key!r}; found keys {sorted(checkpoint)[:8]}")
        return key, _drop_ignored(strip_prefixes(checkpoint[key]))
    for key in ENCODER_KEYS:
        if key in checkpoint and isinstance(checkpoint[key], Mapping):
            return key, _drop_ignored(strip_prefixes(checkpoint[key]))
    if checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return "(flat state dict)", _drop_ignored(strip_prefixes(checkpoint))
    raise CheckpointError(f"no encoder weights: expected one of {ENCODER_KEYS}, found keys {sorted(checkpoint)[:8]}")


def encoder_config_from_state(
    state: Mapping[str, torch.Tensor],
    num_frames: int,
    img_size: int,
    rope_tiled_freqs: bool = True,
    num_heads: int | None = None,
) -> VJepa2EncoderConfig:
    """Architecture read off the weight shapes (width, depth, MLP, patch, tubelet); heads from the width."""
    try:
        patch_w = state["patch_embed.proj.weight"]
    except KeyError:
        raise CheckpointError("missing patch_embed.proj.weight (is this a V-JEPA 2 encoder?)") from None
    embed_dim, in_chans, tubelet, patch, _ = patch_w.shape
    depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    heads = num_heads or HEADS_OF_WIDTH.get(embed_dim)
    if heads is None:
        raise CheckpointError(f"unknown width {embed_dim}: pass num_heads explicitly")
    return VJepa2EncoderConfig(
        embed_dim=embed_dim,
        depth=depth,
        num_heads=heads,
        mlp_dim=state["blocks.0.mlp.fc1.weight"].shape[0],
        patch_size=patch,
        tubelet_size=tubelet,
        in_chans=in_chans,
        num_frames=num_frames,
        img_size=img_size,
        qkv_bias="blocks.0.attn.qkv.bias" in state,
        rope_tiled_freqs=rope_tiled_freqs,
    )


def load_state_strict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """load_state_dict(strict=True) with a one-line error listing the first missing/unexpected keys."""
    missing, unexpected = model.state_dict().keys() - state.keys(), state.keys() - model.state_dict().keys()
    if missing or unexpected:
        raise CheckpointError(
            f"{what}: {len(missing)} missing key(s) {sorted(missing)[:4]}, "
            f"{len(unexpected)} unexpected {sorted(unexpected)[:4]}"
        )
    for key, value in state.items():
        expected = model.state_dict()[key].shape
        if value.shape != expected:
            raise CheckpointError(f"{what}: {key} has shape {tuple(value.shape)}, the model expects {tuple(expected)}")
    model.load_state_dict(state, strict=True)


def load_official_encoder(
    path: str | Path,
    num_frames: int = 16,
    img_size: int = 256,
    rope_tiled_freqs: bool = True,
    num_heads: int | None = None,
    key: str | None = None,
) -> VJepa2Encoder:
    """Build a V-JEPA 2 encoder from an official checkpoint file, sized for a (num_frames, img_size) clip.

    `rope_tiled_freqs=True` for 2.0 weights (the quirk they were trained with). 2.1 files (extra embeddings,
    hierarchical norms, rescaled positions) and Hugging Face folders load with `encoder_loading.load_encoder`.
    """
    checkpoint = torch.load(Path(path), map_location="cpu", weights_only=True)
    _, state = select_encoder_state(checkpoint, key)
    config = encoder_config_from_state(state, num_frames, img_size, rope_tiled_freqs, num_heads)
    model = VJepa2Encoder(config)
    load_state_strict(model, state, f"{path}")
    return model.eval()


def save_predictor(model: VLJepaPredictor, vocab: list[str], path: str | Path) -> Path:
    """This project's predictor file: {"config": dict, "state_dict": tensors, "vocab": [tokens]}."""
    path = Path(path)
    torch.save({"config": asdict(model.cfg), "state_dict": model.state_dict(), "vocab": list(vocab)}, path)
    return path


def load_predictor(path: str | Path) -> tuple[VLJepaPredictor, list[str]]:
    """(predictor, query vocabulary) from a file written by `save_predictor`."""
    data = torch.load(Path(path), map_location="cpu", weights_only=True)
    missing = {"config", "state_dict", "vocab"} - set(data)
    if missing:
        raise CheckpointError(f"{path}: not a predictor file, missing {sorted(missing)}")
    config = replace(VLJepaPredictorConfig(), **data["config"])
    model = VLJepaPredictor(config)
    load_state_strict(model, data["state_dict"], str(path))
    return model.eval(), list(data["vocab"])
