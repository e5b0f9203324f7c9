"""V-JEPA 2-AC action-conditioned predictor (facebookresearch/vjepa2 `VisionTransformerPredictorAC`).

Parameter names are the released checkpoint's (after `module.backbone.` is stripped), so loading is key-exact.

Per step t the sequence is [action_t, state_t, H*W frame tokens]; a block-causal mask lets every token of step
t attend to every token of steps <= t. RoPE (V-JEPA 2.0's tiled-frequency form, which the released weights
were trained with): frame tokens rotate the depth, height and width sub-blocks of each head by their (t, h, w)
position, h and w scaled by grid_size / H and grid_size / W; the action and state tokens rotate only the depth
sub-block, by t. Giving the conditioning tokens a zero angle for height and width (cos 1, sin 0) rotates all
tokens with one table and one qkv projection over the merged sequence, which is the same math.
Output: the frame tokens (conditioning tokens dropped) -> `predictor_norm` -> `predictor_proj`; token block t
predicts step t + 1.

`extrinsics_encoder` is in the released weights but unused (`use_extrinsics=False`); it is kept so the
checkpoint loads key-exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vljepa_ros.torch_models.vjepa2_encoder import Mlp, rope_angles, rope_sub_dim, rotate_adjacent_pairs

# Conditioning tokens per step: action, state.
CONDITIONING_TOKENS = 2


@dataclass(frozen=True)
class ACPredictorConfig:
    """Architecture of one AC predictor; defaults are the released ViT-g AC predictor's (`vit_ac_predictor`)."""

    encoder_dim: int = 1408
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_dim: int = 4096
    action_dim: int = 7
    grid_height: int = 16
    grid_width: int = 16
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_tiled_freqs: bool = True  # the V-JEPA 2.0 quirk the released weights were trained with

    def __post_init__(self):
        for name in ("encoder_dim", "embed_dim", "num_heads", "mlp_dim", "action_dim", "grid_height", "grid_width"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if rope_sub_dim(self.embed_dim // self.num_heads) < 2:
            raise ValueError(f"head_dim {self.embed_dim // self.num_heads} is too small for 3D RoPE (>= 6)")
        if self.action_dim < 2:
            raise ValueError(
                f"action_dim must be >= 2 (the extrinsics encoder takes action_dim - 1), got {self.action_dim}"
            )

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def tokens_per_frame(self) -> int:
        return self.grid_height * self.grid_width


def ac_rope_tables(cfg: ACPredictorConfig, steps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin (T*(2+H*W), 3*sub) for the merged per-step sequence, from a float32 step index vector (T,).

    The grid scale grid_size / H is 1 here: the predictor is built for the encoder's grid (grid_size = H).
    """
    sub = rope_sub_dim(cfg.head_dim)
    h, w = cfg.grid_height, cfg.grid_width
    per_step = CONDITIONING_TOKENS + h * w
    rows = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w).reshape(-1)
    cols = torch.arange(w, dtype=torch.float32)[None, :].expand(h, w).reshape(-1)
    spatial = torch.cat(
        [
            rope_angles(rows, sub, cfg.rope_theta, cfg.rope_tiled_freqs),
            rope_angles(cols, sub, cfg.rope_theta, cfg.rope_tiled_freqs),
        ],
        dim=-1,
    )  # (H*W, 2*sub)
    cond_spatial = torch.zeros(CONDITIONING_TOKENS, 2 * sub)
    spatial = torch.cat([cond_spatial, spatial], dim=0)  # (per_step, 2*sub)
    depth = rope_angles(steps, sub, cfg.rope_theta, cfg.rope_tiled_freqs)  # (T, sub)
    t = steps.shape[0]
    angles = torch.cat(
        [depth[:, None, :].expand(t, per_step, sub), spatial[None].expand(t, per_step, 2 * sub)], dim=-1
    ).reshape(t * per_step, 3 * sub)
    return angles.cos(), angles.sin()


def block_causal_mask(steps: torch.Tensor, per_step: int) -> torch.Tensor:
    """Boolean (N, N) mask, True where a token may attend: the key's step <= the query's step."""
    step_of = steps[:, None].expand(steps.shape[0], per_step).reshape(-1)
    return step_of[:, None] >= step_of[None, :]


class ACAttention(nn.Module):
    def __init__(self, cfg: ACPredictorConfig):
        super().__init__()
        self.num_heads = cfg.num_heads
        self.rotated = 3 * rope_sub_dim(cfg.head_dim)
        self.qkv = nn.Linear(cfg.embed_dim, 3 * cfg.embed_dim, bias=cfg.qkv_bias)
        self.proj = nn.Linear(cfg.embed_dim, cfg.embed_dim)

    def rotate(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        out = rotate_adjacent_pairs(x[..., : self.rotated], cos, sin)
        return torch.cat([out, x[..., self.rotated :]], dim=-1)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).unflatten(-1, (3, self.num_heads, -1)).permute(2, 0, 3, 1, 4)
        q, k = self.rotate(q, cos, sin), self.rotate(k, cos, sin)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class ACBlock(nn.Module):
    def __init__(self, cfg: ACPredictorConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.attn = ACAttention(cfg)
        self.norm2 = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.mlp = Mlp(cfg.embed_dim, cfg.mlp_dim)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), cos, sin, mask)
        return x + self.mlp(self.norm2(x))


class VJepa2ACPredictor(nn.Module):
    """(tokens (B, T*H*W, D_enc), actions (B, T, A), states (B, T, A)) -> predictions (B, T*H*W, D_enc)."""

    def __init__(self, cfg: ACPredictorConfig):
        super().__init__()
        self.cfg = cfg
        self.predictor_embed = nn.Linear(cfg.encoder_dim, cfg.embed_dim)
        self.action_encoder = nn.Linear(cfg.action_dim, cfg.embed_dim)
        self.state_encoder = nn.Linear(cfg.action_dim, cfg.embed_dim)
        self.extrinsics_encoder = nn.Linear(cfg.action_dim - 1, cfg.embed_dim)
        self.predictor_blocks = nn.ModuleList(ACBlock(cfg) for _ in range(cfg.depth))
        self.predictor_norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.predictor_proj = nn.Linear(cfg.embed_dim, cfg.encoder_dim)

    def forward(self, tokens: torch.Tensor, actions: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        b, t = actions.shape[0], actions.shape[1]
        hw = cfg.tokens_per_frame
        # Step indices from the actions' shape so the exported graph keeps T dynamic.
        steps = torch.ones_like(actions[0, :, 0]).cumsum(0) - 1.0
        frames = self.predictor_embed(tokens).reshape(b, t, hw, cfg.embed_dim)
        cond = torch.stack([self.action_encoder(actions), self.state_encoder(states)], dim=2)
        x = torch.cat([cond, frames], dim=2).flatten(1, 2)
        cos, sin = ac_rope_tables(cfg, steps)
        mask = block_causal_mask(steps, CONDITIONING_TOKENS + hw)
        for block in self.predictor_blocks:
            x = block(x, cos, sin, mask)
        x = x.reshape(b, t, CONDITIONING_TOKENS + hw, cfg.embed_dim)[:, :, CONDITIONING_TOKENS:].flatten(1, 2)
        return self.predictor_proj(self.predictor_norm(x))
