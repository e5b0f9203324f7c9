"""open-vljepa (github dion-jy/open-vljepa) `best.pt`: its predictor and Y-encoder as this project's modules.

The file is {"epoch", "model_state_dict", "loss", "config"}; the state dict leaves out the frozen V-JEPA 2
x-encoder (`x_encoder.model.*`, loaded from its own Hugging Face folder). The predictor is the last
`n_keep_layers` Llama-3.2-1B layers (bidirectional, pad mask, RoPE positions 0..L-1 over [visual, query],
Llama-3 frequency scaling) between `vis_proj` and `out_proj`; the Y-encoder is EmbeddingGemma (a Gemma 3 text
model, bidirectional) + masked mean + `projector`. The architectures come from the `config.json` of the Llama
and EmbeddingGemma folders (their weights are not read: best.pt holds them), the tokenizers from their
`tokenizer.json`. Queries: Llama tokenizer (BOS added by its template), right-padded with
`<|finetune_right_pad_id|>` to the query length the model was trained with; captions: Gemma tokenizer, `<pad>`.
Both outputs are unnormalised, as in open-vljepa (it L2-normalises at retrieval time).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer
from torch import nn

from vljepa_ros.torch_models.checkpoint import CheckpointError
from vljepa_ros.torch_models.gemma3_text import GemmaYEncoder, gemma3_config_from_hf
from vljepa_ros.torch_models.vljepa_predictor import Llama3RopeScaling, VLJepaPredictor, VLJepaPredictorConfig

QUERY_PAD_TOKEN = "<|finetune_right_pad_id|>"
CAPTION_PAD_TOKEN = "<pad>"
DEFAULT_MAX_TOKENS = 512  # open-vljepa's default query/caption length when its config names none
# best.pt name prefix -> this project's module name prefix; every other key is the same on both sides.
CHECKPOINT_RENAMES = (
    ("predictor.vis_proj.", "predictor.visual_proj."),
    ("predictor.out_proj.", "predictor.head."),
)


def to_module_key(checkpoint_key: str) -> str:
    """A best.pt key as named in this project's modules."""
    for theirs, ours in CHECKPOINT_RENAMES:
        if checkpoint_key.startswith(theirs):
            return ours + checkpoint_key[len(theirs) :]
    return checkpoint_key


def to_checkpoint_key(module_key: str) -> str:
    """A module key as named in best.pt."""
    for theirs, ours in CHECKPOINT_RENAMES:
        if module_key.startswith(ours):
            return theirs + module_key[len(ours) :]
    return module_key


def read_hf_config(model_dir: str | Path) -> dict[str, Any]:
    """A Hugging Face folder's config.json as a dict."""
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{model_dir}: no config.json")
    return json.loads(path.read_text(encoding="utf-8"))


def llama_rope(hf: Mapping[str, Any]) -> tuple[float, Llama3RopeScaling | None]:
    """(theta, Llama-3 scaling or None) from `rope_parameters` (newer configs) or `rope_theta`/`rope_scaling`."""
    params = hf.get("rope_parameters")
    if params:
        theta, scaling = float(params.get("rope_theta", hf.get("rope_theta", 10_000.0))), params
    else:
        theta, scaling = float(hf.get("rope_theta", 10_000.0)), hf.get("rope_scaling") or {}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "default":
        return theta, None
    if kind != "llama3":
        raise ValueError(f"Llama rope_type {kind!r} is not supported (default or llama3)")
    return theta, Llama3RopeScaling(
        factor=float(scaling["factor"]),
        low_freq_factor=float(scaling["low_freq_factor"]),
        high_freq_factor=float(scaling["high_freq_factor"]),
        original_max_position_embeddings=int(scaling["original_max_position_embeddings"]),
    )


