"""Export: PyTorch encoder + predictor (+ optional text encoder) -> ONNX files, banks and `manifest.yaml`.

Each graph is exported for one fixed clip shape with a dynamic batch dimension, then checked against PyTorch
on random inputs with onnxruntime (CPU); the max abs error is printed and the export fails above the
tolerance. Console script: `export_model` (`export.cli`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vljepa_ros.export.graphs import DEFAULT_OPSET, export_graph
from vljepa_ros.export.output_normalisation import valid_output_name
from vljepa_ros.export.parity import check_parity
from vljepa_ros.export.text_encoder import export_text_encoder
from vljepa_ros.runtime.manifest import (
    ClipSpec,
    Manifest,
    OnnxFileSpec,
    QueryEmbeddingsSpec,
    QueryTokenizerSpec,
    TensorSpec,
    model_version,
    sha256_of_file,
    sha256_of_graph,
    write_manifest,
)
from vljepa_ros.runtime.preprocessing import normalisation_constants
from vljepa_ros.runtime.query_tokenizer import build_vocab, write_vocab
from vljepa_ros.runtime.text_bank import TextBank
from vljepa_ros.torch_models.fused_preprocessing import FusedPreprocessingEncoder
from vljepa_ros.torch_models.text_encoder import TextEncoderSource, output_width
from vljepa_ros.torch_models.vjepa2_encoder import VJepa2Encoder, encoder_config
from vljepa_ros.torch_models.vljepa_predictor import VLJepaPredictor, predictor_config

FP32_TOLERANCE = 1e-4
FP16_TOLERANCE = 5e-2
DEFAULT_QUERIES = {"caption": "describe the scene", "transition": "what changed"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def clip_spec_for(
    encoder: VJepa2Encoder, frame_rate_hz: float, resize_short: int | None = None, antialias: bool = False
) -> ClipSpec:
    """The clip the encoder is exported for; resize_short defaults to int(256/224 * crop) as in V-JEPA 2's eval.
    `antialias`: the model was trained with antialiased bilinear resizing (torchvision; V-JEPA 2, open-vljepa)."""
    cfg = encoder.cfg
    return ClipSpec(
        frames=cfg.num_frames,
        frame_rate_hz=frame_rate_hz,
        tubelet=cfg.tubelet_size,
        patch=cfg.patch_size,
        crop_size=cfg.img_size,
        resize_short=resize_short or int(256 / 224 * cfg.img_size),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        resize_antialias=antialias,
    )


@dataclass(frozen=True)
class ExportedGraph:
    """An exported graph's manifest entry and its parity error against PyTorch."""

    spec: OnnxFileSpec
    max_abs_error: float


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
    antialias: bool = False,
    log: Callable[[str], None] = print,
) -> ExportedGraph:
    """Encoder -> ONNX with output `tokens` (batch, N, D) float32.

    Input `clip` (batch, 3, T, S, S) float32, or with `normalise_in_graph` input `frames` (batch, T, S, S, 3)
    uint8, the centre crops (mean/std folded into the patch embedding), or with `fused_frame_size=(H, W)` input
    `frames` (batch, T, H, W, 3) uint8 with resize/crop/normalise inside the graph. `fp16`: fp16 weights and
    compute (not with normalise_in_graph). `antialias`: the fused graph resizes as the model was trained
    (clip_spec_for).
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
        clip = clip_spec_for(encoder, frame_rate_hz, antialias=antialias)
        module = FusedPreprocessingEncoder(encoder, clip, *fused_frame_size).eval()
        name, dtype, shape = "frames", "uint8", (cfg.num_frames, *fused_frame_size, 3)

        def example(batch: int) -> torch.Tensor:
            return torch.randint(0, 256, (batch, *shape), generator=generator, dtype=torch.uint8)

    inputs = (TensorSpec(name, dtype, ("batch", *shape)),)
    outputs = (TensorSpec("tokens", "float32", ("batch", cfg.num_tokens, cfg.embed_dim)),)
    if not normalise_in_graph:
        export_graph(module, (example(1),), path, inputs, outputs, opset, fp16=fp16)
        err = check_parity(module, path, {name: example(parity_batch).numpy()}, tolerance, "encoder", log)
        spec = OnnxFileSpec(
            path, sha256_of_graph(path), inputs, outputs, fused_preprocessing=fused_frame_size is not None
        )
        return ExportedGraph(spec, err)
    clip = clip_spec_for(encoder, frame_rate_hz)
    export_graph(module, (example(1),), path, inputs, outputs, opset, fold_normalisation=clip)
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


@contextmanager
def query_lookup_removed(predictor: VLJepaPredictor) -> Iterator[VLJepaPredictor]:
    """The predictor with `embed_tokens` an identity for the duration: its second input is then the query's
    token embeddings (batch, Q, hidden) instead of ids (the lookup is the only use of embed_tokens)."""
    table = predictor.embed_tokens
    predictor.embed_tokens = nn.Identity()
    try:
        yield predictor
    finally:
        predictor.embed_tokens = table


def write_query_embeddings(predictor: VLJepaPredictor, path: Path) -> QueryEmbeddingsSpec:
    """The predictor's token-embedding table as a float32 .npy file (memory-mapped by the runtime)."""
    table = predictor.embed_tokens.weight.detach().float().numpy()
    np.save(path, np.ascontiguousarray(table), allow_pickle=False)
    rows, width = table.shape
    return QueryEmbeddingsSpec(file=Path(path), sha256=sha256_of_file(path), rows=int(rows), width=int(width))


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
    query_embeddings: bool = False,
    parity_batch: int = 3,
) -> ExportedGraph:
    """Predictor -> ONNX: (visual_tokens, query_ids, query_mask) -> `embedding` (batch, E), L2-normalised in the
    graph (the PyTorch module's output is not; parity is checked against its normalised output).

    `query_embeddings`: the token lookup stays out of the graph, whose second input is then `query_embeddings`
    (batch, Q, hidden) float32, the rows of `write_query_embeddings`'s table; parity is still checked against
    the whole module on ids, with the rows gathered from the table.
    """
    cfg = predictor.cfg
    if query_embeddings:
        query_input = TensorSpec("query_embeddings", "float32", ("batch", max_tokens, cfg.hidden_dim))
    else:
        query_input = TensorSpec("query_ids", "int64", ("batch", max_tokens))
    inputs = (
        TensorSpec("visual_tokens", "float32", ("batch", num_tokens, cfg.visual_dim)),
        query_input,
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
    if not query_embeddings:
        export_graph(predictor, example(1), path, inputs, outputs, opset, fp16=fp16, normalise_output="embedding")
        tokens, ids, mask = example(parity_batch)
        feeds = {"visual_tokens": tokens.numpy(), "query_ids": ids.numpy(), "query_mask": mask.numpy()}

        def normalised(*args: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.normalize(predictor(*args), dim=-1)

        err = check_parity(normalised, path, feeds, tolerance, "predictor", log)
    else:
        tokens, ids, mask = example(parity_batch)
        one_tokens, one_ids, one_mask = example(1)
        with torch.no_grad():
            want = torch.nn.functional.normalize(predictor(tokens, ids, mask), dim=-1)
            rows, one_rows = predictor.embed_tokens(ids), predictor.embed_tokens(one_ids)
        with query_lookup_removed(predictor):
            export_graph(
                predictor,
                (one_tokens, one_rows, one_mask),
                path,
                inputs,
                outputs,
                opset,
                fp16=fp16,
                normalise_output="embedding",
            )
        feeds = {"visual_tokens": tokens.numpy(), "query_embeddings": rows.numpy(), "query_mask": mask.numpy()}
        err = check_parity(lambda *_: want, path, feeds, tolerance, "predictor", log)
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
    text_encoder_source: TextEncoderSource | None = None,
    fp16: bool = False,
    fused_frame_size: tuple[int, int] | None = None,
    normalise_in_graph: bool = False,
    antialias: bool = False,
    log: Callable[[str], None] = print,
) -> Path:
    """Export encoder + predictor, vocabulary and banks into `out_dir`; returns the manifest path.

    `text_encoder_source` (e.g. `torch_models.text_encoder.minilm_source()`, ~90 MB)
    also exports a Y-encoder so the runtime can embed new vocabularies; its width must equal embedding_dim.
    `fp16` converts encoder and predictor (I/O stays fp32); `fused_frame_size=(H, W)` puts preprocessing
    into the encoder graph for frames of that size; `normalise_in_graph` makes the encoder take uint8 centre
    crops (the host only resizes and crops). `antialias`: the model was trained on antialiased resizes (the
    manifest records it; V-JEPA 2 checkpoints). `tolerance` defaults to 1e-4 (fp32) or 5e-2 (fp16).
    """
    if tolerance is None:
        tolerance = FP16_TOLERANCE if fp16 else FP32_TOLERANCE
    if predictor.cfg.visual_dim != encoder.cfg.embed_dim:
        raise ValueError(f"predictor visual_dim {predictor.cfg.visual_dim} != encoder width {encoder.cfg.embed_dim}")
    if len(vocab) > predictor.cfg.vocab_size:
        raise ValueError(f"vocabulary of {len(vocab)} tokens exceeds predictor vocab_size {predictor.cfg.vocab_size}")
    if text_encoder_source is not None:
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
        antialias=antialias,
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
        text_encoder = export_text_encoder(out_dir, text_encoder_source, opset=opset, tolerance=FP32_TOLERANCE, log=log)
        hashes.append(text_encoder.sha256)
    manifest = Manifest(
        root=out_dir.resolve(),
        model_id=model_id,
        version=model_version(hashes),
        embedding_dim=predictor.cfg.embedding_dim,
        clip=clip_spec_for(encoder, frame_rate_hz, antialias=antialias),
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
    antialias: bool = False,
    embedding_dim: int = 384,
    log: Callable[[str], None] = lambda _: None,
) -> Path:
    """A small random-weight model (8x64x64 clips, 256 tokens, 384-d embeddings) for tests; returns manifest path.

    Its caption/action banks hold random unit vectors, so retrieval results are arbitrary but deterministic.
    `fp16` / `fused_frame_size` / `normalise_in_graph` / `antialias` select those export variants;
    `embedding_dim` another width (a model whose vectors the bundled 384-d banks cannot decode).
    """
    torch.manual_seed(seed)
    vocab = build_vocab([*DEFAULT_QUERIES.values(), *TINY_CAPTIONS, *TINY_ACTIONS])
    encoder = VJepa2Encoder(encoder_config("tiny")).eval()
    predictor = VLJepaPredictor(
        predictor_config("tiny", visual_dim=encoder.cfg.embed_dim, vocab_size=len(vocab), embedding_dim=embedding_dim)
    ).eval()
    rng = np.random.default_rng(seed)
    banks = {
        name: TextBank.from_embeddings(texts, rng.standard_normal((len(texts), embedding_dim)).astype(np.float32))
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
        antialias=antialias,
        log=log,
    )
