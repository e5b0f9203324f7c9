"""Gemma 3 text encoder (EmbeddingGemma layout), bidirectional, plus the mean-pool + linear head of a Y-encoder.

Reproduces Hugging Face's Gemma3TextModel with `use_bidirectional_attention`: token embeddings scaled by
sqrt(hidden); pre-norm blocks with RMSNorm (scale 1 + weight) before and after both attention and MLP; q/k
RMSNorm over head_dim; grouped-query attention scaled by query_pre_attn_scalar^-0.5; gelu-tanh gated MLP;
RoPE with theta `rope_local_base_freq` on sliding layers and `rope_theta` on full ones.
Bidirectional sliding layers let token i see token j when |i - j| <= sliding_window // 2 (transformers halves
the configured window for bidirectional models); full layers see every real token. Pad keys are masked.
Parameter names equal Hugging Face's, so a Gemma3TextModel state dict loads as is. `attn_logit_softcapping`
is refused: transformers' Gemma 3 attention never applies it, so a config setting it is ambiguous;
`final_logit_softcapping` concerns the language-model head, which an encoder does not have.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vljepa_ros.torch_models.vljepa_predictor import apply_rope, rope_tables

SLIDING, FULL = "sliding_attention", "full_attention"


@dataclass(frozen=True)
class Gemma3TextConfig:
    vocab_size: int
    hidden_dim: int
    depth: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    mlp_dim: int
    layer_types: tuple[str, ...]
    sliding_window: int
    rms_eps: float = 1e-6
    query_pre_attn_scalar: float = 256.0
    rope_theta: float = 1_000_000.0
    rope_local_theta: float = 10_000.0

    def __post_init__(self):
        if len(self.layer_types) != self.depth:
            raise ValueError(f"{len(self.layer_types)} layer_types for {self.depth} layers")
        unknown = set(self.layer_types) - {SLIDING, FULL}
        if unknown:
            raise ValueError(f"unknown layer types {sorted(unknown)}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads {self.num_heads} is not a multiple of num_kv_heads {self.num_kv_heads}")

    @property
    def bidirectional_reach(self) -> int:
        """Largest |i - j| a sliding layer attends over."""
        return self.sliding_window // 2


def _rope_thetas(hf: Mapping[str, Any]) -> tuple[float, float]:
    """(full, sliding) RoPE thetas from either the `rope_parameters` form or the older flat keys."""
    params = hf.get("rope_parameters")
    if params and FULL in params:
        layer_params = {kind: params.get(kind) or {} for kind in (FULL, SLIDING)}
        for kind, p in layer_params.items():
            if p.get("rope_type", "default") != "default":
                raise ValueError(f"Gemma3 {kind} rope_type {p['rope_type']!r} is not supported (only default)")
        return float(layer_params[FULL].get("rope_theta", 1_000_000.0)), float(
            layer_params[SLIDING].get("rope_theta", 10_000.0)
        )
    scaling = hf.get("rope_scaling")
    if scaling and scaling.get("rope_type", scaling.get("type", "default")) != "default":
        raise ValueError(f"Gemma3 rope_scaling {scaling!r} is not supported (only default)")
    return float(hf.get("rope_theta", 1_000_000.0)), float(hf.get("rope_local_base_freq", 10_000.0))


def gemma3_config_from_hf(hf: Mapping[str, Any]) -> Gemma3TextConfig:
    """Our config from a Hugging Face `gemma3_text` config.json dict (EmbeddingGemma's folder)."""
    if not hf.get("use_bidirectional_attention", False):
        raise ValueError("Gemma3 config without use_bidirectional_attention: only the bidirectional encoder is built")
    if hf.get("hidden_activation", "gelu_pytorch_tanh") != "gelu_pytorch_tanh":
        raise ValueError(f"Gemma3 hidden_activation {hf['hidden_activation']!r} is not supported")
    if hf.get("attention_bias", False):
        raise ValueError("Gemma3 attention_bias=true is not supported")
    if hf.get("attn_logit_softcapping") is not None:
        raise ValueError("Gemma3 attn_logit_softcapping is set, but transformers' Gemma3 attention ignores it")
    depth = int(hf["num_hidden_layers"])
    layer_types = hf.get("layer_types")
    if layer_types is None:
        pattern = int(hf.get("sliding_window_pattern", hf.get("_sliding_window_pattern", 6)))
        layer_types = [SLIDING if (i + 1) % pattern else FULL for i in range(depth)]
    full_theta, local_theta = _rope_thetas(hf)
    return Gemma3TextConfig(
        vocab_size=int(hf["vocab_size"]),
        hidden_dim=int(hf["hidden_size"]),
        depth=depth,
        num_heads=int(hf["num_attention_heads"]),
        num_kv_heads=int(hf["num_key_value_heads"]),
        head_dim=int(hf.get("head_dim") or hf["hidden_size"] // hf["num_attention_heads"]),
        mlp_dim=int(hf["intermediate_size"]),
        layer_types=tuple(layer_types),
        sliding_window=int(hf["sliding_window"]),
        rms_eps=float(hf.get("rms_norm_eps", 1e-6)),
        query_pre_attn_scalar=float(hf.get("query_pre_attn_scalar", 256)),
        rope_theta=full_theta,
        rope_local_theta=local_theta,
    )


class GemmaRMSNorm(nn.Module):
    """RMSNorm with scale (1 + weight), the product taken in float32 before casting back."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (normed * (1.0 + self.weight.float())).to(x.dtype)


class GemmaAttention(nn.Module):
    def __init__(self, cfg: Gemma3TextConfig):
        super().__init__()
        self.num_heads, self.num_kv, self.head_dim = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        self.scale = cfg.query_pre_attn_scalar**-0.5
        self.q_proj = nn.Linear(cfg.hidden_dim, cfg.num_heads * cfg.head_dim, bias=False)
        self.k_proj = nn.Linear(cfg.hidden_dim, cfg.num_kv_heads * cfg.head_dim, bias=False)
        self.v_proj = nn.Linear(cfg.hidden_dim, cfg.num_kv_heads * cfg.head_dim, bias=False)
        self.o_proj = nn.Linear(cfg.num_heads * cfg.head_dim, cfg.hidden_dim, bias=False)
        self.q_norm = GemmaRMSNorm(cfg.head_dim, cfg.rms_eps)
        self.k_norm = GemmaRMSNorm(cfg.head_dim, cfg.rms_eps)

    def forward(self, x, cos, sin, additive_mask):
        b, n, _ = x.shape
        q = self.q_norm(self.q_proj(x).view(b, n, self.num_heads, self.head_dim).transpose(1, 2))
        k = self.k_norm(self.k_proj(x).view(b, n, self.num_kv, self.head_dim).transpose(1, 2))
        v = self.v_proj(x).view(b, n, self.num_kv, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        groups = self.num_heads // self.num_kv
        k = k.repeat_interleave(groups, dim=1)
        v = v.repeat_interleave(groups, dim=1)
        scores = torch.matmul(q, k.transpose(2, 3)) * self.scale
        weights = torch.softmax(scores + additive_mask, dim=-1, dtype=torch.float32).to(q.dtype)
        out = torch.matmul(weights, v)
        return self.o_proj(out.transpose(1, 2).reshape(b, n, -1))


class GemmaMLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=False)
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)

    def forward(self, x):
        return self.down_proj(F.gelu(self.gate_proj(x), approximate="tanh") * self.up_proj(x))


class GemmaBlock(nn.Module):
    def __init__(self, cfg: Gemma3TextConfig):
        super().__init__()
        self.self_attn = GemmaAttention(cfg)
        self.mlp = GemmaMLP(cfg.hidden_dim, cfg.mlp_dim)
        self.input_layernorm = GemmaRMSNorm(cfg.hidden_dim, cfg.rms_eps)
        self.post_attention_layernorm = GemmaRMSNorm(cfg.hidden_dim, cfg.rms_eps)
        self.pre_feedforward_layernorm = GemmaRMSNorm(cfg.hidden_dim, cfg.rms_eps)
        self.post_feedforward_layernorm = GemmaRMSNorm(cfg.hidden_dim, cfg.rms_eps)

    def forward(self, x, cos, sin, additive_mask):
        x = x + self.post_attention_layernorm(self.self_attn(self.input_layernorm(x), cos, sin, additive_mask))
        return x + self.post_feedforward_layernorm(self.mlp(self.pre_feedforward_layernorm(x)))


def attention_masks(attention_mask: torch.Tensor, reach: int, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Additive (B, 1, L, L) masks per layer type: pad keys everywhere, plus |i - j| > reach on sliding layers."""
    keys = attention_mask[:, None, None, :] > 0
    positions = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    near = (positions[:, None] - positions[None, :]).abs() <= reach
    blocked = torch.finfo(dtype).min
    zero = torch.zeros((), dtype=dtype, device=attention_mask.device)
    return {
        FULL: torch.where(keys, zero, blocked),
        SLIDING: torch.where(keys & near[None, None], zero, blocked),
    }


class Gemma3TextModel(nn.Module):
    """(input_ids, attention_mask) int64 (B, L) -> last hidden states (B, L, hidden), final norm applied."""

    def __init__(self, cfg: Gemma3TextConfig):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_dim)
        self.layers = nn.ModuleList(GemmaBlock(cfg) for _ in range(cfg.depth))
        self.norm = GemmaRMSNorm(cfg.hidden_dim, cfg.rms_eps)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = self.embed_tokens(input_ids)
        x = x * torch.tensor(self.cfg.hidden_dim**0.5, dtype=torch.float32).to(x.dtype)
        length = x.shape[1]
        tables = {
            FULL: rope_tables(length, self.cfg.head_dim, self.cfg.rope_theta, x.device),
            SLIDING: rope_tables(length, self.cfg.head_dim, self.cfg.rope_local_theta, x.device),
        }
        masks = attention_masks(attention_mask, self.cfg.bidirectional_reach, x.dtype)
        for layer, kind in zip(self.layers, self.cfg.layer_types, strict=True):
            x = layer(x, *tables[kind], masks[kind])
        return self.norm(x)


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the positions where mask > 0 (B, L, D) -> (B, D); an all-pad row gives zeros."""
    weights = (mask > 0).to(hidden.dtype)[..., None]
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class GemmaYEncoder(nn.Module):
    """(input_ids, attention_mask) -> (B, embedding_dim): masked mean of the last hidden states, then a Linear.

    The output is not normalised (open-vljepa normalises at retrieval time).
    """

    def __init__(self, cfg: Gemma3TextConfig, embedding_dim: int):
        super().__init__()
        self.model = Gemma3TextModel(cfg)
        self.projector = nn.Linear(cfg.hidden_dim, embedding_dim)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.projector(masked_mean(self.model(input_ids, attention_mask), attention_mask))
