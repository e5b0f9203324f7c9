"""A small random V-JEPA 2-AC checkpoint in the released layout, and the configs it was built from.

Every parameter (LayerNorms included) is drawn at random, so a key mapped to the wrong place shows in the
outputs. Encoder: 96 wide, 2 blocks, 4 heads, patch 8, 32 px (a 4x4 grid). Predictor: 64 wide, 2 blocks, 4 heads
(head dim 16: three rotated sub-blocks of 4 and 4 unrotated channels, so the remainder path is exercised).
"""

from __future__ import annotations

from pathlib import Path

import torch

from vljepa_ros.torch_models.vjepa2_ac_loading import save_vjepa2_ac_checkpoint
from vljepa_ros.torch_models.vjepa2_ac_predictor import ACPredictorConfig, VJepa2ACPredictor
from vljepa_ros.torch_models.vjepa2_encoder import VJepa2Encoder, VJepa2EncoderConfig

SMALL_ENCODER = VJepa2EncoderConfig(
    embed_dim=96, depth=2, num_heads=4, mlp_dim=192, patch_size=8, num_frames=2, img_size=32
)
SMALL_PREDICTOR = ACPredictorConfig(
    encoder_dim=96, embed_dim=64, depth=2, num_heads=4, mlp_dim=128, grid_height=4, grid_width=4
)
SMALL_ENCODER_HEADS = 4
SMALL_PREDICTOR_HEADS = 4


def randomise(module: torch.nn.Module, generator: torch.Generator) -> torch.nn.Module:
    """Every parameter redrawn: N(0, 0.2) weights, LayerNorm scales around 1."""
    with torch.no_grad():
        for name, param in module.named_parameters():
            noise = 0.2 * torch.randn(param.shape, generator=generator)
            param.copy_(1.0 + noise if "norm" in name and name.endswith("weight") else noise)
    return module.eval()


def small_ac_models(seed: int = 0) -> tuple[VJepa2Encoder, VJepa2ACPredictor]:
    generator = torch.Generator().manual_seed(seed)
    encoder = randomise(VJepa2Encoder(SMALL_ENCODER), generator)
    predictor = randomise(VJepa2ACPredictor(SMALL_PREDICTOR), generator)
    return encoder, predictor


def write_small_ac_checkpoint(path: Path, seed: int = 0) -> Path:
    """The small random model in the released layout (`{"encoder", "predictor"}`, `module.backbone.` keys)."""
    return save_vjepa2_ac_checkpoint(*small_ac_models(seed), path)


def export_small_world_model(folder: Path, seed: int = 0) -> Path:
    """The small random model exported as a world model folder; returns its manifest path."""
    from vljepa_ros.export.vjepa2_ac import export_vjepa2_ac

    encoder, predictor = small_ac_models(seed)
    return export_vjepa2_ac(encoder, predictor, folder, log=lambda _: None)
