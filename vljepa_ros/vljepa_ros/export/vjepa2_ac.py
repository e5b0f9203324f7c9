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
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper

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
    s, hw, d = enc_cfg.img_size, cfg.tokens_per_frame, enc_cfg.embed_dim

    enc_path = out / ENCODER_FILE
    image = TensorSpec("image", "float32", ("batch", 3, s, s))
    tokens_out = TensorSpec("tokens", "float32", ("batch", hw, d))
    export_graph(encoder, (torch.randn(1, 3, s, s, generator=generator),), enc_path, (image,), (tokens_out,), opset)
    check_parity(
        encoder, enc_path, {"image": torch.randn(2, 3, s, s, generator=generator).numpy()}, tolerance, "encoder", log
    )

    pred_path = out / PREDICTOR_FILE
    export_ac_predictor(predictor, pred_path, opset, tolerance, generator, log)

    path = _write_manifest(out, model_id, cfg, s, max_steps)
    check_world_model_folder(encoder, predictor, path, tolerance, generator, log)
    return path


def export_ac_predictor(
    predictor: VJepa2ACPredictor,
    pred_path: Path,
    opset: int,
    tolerance: float,
    generator: torch.Generator,
    log: Callable[[str], None] = print,
) -> None:
    """The predictor graph (batch and steps dynamic), checked against PyTorch at 1, 2 and 3 steps."""
    cfg = predictor.cfg
    hw, d, a = cfg.tokens_per_frame, cfg.encoder_dim, cfg.action_dim
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


def wrap_clip_encoder(
    source: Path,
    target: Path,
    frames: int,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    token_range: tuple[int, int],
) -> None:
    """A uint8-crop clip encoder (input `frames` (batch, T, S, S, 3)) as a one-step world model encoder.

    The new input `image` (batch, 3, S, S) float32 is a normalised image: the graph undoes mean/std, rounds to
    uint8 (exact for an image that was uint8), repeats it into `frames` frames and keeps the tokens in
    `token_range` (one temporal slice of the grid).
    """
    model = onnx.load(str(source))
    graph = model.graph
    (clip_input,) = [i for i in graph.input if i.name == "frames"]
    crop = clip_input.type.tensor_type.shape.dim[2].dim_value
    (tokens_output,) = [o for o in graph.output if o.name == "tokens"]
    width = tokens_output.type.tensor_type.shape.dim[2].dim_value
    for node in graph.node:
        node.input[:] = ["wrapped_frames" if name == "frames" else name for name in node.input]
        node.output[:] = ["wrapped_tokens" if name == "tokens" else name for name in node.output]
    constants = [
        numpy_helper.from_array(np.asarray(std, np.float32).reshape(1, 3, 1, 1) * 255.0, "wrap_scale"),
        numpy_helper.from_array(np.asarray(mean, np.float32).reshape(1, 3, 1, 1) * 255.0, "wrap_offset"),
        numpy_helper.from_array(np.array(0.0, np.float32), "wrap_low"),
        numpy_helper.from_array(np.array(255.0, np.float32), "wrap_high"),
        numpy_helper.from_array(np.array([1, frames, 1, 1, 1], np.int64), "wrap_repeat"),
        numpy_helper.from_array(np.array([1], np.int64), "wrap_axis"),
        numpy_helper.from_array(np.array([token_range[0]], np.int64), "wrap_start"),
        numpy_helper.from_array(np.array([token_range[1]], np.int64), "wrap_end"),
    ]
    prefix = [
        helper.make_node("Mul", ["image", "wrap_scale"], ["wrap_scaled"]),
        helper.make_node("Add", ["wrap_scaled", "wrap_offset"], ["wrap_shifted"]),
        helper.make_node("Round", ["wrap_shifted"], ["wrap_rounded"]),
        helper.make_node("Clip", ["wrap_rounded", "wrap_low", "wrap_high"], ["wrap_clipped"]),
        helper.make_node("Cast", ["wrap_clipped"], ["wrap_bytes"], to=TensorProto.UINT8),
        helper.make_node("Transpose", ["wrap_bytes"], ["wrap_hwc"], perm=[0, 2, 3, 1]),
        helper.make_node("Unsqueeze", ["wrap_hwc", "wrap_axis"], ["wrap_one_frame"]),
        helper.make_node("Expand", ["wrap_one_frame", "wrap_repeat"], ["wrapped_frames"]),
    ]
    suffix = [helper.make_node("Slice", ["wrapped_tokens", "wrap_start", "wrap_end", "wrap_axis"], ["tokens"])]
    nodes = prefix + list(graph.node) + suffix
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(constants)
    graph.input.remove(clip_input)
    graph.input.append(helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, crop, crop]))
    graph.output.remove(tokens_output)
    count = token_range[1] - token_range[0]
    graph.output.append(helper.make_tensor_value_info("tokens", TensorProto.FLOAT, ["batch", count, width]))
    onnx.checker.check_model(model)
    onnx.save_model(model, str(target))


