"""V-JEPA 2-AC -> a world model folder: `encoder.onnx`, `predictor.onnx`, `world_model.yaml`.

The encoder graph takes one step's normalised image (batch, 3, S, S) (repeated into a 2-frame tubelet inside)
and returns its raw tokens; the predictor graph takes tokens, actions and states with the batch and the number
of steps dynamic. Each graph is checked against PyTorch with onnxruntime (the predictor at 1, 2 and 3 steps, so
the dynamic step count is checked too); then the folder is loaded the way the runtime loads it and one rollout
is compared with PyTorch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from vljepa_ros.export.graphs import DEFAULT_OPSET, export_graph
from vljepa_ros.export.model import IMAGENET_MEAN, IMAGENET_STD
from vljepa_ros.export.parity import ParityError, check_parity
from vljepa_ros.runtime.manifest import TensorSpec, sha256_of_graph
from vljepa_ros.runtime.onnx_session import SessionConfig
from vljepa_ros.torch_models.vjepa2_ac_predictor import VJepa2ACPredictor
from vljepa_ros.torch_models.vjepa2_encoder import VJepa2Encoder
from vljepa_ros.world_model.manifest import WorldModelManifest, write_world_model_manifest
from vljepa_ros.world_model.model import WorldModel, layer_norm

# The released predictor's mask is built for 64 frames in tubelets of 2.
AC_MAX_STEPS = 32
ENCODER_FILE = "encoder.onnx"
PREDICTOR_FILE = "predictor.onnx"
PARITY_STEPS = (1, 2, 3)


def export_vjepa2_ac(
    encoder: VJepa2Encoder,
    predictor: VJepa2ACPredictor,
    out: str | Path,
    model_id: str = "vjepa2-ac",
    max_steps: int = AC_MAX_STEPS,
    opset: int = DEFAULT_OPSET,
    tolerance: float = 1e-4,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> Path:
    """Export both graphs with parity checks, write the manifest, load it back and check one rollout."""
    enc_cfg, cfg = encoder.cfg, predictor.cfg
    if enc_cfg.embed_dim != cfg.encoder_dim:
        raise ValueError(f"predictor takes width {cfg.encoder_dim}, the encoder is {enc_cfg.embed_dim} wide")
    if enc_cfg.grid[1:] != (cfg.grid_height, cfg.grid_width):
        raise ValueError(f"predictor grid {(cfg.grid_height, cfg.grid_width)} != encoder grid {enc_cfg.grid[1:]}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    encoder, predictor = encoder.eval(), predictor.eval()
    generator = torch.Generator().manual_seed(seed)
    s, hw, d, a = enc_cfg.img_size, cfg.tokens_per_frame, enc_cfg.embed_dim, cfg.action_dim

    enc_path = out / ENCODER_FILE
    image = TensorSpec("image", "float32", ("batch", 3, s, s))
    tokens_out = TensorSpec("tokens", "float32", ("batch", hw, d))
    export_graph(encoder, (torch.randn(1, 3, s, s, generator=generator),), enc_path, (image,), (tokens_out,), opset)
    check_parity(
        encoder, enc_path, {"image": torch.randn(2, 3, s, s, generator=generator).numpy()}, tolerance, "encoder", log
    )

    pred_path = out / PREDICTOR_FILE
    inputs = (
        TensorSpec("tokens", "float32", ("batch", "frame_tokens", d)),
        TensorSpec("actions", "float32", ("batch", "steps", a)),
        TensorSpec("states", "float32", ("batch", "steps", a)),
    )
    outputs = (TensorSpec("predictions", "float32", ("batch", "frame_tokens", d)),)

    def example(batch: int, steps: int) -> dict[str, np.ndarray]:
        return {
            "tokens": torch.randn(batch, steps * hw, d, generator=generator).numpy(),
            "actions": (0.05 * torch.randn(batch, steps, a, generator=generator)).numpy(),
            "states": torch.randn(batch, steps, a, generator=generator).numpy(),
        }

    export_graph(
        predictor, tuple(torch.from_numpy(v) for v in example(1, 2).values()), pred_path, inputs, outputs, opset
    )
    for steps in PARITY_STEPS:
        check_parity(predictor, pred_path, example(2, steps), tolerance, f"predictor ({steps} steps)", log)

    manifest = WorldModelManifest(
        model_id=model_id,
        encoder=ENCODER_FILE,
        encoder_sha256=sha256_of_graph(enc_path),
        predictor=PREDICTOR_FILE,
        predictor_sha256=sha256_of_graph(pred_path),
        crop_size=s,
        grid_height=cfg.grid_height,
        grid_width=cfg.grid_width,
        embed_dim=d,
        action_dim=a,
        max_steps=max_steps,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        root=out,
    )
    path = write_world_model_manifest(manifest, out)
    check_world_model_folder(encoder, predictor, path, tolerance, generator, log)
    return path


def check_world_model_folder(
    encoder: VJepa2Encoder,
    predictor: VJepa2ACPredictor,
    manifest_path: Path,
    tolerance: float,
    generator: torch.Generator,
    log: Callable[[str], None] = print,
) -> float:
    """Load the folder as the runtime does; one step encoded and predicted, compared with PyTorch."""
    model = WorldModel.load(manifest_path, SessionConfig(providers=("cpu",), warmup_runs=0))
    s, a = encoder.cfg.img_size, predictor.cfg.action_dim
    image = torch.randn(1, 3, s, s, generator=generator)
    action, state = 0.05 * torch.randn(1, 1, a, generator=generator), torch.randn(1, 1, a, generator=generator)
    tokens = model.encode(image.numpy())
    got = model.predict_next(tokens[None], action.numpy(), state.numpy())
    with torch.no_grad():
        want_tokens = torch.nn.functional.layer_norm(encoder(image), (encoder.cfg.embed_dim,), eps=1e-6)
        want = predictor(want_tokens, action, state)
    err = float(np.max(np.abs(got - layer_norm(want.numpy()))))
    log(f"world model folder {manifest_path.parent}: one step through the runtime, max abs error {err:.3g}")
    if not err <= tolerance * 10:  # two layer norms in numpy on top of two graphs' parity
        raise ParityError(f"world model folder: runtime step differs from PyTorch by {err:.3g}")
    return err
