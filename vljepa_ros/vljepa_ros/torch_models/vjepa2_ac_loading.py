"""The released V-JEPA 2-AC checkpoint (`vjepa2-ac-vitg.pt`): `load_vjepa2_ac(path)` and a writer for test files.

Layout: `{"encoder": state, "predictor": state}`, every key prefixed `module.backbone.` (stripped here). The
encoder is the V-JEPA 2.0 `.pt` layout (`checkpoint_layouts`, a stale `pos_embed` dropped); the predictor is
`VisionTransformerPredictorAC` under its own names. Both load key-exact: every key used, every parameter filled,
every shape checked; anything else is refused in one line naming what was found. Head counts are not in the
weights: the encoder's come from its width (or `num_heads`), the predictor's default is the published 16.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from vljepa_ros.torch_models.checkpoint import CheckpointError, strip_prefixes
from vljepa_ros.torch_models.checkpoint_layouts import PT_2_0_IGNORED_KEYS, is_2_1_state, pt_2_0_config, pt_key_map
from vljepa_ros.torch_models.encoder_loading import fill
from vljepa_ros.torch_models.vjepa2_ac_predictor import ACPredictorConfig, VJepa2ACPredictor
from vljepa_ros.torch_models.vjepa2_encoder import VJepa2Encoder

AC_ENTRIES = ("encoder", "predictor")
AC_KEY_PREFIX = "module.backbone."
AC_PREDICTOR_HEADS = 16  # published (`vit_ac_predictor` as torch.hub builds it)
AC_NATIVE_CROP = 256
# One step is one image repeated into one tubelet of 2 frames.
AC_STEP_FRAMES = 2


@dataclass(frozen=True)
class ACCheckpointInfo:
    """Where a loaded AC model came from and what in the file was left out."""

    path: Path
    ignored: tuple[str, ...]


def predictor_config_from_state(
    state: Mapping[str, torch.Tensor], grid: tuple[int, int], num_heads: int, what: str = "predictor"
) -> ACPredictorConfig:
    """AC predictor architecture read off the weight shapes; the grid from the encoder, heads given."""
    try:
        embed_dim, encoder_dim = state["predictor_embed.weight"].shape
        action_dim = state["action_encoder.weight"].shape[1]
        mlp_dim = state["predictor_blocks.0.mlp.fc1.weight"].shape[0]
    except KeyError as missing:
        raise CheckpointError(f"{what}: no {missing.args[0]} (is this a V-JEPA 2-AC predictor?)") from None
    depth = len({k.split(".")[1] for k in state if k.startswith("predictor_blocks.")})
    try:
        return ACPredictorConfig(
            encoder_dim=encoder_dim,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            mlp_dim=mlp_dim,
            action_dim=action_dim,
            grid_height=grid[0],
            grid_width=grid[1],
            qkv_bias="predictor_blocks.0.attn.qkv.bias" in state,
        )
    except ValueError as err:
        raise CheckpointError(f"{what}: {err}") from None


def read_ac_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], tuple[str, ...]]:
    """(encoder state, predictor state, other top-level entries) with prefixes stripped, or CheckpointError."""
    try:
        # Memory-mapped: the released file is several GB and its tensors are copied into the model once.
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # torch raises several types for files that are not its own
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({type(e).__name__}: {first})") from None
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"{path}: not a V-JEPA 2-AC checkpoint; the file holds a {type(checkpoint).__name__}")
    missing = [k for k in AC_ENTRIES if not isinstance(checkpoint.get(k), Mapping)]
    if missing:
        raise CheckpointError(
            f"{path}: not a V-JEPA 2-AC checkpoint: no {' or '.join(missing)} entry; "
            f"top-level keys: {sorted(map(str, checkpoint))[:12]}"
        )
    others = tuple(sorted(str(k) for k in checkpoint if k not in AC_ENTRIES))
    return strip_prefixes(checkpoint["encoder"]), strip_prefixes(checkpoint["predictor"]), others


def load_vjepa2_ac(
    path: str | Path,
    crop: int = AC_NATIVE_CROP,
    num_heads: int | None = None,
    predictor_num_heads: int = AC_PREDICTOR_HEADS,
) -> tuple[VJepa2Encoder, VJepa2ACPredictor, ACCheckpointInfo]:
    """(encoder for one step at `crop` px, AC predictor on its grid, where they came from), both in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    enc_state, pred_state, others = read_ac_checkpoint(path)
    if "patch_embed.proj.weight" not in enc_state:
        raise CheckpointError(f"{path} [encoder]: no patch_embed.proj.weight; its keys: {sorted(enc_state)[:6]}")
    if is_2_1_state(enc_state):
        raise CheckpointError(f"{path} [encoder]: V-JEPA 2.1 keys found; the AC encoder is the 2.0 layout")
    dropped = tuple(k for k in PT_2_0_IGNORED_KEYS if k in enc_state)
    enc_state = {k: v for k, v in enc_state.items() if k not in dropped}
    try:
        enc_cfg = pt_2_0_config(enc_state, AC_STEP_FRAMES, crop, num_heads)
    except ValueError as err:
        raise CheckpointError(f"{path} [encoder]: {err}") from None
    encoder = fill(VJepa2Encoder(enc_cfg), enc_state, pt_key_map(VJepa2Encoder(enc_cfg)), f"{path} [encoder]")
    _, grid_h, grid_w = enc_cfg.grid
    pred_cfg = predictor_config_from_state(pred_state, (grid_h, grid_w), predictor_num_heads, f"{path} [predictor]")
    if pred_cfg.encoder_dim != enc_cfg.embed_dim:
        raise CheckpointError(
            f"{path}: predictor_embed takes width {pred_cfg.encoder_dim}, the encoder is {enc_cfg.embed_dim} wide"
        )
    predictor = VJepa2ACPredictor(pred_cfg)
    predictor = fill(predictor, pred_state, {k: (k,) for k in predictor.state_dict()}, f"{path} [predictor]")
    return encoder, predictor, ACCheckpointInfo(path, others + tuple(f"encoder.{k}" for k in dropped))


def save_vjepa2_ac_checkpoint(encoder: VJepa2Encoder, predictor: VJepa2ACPredictor, path: str | Path) -> Path:
    """Write weights in the released layout (keys prefixed `module.backbone.`, with a stale encoder `pos_embed`)."""
    path = Path(path)
    enc = {AC_KEY_PREFIX + k: v for k, v in encoder.state_dict().items()}
    enc[AC_KEY_PREFIX + "pos_embed"] = torch.zeros(1, encoder.cfg.num_tokens, encoder.cfg.embed_dim)
    pred = {AC_KEY_PREFIX + k: v for k, v in predictor.state_dict().items()}
    torch.save({"encoder": enc, "predictor": pred}, path)
    return path
