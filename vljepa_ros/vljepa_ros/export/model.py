"""Export: PyTorch encoder + predictor (+ optional text encoder) -> ONNX files, banks and `manifest.yaml`.

Each graph is exported for one fixed clip shape with a dynamic batch dimension, then checked against PyTorch
on random inputs with onnxruntime (CPU); the max abs error is printed and the export fails above the
tolerance. Console script: `export_model` (see `main`).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from vljepa_ros.export.input_normalisation import fold_input_normalisation
from vljepa_ros.export.output_normalisation import l2_normalise_output, valid_output_name
from vljepa_ros.export.patch_embedding import patch_convs_to_matmul
from vljepa_ros.runtime.manifest import (
    ClipSpec,
    Manifest,
    OnnxFileSpec,
    QueryTokenizerSpec,
    TensorSpec,
    external_data_path,
    model_version,
    sha256_of_graph,
    write_manifest,
)
from vljepa_ros.runtime.preprocessing import normalisation_constants
from vljepa_ros.runtime.query_tokenizer import build_vocab, write_vocab
from vljepa_ros.runtime.text_bank import TextBank
from vljepa_ros.torch_models.checkpoint import load_official_encoder, load_predictor
from vljepa_ros.torch_models.vjepa2_encoder import ENCODER_PRESETS, VJepa2Encoder, encoder_config
from vljepa_ros.torch_models.vljepa_predictor import PREDICTOR_PRESETS, VLJepaPredictor, predictor_config

DEFAULT_OPSET = 18
FP32_TOLERANCE = 1e-4
FP16_TOLERANCE = 5e-2
DEFAULT_QUERIES = {"caption": "describe the scene", "transition": "what changed"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ParityError(RuntimeError):
    """onnxruntime output differs from PyTorch by more than the tolerance."""


def clip_spec_for(encoder: VJepa2Encoder, frame_rate_hz: float) -> ClipSpec:
    """The clip the encoder is exported for; resize_short = int(256/224 * crop) as in V-JEPA 2."""
    cfg = encoder.cfg
    return ClipSpec(
        frames=cfg.num_frames,
        frame_rate_hz=frame_rate_hz,
        tubelet=cfg.tubelet_size,
        patch=cfg.patch_size,
        crop_size=cfg.img_size,
        resize_short=int(256 / 224 * cfg.img_size),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    )


# Above this many weight bytes a graph is saved with its weights in `<file>.data` (protobuf's 2 GB limit;
# ViT-H/g in fp32).
EXTERNAL_DATA_BYTES = 1_500_000_000


def _export(
    module: torch.nn.Module,
    args: tuple,
    path: Path,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    opset: int,
    dynamo: bool = False,
    fp16: bool = False,
    normalise_output: str | None = None,
    fold_normalisation: ClipSpec | None = None,
) -> None:
    """Export with the symbolic dims of `inputs` dynamic, pin the output dims, optionally convert to fp16,
    optionally L2-normalise output `normalise_output` inside the graph (in fp32, after any fp16 part).
    `fold_normalisation`: the float clip input becomes its uint8 crop (onnx_input_normalisation).

    The TorchScript exporter (deprecated in torch 2.13, pinned here) exports the encoder and predictor in ~1 s
    against ~8 s for the torch.export-based one; the text encoder needs the latter (the traced BERT graph fails
    the parity check). The raw export goes to a scratch folder (large models spill one file per tensor there).
    """
    dims = {name: torch.export.Dim(name) for t in inputs for name in t.shape if isinstance(name, str)}
    with tempfile.TemporaryDirectory(prefix="onnx_export_") as scratch:
        raw = Path(scratch) / path.name
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=".*The axis name.*will not be used")
            common = dict(
                input_names=[t.name for t in inputs],
                output_names=[t.name for t in outputs],
                opset_version=opset,
                dynamo=dynamo,
            )
            if dynamo:
                shapes = tuple({i: dims[d] for i, d in enumerate(t.shape) if isinstance(d, str)} for t in inputs)
                torch.onnx.export(module, args, str(raw), dynamic_shapes=shapes, verbose=False, **common)
            else:
                axes = {
                    t.name: {i: d for i, d in enumerate(t.shape) if isinstance(d, str)} for t in (*inputs, *outputs)
                }
                torch.onnx.export(module, args, str(raw), dynamic_axes=axes, do_constant_folding=True, **common)
        model = onnx.load(str(raw))
    _pin_static_dims(model, outputs)
    patch_convs_to_matmul(model)
    if fold_normalisation is not None:
        fold_input_normalisation(model, fold_normalisation)
    if fp16:
        model = convert_to_fp16(model)
    if normalise_output is not None:
        l2_normalise_output(model, normalise_output)
    _save(model, path)


def _save(model: onnx.ModelProto, path: Path) -> None:
    """Save as one file, or with weights in `<file>.data` above EXTERNAL_DATA_BYTES; then check the graph."""
    data = external_data_path(path)
    data.unlink(missing_ok=True)
    weight_bytes = sum(t.ByteSize() for t in model.graph.initializer)
    if weight_bytes > EXTERNAL_DATA_BYTES:
        onnx.save_model(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=data.name,
            size_threshold=1024,
        )
    else:
        onnx.save_model(model, str(path))
    onnx.checker.check_model(str(path))


def _pin_static_dims(model: onnx.ModelProto, outputs: Sequence[TensorSpec]) -> None:
    """Write the known output dims into the graph (the tracer leaves some fixed dims symbolic)."""
    by_name = {t.name: t for t in outputs}
    for out in model.graph.output:
        spec = by_name[out.name]
        for dim, value in zip(out.type.tensor_type.shape.dim, spec.shape):
            dim.Clear()
            if isinstance(value, int):
                dim.dim_value = value
            else:
                dim.dim_param = value


def check_parity(
    torch_fn: Callable[..., torch.Tensor],
    onnx_path: Path,
    feeds: Mapping[str, np.ndarray],
    tolerance: float,
    label: str,
    log: Callable[[str], None] = print,
) -> float:
    """Run the graph (onnxruntime CPU) and PyTorch on the same inputs; print and return the max abs error.

    Raises ParityError above `tolerance`.
    """
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, dict(feeds))[0].astype(np.float32)
    with torch.no_grad():
        want = torch_fn(*[torch.from_numpy(v) for v in feeds.values()]).float().numpy()
    if got.shape != want.shape:
        raise ParityError(f"{label}: onnxruntime shape {got.shape} != torch shape {want.shape}")
    err = float(np.max(np.abs(got - want)))
    log(f"parity {label}: max abs error {err:.3g} (tolerance {tolerance:g})")
    if not err <= tolerance:
        raise ParityError(f"{label}: max abs error {err:.3g} exceeds tolerance {tolerance:g}")
    return err


@dataclass(frozen=True)
class ExportedGraph:
    spec: OnnxFileSpec
    max_abs_error: float


def rope_angle_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the Sin/Cos nodes and everything computing their inputs (positions, frequencies, angles).

    The walk stops at Shape nodes: what feeds a Shape only contributes its size, not values.
    """
    producer = {out: node for node in model.graph.node for out in node.output}
    keep, stack = set(), [n for n in model.graph.node if n.op_type in ("Sin", "Cos")]
    while stack:
        node = stack.pop()
        if node.name in keep:
            continue
        keep.add(node.name)
        if node.op_type != "Shape":
            stack.extend(producer[i] for i in node.input if i in producer)
    return sorted(keep)


