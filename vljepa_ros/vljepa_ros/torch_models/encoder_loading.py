"""One entry point for V-JEPA encoder weights in any published layout: `load_encoder(path)`.

The layout is told from the path and the keys (see `checkpoint_layouts`): a folder with config.json +
model.safetensors (or a `.safetensors` file next to its config.json) is Hugging Face; a torch file whose
encoder has a 2.1-only key is V-JEPA 2.1; any other torch file holding a V-JEPA encoder is 2.0. Anything else is
refused in one line saying what was found. Loading is key-exact: every encoder key of the file is used, every
parameter is filled, every shape is checked, and missing/unexpected keys are named in the file's own names.
Torch files are read with `torch.load(..., weights_only=True)`, Hugging Face ones with safetensors.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from vljepa_ros.torch_models.checkpoint import CheckpointError, strip_prefixes
from vljepa_ros.torch_models.checkpoint_layouts import (
    HF_CONFIG,
    HF_IGNORED_PREFIXES,
    HF_STRIP_PREFIX,
    HF_WEIGHTS,
    HF_WEIGHTS_INDEX,
    LAYOUT_2_0,
    LAYOUT_2_1,
    LAYOUT_HF,
    PT_2_0_IGNORED_KEYS,
    PT_2_0_NATIVE_CROP,
    PT_2_1_NATIVE_CROP,
    PT_ENCODER_ENTRIES,
    KeyMap,
    hf_encoder_config,
    hf_key_map,
    is_2_1_state,
    pt_2_0_config,
    pt_2_1_config,
    pt_key_map,
)
from vljepa_ros.torch_models.vjepa2_encoder import VJepa2Encoder


@dataclass(frozen=True)
class EncoderCheckpointInfo:
    """Where a loaded encoder came from: layout, the file entry used, and what in the file was left out."""

    layout: str  # LAYOUT_2_0, LAYOUT_2_1 or LAYOUT_HF
    path: Path
    entry: str  # the state dict used: "target_encoder", "ema_encoder", ..., or the safetensors file name(s)
    ignored: tuple[str, ...]  # other top-level entries, dropped keys and key prefixes present in the file


def gather_state(
    source: Mapping[str, torch.Tensor], key_map: KeyMap, model: torch.nn.Module, what: str
) -> dict[str, torch.Tensor]:
    """The model's state dict from `source` via `key_map`; every source key used, every shape checked."""
    wanted = {key for keys in key_map.values() for key in keys}
    missing, unexpected = sorted(wanted - source.keys()), sorted(source.keys() - wanted)
    if missing or unexpected:
        raise CheckpointError(
            f"{what}: {len(missing)} missing key(s) {missing[:4]}, {len(unexpected)} unexpected {unexpected[:4]}"
        )
    expected = model.state_dict()
    state = {}
    for ours, keys in key_map.items():
        full = tuple(expected[ours].shape)
        part = (full[0] // len(keys), *full[1:])
        for key in keys:
            if tuple(source[key].shape) != part:
                raise CheckpointError(f"{what}: {key} has shape {tuple(source[key].shape)}, the model expects {part}")
        state[ours] = source[keys[0]] if len(keys) == 1 else torch.cat([source[key] for key in keys])
    return state


def read_torch_encoder(path: Path, entry: str | None) -> tuple[str, dict[str, torch.Tensor], tuple[str, ...]]:
    """(entry used, encoder state with prefixes stripped, other top-level entries) from a V-JEPA `.pt` file."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for files that are not its own
        first_line = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({type(e).__name__}: {first_line})") from None
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"{path}: no encoder found; the file holds a {type(checkpoint).__name__}, not a dict")
    if entry is None:
        entry = next((k for k in PT_ENCODER_ENTRIES if isinstance(checkpoint.get(k), Mapping)), None)
    if entry is None and checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        entry, state = "(flat state dict)", checkpoint
    elif entry is None or not isinstance(checkpoint.get(entry), Mapping):
        raise CheckpointError(f"{path}: no encoder found; top-level keys: {sorted(map(str, checkpoint))[:12]}")
    else:
        state = checkpoint[entry]
    state = strip_prefixes(state)
    if "patch_embed.proj.weight" not in state:
        raise CheckpointError(
            f"{path}: no encoder found under {entry!r} (no patch_embed.proj.weight); its keys: {sorted(state)[:6]}"
        )
    others = () if entry == "(flat state dict)" else tuple(sorted(str(k) for k in checkpoint if k != entry))
    return entry, state, others


def hf_folder_files(path: Path) -> tuple[Path, list[Path]]:
    """(config.json, safetensors files) of a Hugging Face model folder, or of the folder holding `path`."""
    folder = path if path.is_dir() else path.parent
    config = folder / HF_CONFIG
    if path.is_file():
        weights = [path]
    elif (folder / HF_WEIGHTS_INDEX).is_file():
        weight_map = json.loads((folder / HF_WEIGHTS_INDEX).read_text())["weight_map"]
        weights = [folder / name for name in sorted(set(weight_map.values()))]
    else:
        weights = [folder / HF_WEIGHTS]
    if not config.is_file() or not all(w.is_file() for w in weights):
        found = sorted(p.name for p in folder.iterdir())[:12]
        raise CheckpointError(
            f"{path}: no encoder found; a Hugging Face folder needs {HF_CONFIG} + {HF_WEIGHTS}, found {found}"
        )
    return config, weights


def read_hf_encoder(weights: list[Path]) -> tuple[dict[str, torch.Tensor], tuple[str, ...]]:
    """(encoder tensors under HF names, the ignored prefixes present) from the safetensors files."""
    tensors: dict[str, torch.Tensor] = {}
    for file in weights:
        tensors.update(load_file(file))
    tensors = {k.removeprefix(HF_STRIP_PREFIX): v for k, v in tensors.items()}
    ignored = tuple(p + "*" for p in HF_IGNORED_PREFIXES if any(k.startswith(p) for k in tensors))
    return {k: v for k, v in tensors.items() if not k.startswith(HF_IGNORED_PREFIXES)}, ignored


def fill(model: VJepa2Encoder, source: Mapping[str, torch.Tensor], key_map: KeyMap, what: str) -> VJepa2Encoder:
    """Load `source` into `model` through `key_map` (strictly); the model in eval mode."""
    model.load_state_dict(gather_state(source, key_map, model, what), strict=True)
    return model.eval()


def load_encoder(
    path: str | Path,
    num_frames: int = 16,
    img_size: int | None = None,
    num_heads: int | None = None,
    entry: str | None = None,
) -> tuple[VJepa2Encoder, EncoderCheckpointInfo]:
    """(encoder sized for a (num_frames, img_size) clip, where it came from) from V-JEPA weights in any layout.

    `img_size=None` takes the layout's native crop (Hugging Face: config.json `crop_size`; 2.1: 384; 2.0: 256).
    `num_heads` is needed only for widths that are not a published size (the weights do not record it; a
    Hugging Face config.json does, and a different value is refused). `entry` forces the state dict of a
    `.pt` file (e.g. "encoder"); by default the first of PT_ENCODER_ENTRIES present is used.
    Positions follow the input grid at any crop, as in the original code (Hugging Face's own model takes the
    row length from config.json `crop_size`, so it agrees with this one only at that crop).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or folder")
    if path.is_dir() or path.suffix == ".safetensors":
        config_path, weights = hf_folder_files(path)
        try:
            config = json.loads(config_path.read_text())
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{config_path}: not JSON ({e})") from None
        source, ignored = read_hf_encoder(weights)
        model = VJepa2Encoder(hf_encoder_config(config, num_frames, img_size, num_heads))
        model = fill(model, source, hf_key_map(model), str(path))
        info = EncoderCheckpointInfo(LAYOUT_HF, path, ", ".join(w.name for w in weights), ignored)
        return model, info
    used, state, others = read_torch_encoder(path, entry)
    if is_2_1_state(state):
        layout, config_of, crop, dropped = LAYOUT_2_1, pt_2_1_config, PT_2_1_NATIVE_CROP, ()
    else:
        dropped = tuple(k for k in PT_2_0_IGNORED_KEYS if k in state)
        layout, config_of, crop = LAYOUT_2_0, pt_2_0_config, PT_2_0_NATIVE_CROP
        state = {k: v for k, v in state.items() if k not in dropped}
    model = VJepa2Encoder(config_of(state, num_frames, img_size or crop, num_heads))
    model = fill(model, state, pt_key_map(model), f"{path} [{used}]")
    return model, EncoderCheckpointInfo(layout, path, used, others + dropped)


def describe(info: EncoderCheckpointInfo, model: VJepa2Encoder) -> str:
    """One line for logs: layout, entry, size and clip shape."""
    cfg = model.cfg
    ignored = f"; ignored {', '.join(info.ignored)}" if info.ignored else ""
    return (
        f"{info.path.name}: {info.layout} [{info.entry}] width {cfg.embed_dim}, depth {cfg.depth}, "
        f"{cfg.num_heads} heads, clip {cfg.num_frames}x{cfg.img_size}px{ignored}"
    )
