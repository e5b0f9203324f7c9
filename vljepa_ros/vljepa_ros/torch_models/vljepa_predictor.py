"""VL-JEPA predictor: visual tokens + text query -> one embedding in the Y-encoder space.

Visual tokens are linearly projected to the predictor width, the query's token embeddings are appended, and
bidirectional Llama-style blocks (RMSNorm, SwiGLU, grouped-query attention, 1D RoPE over the joint sequence)
process them. The output is the mean over non-pad tokens (all visual tokens plus the real query tokens),
final RMSNorm applied, through a linear head. The paper's predictor is the last 8 layers of Llama-3.2-1B
(hidden 2048, 32 heads, 8 KV heads, SwiGLU 8192, RMSNorm eps 1e-5, RoPE theta 500000 with Llama-3 frequency
scaling), head to 1536-d. The blocks match Hugging Face's LlamaDecoderLayer (bias-free projections).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Llama3RopeScaling:
    """Llama 3.1+ RoPE frequency scaling (`rope_type: llama3` in a Hugging Face config)."""

    factor: float
    low_freq_factor: float
    high_freq_factor: float
    original_max_position_embeddings: int


@dataclass(frozen=True)
class VLJepaPredictorConfig:
    visual_dim: int = 1024
    hidden_dim: int = 2048
    depth: int = 8
    num_heads: int = 32
    num_kv_heads: int = 8
    mlp_dim: int = 8192
    vocab_size: int = 128256
    max_query_tokens: int = 512
    embedding_dim: int = 1536
    rms_eps: float = 1e-5
    rope_theta: float = 500000.0
    rope_scaling: Llama3RopeScaling | None = None

    def __post_init__(self):
        if isinstance(self.rope_scaling, dict):  # as stored by dataclasses.asdict in predictor files
            object.__setattr__(self, "rope_scaling", Llama3RopeScaling(**self.rope_scaling))
        if self.hidden_dim % self.num_heads:
            raise ValueError(f"hidden_dim {self.hidden_dim} is not divisible by num_heads {self.num_heads}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads {self.num_heads} is not a multiple of num_kv_heads {self.num_kv_heads}")
        if (self.hidden_dim // self.num_heads) % 2:
            raise ValueError("head_dim must be even for RoPE")

    @property
    def head_dim(self) -> int:
        return self.hidden_dim // self.num_heads


PREDICTOR_PRESETS = {
    "tiny": VLJepaPredictorConfig(
        visual_dim=96,
        hidden_dim=64,
        depth=2,
        num_heads=4,
        num_kv_heads=2,
        mlp_dim=128,
        vocab_size=64,
        max_query_tokens=8,
        embedding_dim=32,
    ),
    "paper": VLJepaPredictorConfig(),
}


def predictor_config(preset: str, **overrides) -> VLJepaPredictorConfig:
    """A preset with fields overridden, e.g. predictor_config("tiny", visual_dim=384)."""
    if preset not in PREDICTOR_PRESETS:
        raise ValueError(f"unknown predictor preset {preset!r}; one of {sorted(PREDICTOR_PRESETS)}")
    return replace(PREDICTOR_PRESETS[preset], **overrides)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


def llama3_scaled_inv_freq(inv_freq: torch.Tensor, scaling: Llama3RopeScaling) -> torch.Tensor:
    """Llama-3 scaling: long wavelengths divided by `factor`, short ones kept, a smooth blend in between."""
    old_context = scaling.original_max_position_embeddings
    low_freq_wavelen = old_context / scaling.low_freq_factor
    high_freq_wavelen = old_context / scaling.high_freq_factor
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / scaling.factor, inv_freq)
    smooth = (old_context / wavelen - scaling.low_freq_factor) / (scaling.high_freq_factor - scaling.low_freq_factor)
    smoothed = (1 - smooth) * scaled / scaling.factor + smooth * scaled
    is_medium = (wavelen >= high_freq_wavelen) & (wavelen <= low_freq_wavelen)
    return torch.where(is_medium, smoothed, scaled)


def rope_tables(
    length: int, head_dim: int, theta: float, device=None, scaling: Llama3RopeScaling | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Llama (rotate-half) cos/sin tables (L, head_dim) for positions 0..L-1, computed in float32."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim)
    if scaling is not None:
        inv_freq = llama3_scaled_inv_freq(inv_freq, scaling)
    angles = torch.arange(length, dtype=torch.float32, device=device)[:, None] * inv_freq[None, :]
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


class GQAttention(nn.Module):
    def __init__(self, cfg: VLJepaPredictorConfig):
        super().__init__()
        self.num_heads, self.num_kv, self.head_dim = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        self.q_proj = nn.Linear(cfg.hidden_dim, cfg.num_heads * cfg.head_dim, bias=False)
        self.k_proj = nn.Linear(cfg.hidden_dim, cfg.num_kv_heads * cfg.head_dim, bias=False)
        self.v_proj = nn.Linear(cfg.hidden_dim, cfg.num_kv_heads * cfg.head_dim, bias=False)
        self.o_proj = nn.Linear(cfg.num_heads * cfg.head_dim, cfg.hidden_dim, bias=False)

    def forward(self, x, cos, sin, key_mask):
        b, n, _ = x.shape
        q = self.q_proj(x).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, n, self.num_kv, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, n, self.num_kv, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        groups = self.num_heads // self.num_kv
        k = k.repeat_interleave(groups, dim=1)
        v = v.repeat_interleave(groups, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)  # bidirectional: no causal mask
        return self.o_proj(out.transpose(1, 2).reshape(b, n, -1))


class SwiGLU(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=False)
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaBlock(nn.Module):
    def __init__(self, cfg: VLJepaPredictorConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_dim, cfg.rms_eps)
        self.self_attn = GQAttention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_dim, cfg.rms_eps)
        self.mlp = SwiGLU(cfg.hidden_dim, cfg.mlp_dim)

    def forward(self, x, cos, sin, key_mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, key_mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class VLJepaPredictor(nn.Module):
    """(visual_tokens (B,N,Dv), query_ids (B,Q) int64, query_mask (B,Q) int64) -> (B, embedding_dim)."""

    def __init__(self, cfg: VLJepaPredictorConfig):
        super().__init__()
        self.cfg = cfg
        self.visual_proj = nn.Linear(cfg.visual_dim, cfg.hidden_dim)
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_dim)
        self.layers = nn.ModuleList(LlamaBlock(cfg) for _ in range(cfg.depth))
        self.norm = RMSNorm(cfg.hidden_dim, cfg.rms_eps)
        self.head = nn.Linear(cfg.hidden_dim, cfg.embedding_dim)

    def forward(self, visual_tokens: torch.Tensor, query_ids: torch.Tensor, query_mask: torch.Tensor) -> torch.Tensor:
        b, n, _ = visual_tokens.shape
        x = torch.cat([self.visual_proj(visual_tokens), self.embed_tokens(query_ids)], dim=1)
        keep = torch.cat([torch.ones(b, n, dtype=torch.bool, device=x.device), query_mask > 0], dim=1)
        cos, sin = rope_tables(x.shape[1], self.cfg.head_dim, self.cfg.rope_theta, x.device, self.cfg.rope_scaling)
        key_mask = keep[:, None, None, :]
        for layer in self.layers:
            x = layer(x, cos, sin, key_mask)
        x = self.norm(x)
        weights = keep.to(x.dtype)[..., None]
        pooled = (x * weights).sum(dim=1) / weights.sum(dim=1)
        return self.head(pooled)