def convert_to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """The fp32 graph in fp16; I/O stays fp32 and the RoPE angles are computed in fp32.

    Half-precision positions x frequencies lose ~1e-2 rad at position 15; in fp32 only the final cos/sin
    values are rounded to fp16 (~5e-4).
    """
    from onnxruntime.transformers.float16 import convert_float_to_float16

    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"
    converted = convert_float_to_float16(model, keep_io_types=True, node_block_list=rope_angle_nodes(model))
    _drop_round_trip_casts(converted)
    _sort_nodes(converted.graph)
    return converted


def _sort_nodes(graph: onnx.GraphProto) -> None:
    """Topological node order (the converter appends its input casts at the end, which ONNX forbids)."""
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    waiting_on = {}  # node index -> number of inputs not yet produced
    consumers = {}  # value name -> indices of nodes waiting for it
    for index, node in enumerate(graph.node):
        missing = {i for i in node.input if i not in available}
        waiting_on[index] = len(missing)
        for name in missing:
            consumers.setdefault(name, []).append(index)
    queue = [i for i, count in waiting_on.items() if count == 0]
    order = []
    while queue:
        index = queue.pop()
        order.append(index)
        for name in graph.node[index].output:
            for consumer in consumers.pop(name, []):
                waiting_on[consumer] -= 1
                if waiting_on[consumer] == 0:
                    queue.append(consumer)
    if len(order) != len(graph.node):
        raise ValueError("graph has a cycle or an input no node produces")
    nodes = [graph.node[i] for i in order]
    del graph.node[:]
    graph.node.extend(nodes)