def export_ac_with_onnx_encoder(
    clip_encoder: Path,
    clip_frames: int,
    token_range: tuple[int, int],
    predictor: VJepa2ACPredictor,
    out: str | Path,
    model_id: str,
    max_steps: int = 8,
    opset: int = DEFAULT_OPSET,
    tolerance: float = 1e-4,
    log: Callable[[str], None] = print,
) -> Path:
    """A world model folder from an exported uint8-crop clip encoder (e.g. the bundled one) and an AC predictor.

    The wrapped encoder is checked against the clip encoder on the same uint8 frame; the predictor against
    PyTorch; then the folder is loaded as the runtime loads it.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    enc_path, pred_path = out / ENCODER_FILE, out / PREDICTOR_FILE
    wrap_clip_encoder(clip_encoder, enc_path, clip_frames, IMAGENET_MEAN, IMAGENET_STD, token_range)
    crop = onnx.load(str(enc_path)).graph.input[0].type.tensor_type.shape.dim[2].dim_value
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (1, crop, crop, 3), dtype=np.uint8)
    clip = ort.InferenceSession(str(clip_encoder), providers=["CPUExecutionProvider"])
    want = clip.run(None, {"frames": np.repeat(frame[:, None], clip_frames, axis=1)})[0][
        :, token_range[0] : token_range[1]
    ]
    image = (
        ((frame / 255.0 - np.asarray(IMAGENET_MEAN)) / np.asarray(IMAGENET_STD))
        .astype(np.float32)
        .transpose(0, 3, 1, 2)
    )
    wrapped = ort.InferenceSession(str(enc_path), providers=["CPUExecutionProvider"])
    err = float(np.max(np.abs(wrapped.run(None, {"image": image})[0] - want)))
    log(f"parity wrapped encoder: max abs error {err:.3g} against the clip encoder on the same uint8 frame")
    if not err <= tolerance:
        raise ParityError(f"wrapped encoder: max abs error {err:.3g} exceeds tolerance {tolerance:g}")
    export_ac_predictor(predictor.eval(), pred_path, opset, tolerance, torch.Generator().manual_seed(0), log)
    cfg = predictor.cfg
    path = _write_manifest(out, model_id, cfg, crop, max_steps)
    model = WorldModel.load(path, SessionConfig(providers=("cpu",), warmup_runs=1))
    tokens = model.encode(image)
    with torch.no_grad():
        torch_next = predictor(
            torch.from_numpy(tokens), torch.zeros(1, 1, cfg.action_dim), torch.zeros(1, 1, cfg.action_dim)
        )
    got = model.predict_next(
        tokens[None], np.zeros((1, 1, cfg.action_dim), np.float32), np.zeros((1, 1, cfg.action_dim), np.float32)
    )
    err = float(np.max(np.abs(got - layer_norm(torch_next.numpy()))))
    log(f"world model folder {out}: one step through the runtime, max abs error {err:.3g}")
    if not err <= tolerance * 10:
        raise ParityError(f"world model folder: runtime step differs from PyTorch by {err:.3g}")
    return path


def _write_manifest(out: Path, model_id: str, cfg, crop_size: int, max_steps: int) -> Path:
    """The world model manifest for the two graphs already written in `out` (hashes read from the files)."""
    manifest = WorldModelManifest(
        model_id=model_id,
        encoder=ENCODER_FILE,
        encoder_sha256=sha256_of_graph(out / ENCODER_FILE),
        predictor=PREDICTOR_FILE,
        predictor_sha256=sha256_of_graph(out / PREDICTOR_FILE),
        crop_size=crop_size,
        grid_height=cfg.grid_height,
        grid_width=cfg.grid_width,
        embed_dim=cfg.encoder_dim,
        action_dim=cfg.action_dim,
        max_steps=max_steps,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        root=out,
    )
    return write_world_model_manifest(manifest, out)
