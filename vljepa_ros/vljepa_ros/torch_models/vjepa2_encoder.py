"""V-JEPA 2 / 2.1 vision transformer (the VL-JEPA X-encoder), parameter names as in the official checkpoints.

Layout: Conv3d tubelet patch embedding (+ a modality embedding in 2.1) -> pre-norm blocks with 3D rotary
attention -> final LayerNorm (`norm`; in 2.1 the last of the hierarchical `norms_block`).
Tokens are in (t, h, w) order; there is no CLS token, no register and no absolute position embedding.

3D RoPE: the head dim is split into three equal even sub-blocks (depth, height, width) of size
2*((head_dim//3)//2); any remainder stays unrotated. Within a sub-block of size d, omega_i = 10000^(-i/(d/2)).
The released V-JEPA 2.0 weights were trained with *tiled* frequencies ([f0..f(d/2-1), f0..f(d/2-1)]) while
rotation pairs are adjacent (x[2i], x[2i+1]); `rope_tiled_freqs=True` reproduces that. False gives the
pairwise-consistent form (repeat_interleave) used by V-JEPA 2.1.
V-JEPA 2.1 (`interpolate_rope`) also scales row/column positions onto the pretraining grid G:
pos * (G - 1) / (patches - 1), frames unscaled; `rope_pretrain_grid=G` turns that on.

Positions are computed in float32 with broadcast multiplies (no int64 einsum) so the graph exports to ONNX.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class VJepa2EncoderConfig:
    """Architecture of one encoder. `num_frames`/`img_size` are the clip shape the model is exported for."""

    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_dim: int = 4096
    patch_size: int = 16
    tubelet_size: int = 2
    in_chans: int = 3
    num_frames: int = 16
    img_size: int = 256
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_tiled_freqs: bool = True  # V-JEPA 2.0 quirk; False for 2.1 weights
    rope_pretrain_grid: int | None = None  # 2.1: row/column positions scaled onto this grid
    modality_embedding: bool = False  # 2.1: learned `video_mod_embed` / `img_mod_embed` added to the patches
    image_patch_embed: bool = False  # 2.1: `patch_embed_img` (tubelet 1) for single-frame (T=1) inputs
    hierarchical_norms: int = 0  # 2.1: `norms_block` of this size replaces `norm`; the last one gives the output

    def __post_init__(self):
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if (self.embed_dim // self.num_heads) // 3 < 2:
            raise ValueError("head_dim must be >= 6 for 3D RoPE")
        if self.img_size % self.patch_size:
            raise ValueError(f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}")
        if self.num_frames % self.tubelet_size:
            raise ValueError(f"num_frames {self.num_frames} is not a multiple of tubelet_size {self.tubelet_size}")

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def grid(self) -> tuple[int, int, int]:
        """Token grid (T', H', W') for the configured clip shape."""
        s = self.img_size // self.patch_size
        return self.num_frames // self.tubelet_size, s, s

    @property
    def num_tokens(self) -> int:
        t, h, w = self.grid
        return t * h * w


# Published sizes (facebookresearch/vjepa2 vision_transformer.py); `tiny` is for tests.
ENCODER_PRESETS = {
    "tiny": VJepa2EncoderConfig(
        embed_dim=96, depth=2, num_heads=4, mlp_dim=192, patch_size=8, num_frames=8, img_size=64
    ),
    "vit_b": VJepa2EncoderConfig(embed_dim=768, depth=12, num_heads=12, mlp_dim=3072),
    "vit_l": VJepa2EncoderConfig(embed_dim=1024, depth=24, num_heads=16, mlp_dim=4096),
    "vit_h": VJepa2EncoderConfig(embed_dim=1280, depth=32, num_heads=16, mlp_dim=5120),
    "vit_g": VJepa2EncoderConfig(embed_dim=1408, depth=40, num_heads=22, mlp_dim=6144),
    "vit_G": VJepa2EncoderConfig(embed_dim=1664, depth=48, num_heads=26, mlp_dim=8192),
}


def encoder_config(preset: str, **overrides) -> VJepa2EncoderConfig:
    """A preset with fields overridden, e.g. encoder_config("vit_l", num_frames=16, img_size=256)."""
    if preset not in ENCODER_PRESETS:
        raise ValueError(f"unknown encoder preset {preset!r}; one of {sorted(ENCODER_PRESETS)}")
    return replace(ENCODER_PRESETS[preset], **overrides)


def rope_sub_dim(head_dim: int) -> int:
    """Size of each of the three rotated sub-blocks of a head."""
    return 2 * ((head_dim // 3) // 2)


def rope_angles(pos: torch.Tensor, dim: int, theta: float, tiled: bool) -> torch.Tensor:
    """Angles (N, dim) for float positions (N,): pos * omega, laid out tiled or interleaved over the pairs."""
    omega = 1.0 / theta ** (torch.arange(dim // 2, dtype=torch.float32, device=pos.device) / (dim / 2.0))
    freq = pos.to(torch.float32)[:, None] * omega[None, :]
    return freq.repeat(1, 2) if tiled else freq.repeat_interleave(2, dim=1)


def rotate_adjacent_pairs(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x*cos + rot(x)*sin with rot pairing adjacent channels: (x0, x1) -> (-x1, x0)."""
    pairs = x.unflatten(-1, (-1, 2))
    rotated = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
    return x * cos + rotated * sin


def grid_positions(
    grid: tuple[int, int, int], device=None, pretrain_grid: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Float32 (frame, row, col) position of each token in (t, h, w) order.

    With `pretrain_grid` G, rows and columns span [0, G-1] whatever the grid: pos * (G - 1) / (n - 1)
    (multiply first, as V-JEPA 2.1 does, so the float32 values match); a side of one patch stays at 0.
    """
    t, h, w = grid
    ft = torch.arange(t, dtype=torch.float32, device=device)[:, None, None].expand(t, h, w)
    fh = torch.arange(h, dtype=torch.float32, device=device)[None, :, None].expand(t, h, w)
    fw = torch.arange(w, dtype=torch.float32, device=device)[None, None, :].expand(t, h, w)
    if pretrain_grid is not None:
        fh = fh * (pretrain_grid - 1) / (h - 1) if h > 1 else fh
        fw = fw * (pretrain_grid - 1) / (w - 1) if w > 1 else fw
    return ft.reshape(-1), fh.reshape(-1), fw.reshape(-1)


class RoPE3D(nn.Module):
    """Applies the 3D rotary embedding to (B, heads, N, head_dim) queries/keys."""

    def __init__(self, head_dim: int, theta: float, tiled: bool, pretrain_grid: int | None = None):
        super().__init__()
        self.head_dim = head_dim
        self.sub = rope_sub_dim(head_dim)
        self.theta = theta
        self.tiled = tiled
        self.pretrain_grid = pretrain_grid

    def tables(self, grid: tuple[int, int, int], device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """cos/sin tables (N, 3*sub) for the token grid, in float32."""
        positions = grid_positions(grid, device, self.pretrain_grid)
        angles = torch.cat([rope_angles(p, self.sub, self.theta, self.tiled) for p in positions], dim=-1)
        return angles.cos(), angles.sin()

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        rot = 3 * self.sub
        # Rotating the three sub-blocks at once equals rotating each: pairs never cross a sub-block boundary.
        out = rotate_adjacent_pairs(x[..., :rot], cos.to(x.dtype), sin.to(x.dtype))
        return torch.cat([out, x[..., rot:]], dim=-1) if rot < self.head_dim else out


class Attention(nn.Module):
    def __init__(self, cfg: VJepa2EncoderConfig):
        super().__init__()
        self.num_heads = cfg.num_heads
        self.qkv = nn.Linear(cfg.embed_dim, 3 * cfg.embed_dim, bias=cfg.qkv_bias)
        self.proj = nn.Linear(cfg.embed_dim, cfg.embed_dim)
        self.rope = RoPE3D(cfg.head_dim, cfg.rope_theta, cfg.rope_tiled_freqs, cfg.rope_pretrain_grid)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).unflatten(-1, (3, self.num_heads, -1)).permute(2, 0, 3, 1, 4)
        q, k = self.rope(q, cos, sin), self.rope(k, cos, sin)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, cfg: VJepa2EncoderConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.attn = Attention(cfg)
        self.norm2 = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.mlp = Mlp(cfg.embed_dim, cfg.mlp_dim)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), cos, sin)
        return x + self.mlp(self.norm2(x))


class PatchEmbed3D(nn.Module):
    def __init__(self, cfg: VJepa2EncoderConfig, tubelet_size: int):
        super().__init__()
        k = (tubelet_size, cfg.patch_size, cfg.patch_size)
        self.proj = nn.Conv3d(cfg.in_chans, cfg.embed_dim, kernel_size=k, stride=k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class VJepa2Encoder(nn.Module):
    """(B, 3, T, H, W) normalised clip -> (B, N, D) tokens. An image (B, 3, H, W) is repeated to T frames.

    With `image_patch_embed` (2.1), a single frame (B, 3, 1, H, W) takes the tubelet-1 image path instead.
    """

    def __init__(self, cfg: VJepa2EncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = PatchEmbed3D(cfg, cfg.tubelet_size)
        self.patch_embed_img = PatchEmbed3D(cfg, 1) if cfg.image_patch_embed else None
        if cfg.modality_embedding:
            self.img_mod_embed = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
            self.video_mod_embed = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        if cfg.hierarchical_norms:
            self.norms_block = nn.ModuleList(
                nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps) for _ in range(cfg.hierarchical_norms)
            )
        else:
            self.norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            x = x.unsqueeze(2).expand(-1, -1, self.cfg.num_frames, -1, -1)
        _, _, t, h, w = x.shape
        image = self.patch_embed_img is not None and t == 1
        p, tub = self.cfg.patch_size, 1 if image else self.cfg.tubelet_size
        grid = (t // tub, h // p, w // p)
        cos, sin = self.blocks[0].attn.rope.tables(grid, x.device) if self.cfg.depth else (None, None)
        x = self.patch_embed_img(x) if image else self.patch_embed(x)
        if self.cfg.modality_embedding:
            x = x + (self.img_mod_embed if image else self.video_mod_embed)
        for block in self.blocks:
            x = block(x, cos, sin)
        return self.norms_block[-1](x) if self.cfg.hierarchical_norms else self.norm(x)