def _drop_round_trip_casts(model: onnx.ModelProto) -> None:
    """Bypass Cast(fp32->fp16) -> Cast(fp16->fp32) pairs, which the converter puts between two blocked nodes
    (it would round the fp32 RoPE angles to fp16 right before Sin/Cos)."""

    def cast_to(node) -> int | None:
        return next((a.i for a in node.attribute if a.name == "to"), None) if node.op_type == "Cast" else None

    producer = {out: node for node in model.graph.node for out in node.output}
    renamed = {}
    for node in model.graph.node:
        first = producer.get(node.input[0]) if node.input else None
        if cast_to(node) == onnx.TensorProto.FLOAT and first is not None and cast_to(first) == onnx.TensorProto.FLOAT16:
            renamed[node.output[0]] = first.input[0]
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name in renamed:
                node.input[i] = renamed[name]
    used = {i for node in model.graph.node for i in node.input} | {o.name for o in model.graph.output}
    keep = [n for n in model.graph.node if n.op_type != "Cast" or any(o in used for o in n.output)]
    del model.graph.node[:]
    model.graph.node.extend(keep)


def export_encoder(
    encoder: VJepa2Encoder,
    path: Path,
    opset: int = DEFAULT_OPSET,
    tolerance: float = 1e-4,
    seed: int = 0,
    fp16: bool = False,
    fused_frame_size: tuple[int, int] | None = None,
    frame_rate_hz: float = 4.0,
    parity_batch: int = 2,
    normalise_in_graph: bool = False,
    log: Callable[[str], None] = print,
) -> ExportedGraph:
    """Encoder -> ONNX with output `tokens` (batch, N, D) float32.

    Input `clip` (batch, 3, T, S, S) float32, or with `normalise_in_graph` input `frames` (batch, T, S, S, 3)
    uint8, the centre crops (mean/std folded into the patch embedding), or with `fused_frame_size=(H, W)` input
    `frames` (batch, T, H, W, 3) uint8 with resize/crop/normalise inside the graph. `fp16`: fp16 weights and
    compute (not with normalise_in_graph).
    """
    if normalise_in_graph and (fp16 or fused_frame_size is not None):
        raise ValueError("normalise_in_graph: not with fp16 or fused preprocessing (which normalises in the graph)")
    cfg = encoder.cfg
    encoder = encoder.eval()
    generator = torch.Generator().manual_seed(seed)
    if fused_frame_size is None:
        module, name, dtype = encoder, "clip", "float32"
        shape = (3, cfg.num_frames, cfg.img_size, cfg.img_size)

        def example(batch: int) -> torch.Tensor:
            return torch.randn((batch, *shape), generator=generator)
    else:
        from vljepa_ros.torch_models.fused_preprocessing import FusedPreprocessingEncoder

        module = FusedPreprocessingEncoder(encoder, clip_spec_for(encoder, frame_rate_hz), *fused_frame_size).eval()
        name, dtype, shape = "frames", "uint8", (cfg.num_frames, *fused_frame_size, 3)

        def example(batch: int) -> torch.Tensor:
            return torch.randint(0, 256, (batch, *shape), generator=generator, dtype=torch.uint8)

    inputs = (TensorSpec(name, dtype, ("batch", *shape)),)
    outputs = (TensorSpec("tokens", "float32", ("batch", cfg.num_tokens, cfg.embed_dim)),)
    if not normalise_in_graph:
        _export(module, (example(1),), path, inputs, outputs, opset, fp16=fp16)
        err = check_parity(module, path, {name: example(parity_batch).numpy()}, tolerance, "encoder", log)
        spec = OnnxFileSpec(
            path, sha256_of_graph(path), inputs, outputs, fused_preprocessing=fused_frame_size is not None
        )
        return ExportedGraph(spec, err)
    clip = clip_spec_for(encoder, frame_rate_hz)
    _export(module, (example(1),), path, inputs, outputs, opset, fold_normalisation=clip)
    crops = (TensorSpec("frames", "uint8", ("batch", cfg.num_frames, cfg.img_size, cfg.img_size, 3)),)
    scale, offset = (torch.from_numpy(v) for v in normalisation_constants(clip))

    def from_crops(frames: torch.Tensor) -> torch.Tensor:  # the host's float arithmetic, then the encoder
        return encoder((frames.float() * scale + offset).permute(0, 4, 1, 2, 3))

    feeds = {
        "frames": torch.randint(
            0, 256, (parity_batch, *crops[0].shape[1:]), generator=generator, dtype=torch.uint8
        ).numpy()
    }
    err = check_parity(from_crops, path, feeds, tolerance, "encoder", log)
    return ExportedGraph(OnnxFileSpec(path, sha256_of_graph(path), crops, outputs, normalise_in_graph=True), err)