def llama_predictor_config(
    hf: Mapping[str, Any], depth: int, visual_dim: int, embedding_dim: int, max_query_tokens: int
) -> VLJepaPredictorConfig:
    """Predictor config from a Llama config.json dict plus the sizes only the checkpoint knows."""
    for flag in ("attention_bias", "mlp_bias"):
        if hf.get(flag, False):
            raise ValueError(f"Llama {flag}=true is not supported")
    if hf.get("hidden_act", "silu") != "silu":
        raise ValueError(f"Llama hidden_act {hf['hidden_act']!r} is not supported")
    hidden, heads = int(hf["hidden_size"]), int(hf["num_attention_heads"])
    if int(hf.get("head_dim") or hidden // heads) != hidden // heads:
        raise ValueError(f"Llama head_dim {hf['head_dim']} differs from hidden_size / num_attention_heads")
    theta, scaling = llama_rope(hf)
    return VLJepaPredictorConfig(
        visual_dim=visual_dim,
        hidden_dim=hidden,
        depth=depth,
        num_heads=heads,
        num_kv_heads=int(hf.get("num_key_value_heads") or heads),
        mlp_dim=int(hf["intermediate_size"]),
        vocab_size=int(hf["vocab_size"]),
        max_query_tokens=max_query_tokens,
        embedding_dim=embedding_dim,
        rms_eps=float(hf.get("rms_norm_eps", 1e-5)),
        rope_theta=theta,
        rope_scaling=scaling,
    )


def fixed_length_tokenizer(tokenizer_file: str | Path, max_tokens: int, pad_token: str) -> Tokenizer:
    """The tokenizer of a tokenizer.json, truncating and right-padding every text to exactly max_tokens."""
    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    pad_id = tokenizer.token_to_id(pad_token)
    if pad_id is None:
        raise CheckpointError(f"{tokenizer_file}: no {pad_token} token")
    tokenizer.enable_truncation(max_length=max_tokens)
    tokenizer.enable_padding(direction="right", pad_id=pad_id, pad_token=pad_token, length=max_tokens)
    return tokenizer


@dataclass
class OpenVLJepa:
    """The loaded predictor and Y-encoder (eval mode), their tokenizers and the checkpoint's metadata."""

    predictor: VLJepaPredictor
    y_encoder: GemmaYEncoder
    query_tokenizer: Tokenizer
    caption_tokenizer: Tokenizer
    epoch: int | None
    train_config: dict[str, Any]


def _check_state(expected: Mapping[str, torch.Size], state: Mapping[str, torch.Tensor], what: str) -> None:
    missing, unexpected = expected.keys() - state.keys(), state.keys() - expected.keys()
    if missing or unexpected:
        raise CheckpointError(
            f"{what}: {len(missing)} missing key(s) {sorted(missing)[:4]}, "
            f"{len(unexpected)} unexpected {sorted(unexpected)[:4]}"
        )
    for key, shape in expected.items():
        if state[key].shape != shape:
            found = tuple(state[key].shape)
            raise CheckpointError(f"{what}: {key} has shape {found}, the model expects {tuple(shape)}")


def _max_tokens(config: Mapping[str, Any], data_key: str, section: str, section_key: str) -> int:
    # The data loaders pad to `data.<key>`; the model sections carry a fallback.
    data = config.get("data") or {}
    return int(data.get(data_key) or (config.get(section) or {}).get(section_key) or DEFAULT_MAX_TOKENS)


def load_open_vljepa(ckpt: str | Path, llama_dir: str | Path, gemma_dir: str | Path) -> OpenVLJepa:
    """Build and strictly load the predictor and Y-encoder of an open-vljepa best.pt.

    `llama_dir`: the Llama-3.2-1B folder (config.json, tokenizer.json); `gemma_dir`: the EmbeddingGemma-300m
    folder (config.json, tokenizer.json). Every best.pt key must be used and every module weight present with
    its shape, else CheckpointError names the keys.
    """
    data = torch.load(Path(ckpt), map_location="cpu", weights_only=True)
    if not isinstance(data, Mapping) or not isinstance(data.get("model_state_dict"), Mapping):
        raise CheckpointError(f"{ckpt}: not an open-vljepa checkpoint (no model_state_dict)")
    state, config = data["model_state_dict"], data.get("config") or {}
    vis_proj = state.get("predictor.vis_proj.weight")
    if vis_proj is None:
        raise CheckpointError(f"{ckpt}: missing predictor.vis_proj.weight (is this an open-vljepa best.pt?)")
    predictor_section, y_section = config.get("predictor") or {}, config.get("y_encoder") or {}
    max_query = _max_tokens(config, "max_query_len", "predictor", "max_query_len")
    max_caption = _max_tokens(config, "max_caption_len", "y_encoder", "max_target_len")
    try:
        predictor_cfg = llama_predictor_config(
            read_hf_config(llama_dir),
            depth=int(predictor_section.get("n_keep_layers", 8)),
            visual_dim=int(vis_proj.shape[1]),
            embedding_dim=int(predictor_section.get("proj_dim", 1536)),
            max_query_tokens=max_query,
        )
        gemma_cfg = gemma3_config_from_hf(read_hf_config(gemma_dir))
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{ckpt}: unsupported architecture: {exc}") from exc
    modules = nn.ModuleDict(
        {
            "predictor": VLJepaPredictor(predictor_cfg),
            "y_encoder": GemmaYEncoder(gemma_cfg, int(y_section.get("proj_dim", predictor_cfg.embedding_dim))),
        }
    )
    expected = {to_checkpoint_key(k): v.shape for k, v in modules.state_dict().items()}
    _check_state(expected, state, str(ckpt))
    modules.load_state_dict({to_module_key(k): v for k, v in state.items()}, strict=True)
    tokenizer_files = {"llama": Path(llama_dir) / "tokenizer.json", "gemma": Path(gemma_dir) / "tokenizer.json"}
    for name, path in tokenizer_files.items():
        if not path.is_file():
            raise CheckpointError(f"{path}: no tokenizer.json in the {name} folder")
    epoch = data.get("epoch")
    return OpenVLJepa(
        predictor=modules["predictor"].eval(),
        y_encoder=modules["y_encoder"].eval(),
        query_tokenizer=fixed_length_tokenizer(tokenizer_files["llama"], max_query, QUERY_PAD_TOKEN),
        caption_tokenizer=fixed_length_tokenizer(tokenizer_files["gemma"], max_caption, CAPTION_PAD_TOKEN),
        epoch=None if epoch is None else int(epoch),
        train_config=dict(config),
    )