def export_predictor(
    predictor: VLJepaPredictor,
    path: Path,
    num_tokens: int,
    max_tokens: int,
    opset: int = DEFAULT_OPSET,
    tolerance: float = 1e-4,
    seed: int = 0,
    fp16: bool = False,
    log: Callable[[str], None] = print,
) -> ExportedGraph:
    """Predictor -> ONNX: (visual_tokens, query_ids, query_mask) -> `embedding` (batch, E), L2-normalised in the
    graph (the PyTorch module's output is not; parity is checked against its normalised output)."""
    cfg = predictor.cfg
    inputs = (
        TensorSpec("visual_tokens", "float32", ("batch", num_tokens, cfg.visual_dim)),
        TensorSpec("query_ids", "int64", ("batch", max_tokens)),
        TensorSpec("query_mask", "int64", ("batch", max_tokens)),
    )
    outputs = (TensorSpec("embedding", "float32", ("batch", cfg.embedding_dim)),)
    generator = torch.Generator().manual_seed(seed)
    checked = (*outputs, TensorSpec(valid_output_name("embedding"), "float32", ()))

    def example(batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        tokens = torch.randn((batch, num_tokens, cfg.visual_dim), generator=generator)
        ids = torch.randint(0, cfg.vocab_size, (batch, max_tokens), generator=generator)
        lengths = torch.randint(1, max_tokens + 1, (batch,), generator=generator)
        mask = (torch.arange(max_tokens)[None, :] < lengths[:, None]).long()
        return tokens, ids * mask, mask

    predictor = predictor.eval()
    _export(predictor, example(1), path, inputs, outputs, opset, fp16=fp16, normalise_output="embedding")
    tokens, ids, mask = example(3)
    feeds = {"visual_tokens": tokens.numpy(), "query_ids": ids.numpy(), "query_mask": mask.numpy()}

    def normalised(*args: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(predictor(*args), dim=-1)

    err = check_parity(normalised, path, feeds, tolerance, "predictor", log)
    spec = OnnxFileSpec(path, sha256_of_graph(path), inputs, checked, output_l2_normalized=True)
    return ExportedGraph(spec, err)


def export_model(
    encoder: VJepa2Encoder,
    predictor: VLJepaPredictor,
    vocab: Sequence[str],
    out_dir: Path,
    banks: Mapping[str, TextBank] | None = None,
    queries: Mapping[str, str] = DEFAULT_QUERIES,
    model_id: str = "vljepa",
    frame_rate_hz: float = 4.0,
    max_tokens: int | None = None,
    opset: int = DEFAULT_OPSET,
    tolerance: float | None = None,
    text_encoder_source=None,
    fp16: bool = False,
    fused_frame_size: tuple[int, int] | None = None,
    normalise_in_graph: bool = False,
    log: Callable[[str], None] = print,
) -> Path:
    """Export encoder + predictor, vocabulary and banks into `out_dir`; returns the manifest path.

    `text_encoder_source` (a `torch_models.text_encoder.TextEncoderSource`, e.g. `minilm_source()`, ~90 MB)
    also exports a Y-encoder so the runtime can embed new vocabularies; its width must equal embedding_dim.
    `fp16` converts encoder and predictor (I/O stays fp32); `fused_frame_size=(H, W)` puts preprocessing
    into the encoder graph for frames of that size; `normalise_in_graph` makes the encoder take uint8 centre
    crops (the host only resizes and crops). `tolerance` defaults to 1e-4 (fp32) or 5e-2 (fp16).
    """
    if tolerance is None:
        tolerance = FP16_TOLERANCE if fp16 else FP32_TOLERANCE
    if predictor.cfg.visual_dim != encoder.cfg.embed_dim:
        raise ValueError(f"predictor visual_dim {predictor.cfg.visual_dim} != encoder width {encoder.cfg.embed_dim}")
    if len(vocab) > predictor.cfg.vocab_size:
        raise ValueError(f"vocabulary of {len(vocab)} tokens exceeds predictor vocab_size {predictor.cfg.vocab_size}")
    if text_encoder_source is not None:
        from vljepa_ros.torch_models.text_encoder import output_width

        width = output_width(text_encoder_source)
        if width != predictor.cfg.embedding_dim:
            raise ValueError(f"text encoder width {width} != predictor embedding_dim {predictor.cfg.embedding_dim}")
    max_tokens = max_tokens or predictor.cfg.max_query_tokens
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    enc = export_encoder(
        encoder,
        out_dir / "encoder.onnx",
        opset,
        tolerance,
        fp16=fp16,
        fused_frame_size=fused_frame_size,
        frame_rate_hz=frame_rate_hz,
        normalise_in_graph=normalise_in_graph,
        log=log,
    )
    pred = export_predictor(
        predictor, out_dir / "predictor.onnx", encoder.cfg.num_tokens, max_tokens, opset, tolerance, fp16=fp16, log=log
    )
    vocab_path = write_vocab(vocab, out_dir / "query_vocab.txt")
    bank_paths = {}
    for name, bank in (banks or {}).items():
        if bank.dim != predictor.cfg.embedding_dim:
            raise ValueError(f"bank {name!r} has dim {bank.dim}, predictor embeds to {predictor.cfg.embedding_dim}")
        bank_paths[name] = bank.save(out_dir / f"{name}.npz")
    text_encoder = None
    hashes = [enc.spec.sha256, pred.spec.sha256]
    if text_encoder_source is not None:
        from vljepa_ros.torch_models.text_encoder import export_text_encoder

        text_encoder = export_text_encoder(out_dir, text_encoder_source, opset=opset, tolerance=FP32_TOLERANCE, log=log)
        hashes.append(text_encoder.sha256)
    manifest = Manifest(
        root=out_dir.resolve(),
        model_id=model_id,
        version=model_version(hashes),
        embedding_dim=predictor.cfg.embedding_dim,
        clip=clip_spec_for(encoder, frame_rate_hz),
        encoder=enc.spec,
        predictor=pred.spec,
        query_tokenizer=QueryTokenizerSpec(vocab_file=vocab_path.resolve(), max_tokens=max_tokens),
        queries=dict(queries),
        banks={k: v.resolve() for k, v in bank_paths.items()},
        opset=opset,
        text_encoder=text_encoder,
        precision="fp16" if fp16 else "fp32",
    )
    return write_manifest(manifest, out_dir / "manifest.yaml")


TINY_CAPTIONS = (
    "a red ball rolls left",
    "a blue box stands still",
    "a green ball bounces",
    "the scene is empty",
    "a yellow box slides right",
)
TINY_ACTIONS = ("push the ball", "pick up the box", "drop the box", "nothing happens")


def export_tiny_random(
    out_dir: Path,
    seed: int = 0,
    fp16: bool = False,
    fused_frame_size: tuple[int, int] | None = None,
    normalise_in_graph: bool = False,
    log: Callable[[str], None] = lambda _: None,
) -> Path:
    """A small random-weight model (8x64x64 clips, 256 tokens, 384-d embeddings) for tests; returns manifest path.

    Its caption/action banks hold random unit vectors, so retrieval results are arbitrary but deterministic.
    `fp16` / `fused_frame_size` / `normalise_in_graph` select those export variants.
    """
    torch.manual_seed(seed)
    vocab = build_vocab([*DEFAULT_QUERIES.values(), *TINY_CAPTIONS, *TINY_ACTIONS])
    encoder = VJepa2Encoder(encoder_config("tiny")).eval()
    predictor = VLJepaPredictor(
        predictor_config("tiny", visual_dim=encoder.cfg.embed_dim, vocab_size=len(vocab), embedding_dim=384)
    ).eval()
    rng = np.random.default_rng(seed)
    banks = {
        name: TextBank.from_embeddings(texts, rng.standard_normal((len(texts), 384)).astype(np.float32))
        for name, texts in (("captions", TINY_CAPTIONS), ("actions", TINY_ACTIONS))
    }
    return export_model(
        encoder,
        predictor,
        vocab,
        Path(out_dir),
        banks=banks,
        model_id="vljepa-tiny-random",
        fp16=fp16,
        fused_frame_size=fused_frame_size,
        normalise_in_graph=normalise_in_graph,
        log=log,
    )


# --------------------------------------------------------------------------------------------------- CLI
def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="export_model", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="output folder (created)")
    p.add_argument("--tiny-random", action="store_true", help="export the small random-weight test model and exit")
    p.add_argument("--encoder-checkpoint", type=Path, help="official V-JEPA 2 .pt file (default: random init)")
    p.add_argument("--checkpoint-key", help="entry holding the encoder (default: target_encoder, ema_encoder, encoder)")
    p.add_argument(
        "--encoder-preset",
        default="vit_l",
        choices=sorted(ENCODER_PRESETS),
        help="architecture for random init (ignored with --encoder-checkpoint)",
    )
    p.add_argument("--frames", type=int, help="clip frames T (default: preset's)")
    p.add_argument("--crop", type=int, help="crop size S (default: preset's)")
    p.add_argument(
        "--rope-interleaved",
        action="store_true",
        help="RoPE frequencies interleaved (V-JEPA 2.1 weights); default is the 2.0 tiled quirk",
    )
    p.add_argument("--predictor-checkpoint", type=Path, help="predictor file from training (default: random init)")
    p.add_argument("--predictor-preset", default="tiny", choices=sorted(PREDICTOR_PRESETS))
    p.add_argument("--embedding-dim", type=int, default=384, help="random predictor output dim")
    p.add_argument("--max-tokens", type=int, help="query length (default: predictor's max_query_tokens)")
    p.add_argument("--vocab", type=Path, help="query vocabulary file for a random predictor")
    p.add_argument("--bank", action="append", default=[], metavar="NAME=FILE.npz", help="text bank to ship")
    p.add_argument(
        "--text-encoder",
        action="store_true",
        help="also export the all-MiniLM-L6-v2 Y-encoder (text_encoder.onnx + tokenizer.json, ~90 MB)",
    )
    p.add_argument("--model-id", default="vljepa")
    p.add_argument("--frame-rate", type=float, default=4.0, help="clip frame rate in Hz")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    p.add_argument(
        "--tolerance",
        type=float,
        help=f"max abs error allowed in the parity check (default {FP32_TOLERANCE:g}, fp16 {FP16_TOLERANCE:g})",
    )
    p.add_argument("--fp16", action="store_true", help="fp16 weights/compute (I/O fp32, RoPE angles fp32)")
    p.add_argument(
        "--fused-preprocessing",
        metavar="HxW",
        help="encoder takes uint8 frames of this size (e.g. 480x640) and preprocesses in the graph",
    )
    p.add_argument(
        "--normalise-in-graph",
        action="store_true",
        help="encoder takes the uint8 centre crop; mean/std folded into its patch embedding (CPU nodes)",
    )
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def _build_encoder(args: argparse.Namespace) -> VJepa2Encoder:
    if args.encoder_checkpoint:
        return load_official_encoder(
            args.encoder_checkpoint,
            num_frames=args.frames or 16,
            img_size=args.crop or 256,
            rope_tiled_freqs=not args.rope_interleaved,
            key=args.checkpoint_key,
        )
    overrides = {"rope_tiled_freqs": not args.rope_interleaved}
    if args.frames:
        overrides["num_frames"] = args.frames
    if args.crop:
        overrides["img_size"] = args.crop
    return VJepa2Encoder(encoder_config(args.encoder_preset, **overrides)).eval()


def _build_predictor(args: argparse.Namespace, visual_dim: int) -> tuple[VLJepaPredictor, list[str]]:
    if args.predictor_checkpoint:
        return load_predictor(args.predictor_checkpoint)
    from vljepa_ros.runtime.query_tokenizer import read_vocab

    vocab = list(read_vocab(args.vocab)) if args.vocab else list(build_vocab(DEFAULT_QUERIES.values()))
    cfg = predictor_config(
        args.predictor_preset,
        visual_dim=visual_dim,
        embedding_dim=args.embedding_dim,
        vocab_size=max(len(vocab), PREDICTOR_PRESETS[args.predictor_preset].vocab_size),
    )
    return VLJepaPredictor(cfg).eval(), vocab


def _frame_size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    height, sep, width = text.lower().partition("x")
    if not sep or not height.isdigit() or not width.isdigit() or int(height) <= 0 or int(width) <= 0:
        raise ValueError(f"--fused-preprocessing: expected HxW such as 480x640, got {text!r}")
    return int(height), int(width)


def _text_encoder_source(args: argparse.Namespace):
    if not args.text_encoder:
        return None
    from vljepa_ros.torch_models.text_encoder import minilm_source

    return minilm_source()


def main(argv: Sequence[str] | None = None) -> int:
    """export_model: checkpoint(s) or random init -> encoder.onnx, predictor.onnx, manifest.yaml, query_vocab.txt."""
    args = _parse_args(argv)
    try:
        if args.tiny_random:
            path = export_tiny_random(args.out, args.seed, log=print)
        else:
            torch.manual_seed(args.seed)
            encoder = _build_encoder(args)
            predictor, vocab = _build_predictor(args, encoder.cfg.embed_dim)
            banks = {}
            for item in args.bank:
                name, _, file = item.partition("=")
                if not name or not file:
                    raise ValueError(f"--bank: expected NAME=FILE.npz, got {item!r}")
                banks[name] = TextBank.load(file)
            path = export_model(
                encoder,
                predictor,
                vocab,
                args.out,
                banks=banks,
                model_id=args.model_id,
                frame_rate_hz=args.frame_rate,
                max_tokens=args.max_tokens,
                opset=args.opset,
                tolerance=args.tolerance,
                text_encoder_source=_text_encoder_source(args),
                fp16=args.fp16,
                fused_frame_size=_frame_size(args.fused_preprocessing),
                normalise_in_graph=args.normalise_in_graph,
            )
    except (ParityError, ValueError, OSError) as err:
        print(f"export_model: error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
