"""Export an open-vljepa model (V-JEPA 2 x-encoder + Llama predictor + EmbeddingGemma Y-encoder) into a model folder.

Graphs: encoder.onnx (clip -> tokens), predictor.onnx ((tokens, query embeddings, mask) -> unit embedding) and
text_encoder.onnx (caption -> unit embedding), each parity-checked against PyTorch through ONNX Runtime. The
predictor's 128256 x 2048 token-embedding table (1 GB in fp32) stays out of its graph, in query_embeddings.npy:
the runtime memory-maps it and gathers the few rows a query uses, so its resident memory is the rows read rather
than the whole table, and the predictor graph keeps under protobuf's 2 GB limit by that much. Query tokenizer:
Llama's tokenizer.json (subword, BOS added, right-padded with `<|finetune_right_pad_id|>` to the trained query
length); captions: Gemma's tokenizer.json. Preprocessing as open-vljepa trained it: short side resized to the
crop (bilinear, antialiased: `clip.resize` in the manifest), centre crop, ImageNet mean/std.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tokenizers import Tokenizer

from vljepa_ros.export.graphs import DEFAULT_OPSET
from vljepa_ros.export.model import (
    FP32_TOLERANCE,
    clip_spec_for,
    export_encoder,
    export_predictor,
    write_query_embeddings,
)
from vljepa_ros.export.text_encoder import export_y_encoder
from vljepa_ros.runtime.manifest import Manifest, QueryTokenizerSpec, model_version, write_manifest
from vljepa_ros.runtime.query_tokenizer import SubwordQueryTokenizer
from vljepa_ros.runtime.text_encoder_runtime import TextEncoderRuntime
from vljepa_ros.torch_models.encoder_loading import describe, load_encoder
from vljepa_ros.torch_models.open_vljepa import (
    CAPTION_PAD_TOKEN,
    QUERY_PAD_TOKEN,
    OpenVLJepa,
    load_open_vljepa,
)
from vljepa_ros.torch_models.vjepa2_encoder import VJepa2Encoder

OPEN_VLJEPA_FRAMES = 8  # open-vljepa's stage-B clips
# Default queries, best first: open-vljepa's retrieval prompt (scripts/eval.py) and another of its training
# queries, then a shorter one for checkpoints trained with a short max_query_len. The first that fits the
# checkpoint's query length is written; a query given by the caller is never replaced (too long is refused).
DEFAULT_QUERY_CHOICES = {
    "caption": ("Describe the video.",),
    "transition": ("What is the main action?", "What happened?"),
}
OPEN_VLJEPA_QUERIES = {kind: choices[0] for kind, choices in DEFAULT_QUERY_CHOICES.items()}


def fitting_queries(
    given: Mapping[str, str], count_tokens: Callable[[str], int], max_tokens: int, log: Callable[[str], None] = print
) -> dict[str, str]:
    """The manifest's queries: `given` ones as they are, the others the first default choice that fits.

    `count_tokens` counts a query's tokens as the runtime's tokenizer does (special tokens included). Raises
    ValueError naming the limit for a given query that is too long, or a kind whose every default is.
    """
    queries = {}
    for kind in dict.fromkeys([*DEFAULT_QUERY_CHOICES, *given]):
        if kind in given:
            count = count_tokens(given[kind])
            if count > max_tokens:
                raise ValueError(
                    f"--query {kind}={given[kind]!r}: {count} tokens, the checkpoint's max_query_len is {max_tokens}"
                )
            queries[kind] = given[kind]
            continue
        counts = {choice: count_tokens(choice) for choice in DEFAULT_QUERY_CHOICES[kind]}
        fitting = [choice for choice, count in counts.items() if count <= max_tokens]
        if not fitting:
            tried = ", ".join(f"{choice!r} ({count})" for choice, count in counts.items())
            raise ValueError(
                f"queries.{kind}: every default is longer than the checkpoint's max_query_len of {max_tokens} tokens "
                f"({tried}); give one with --query {kind}=TEXT"
            )
        if fitting[0] != DEFAULT_QUERY_CHOICES[kind][0]:
            first = DEFAULT_QUERY_CHOICES[kind][0]
            log(
                f"queries.{kind}: {first!r} has {counts[first]} tokens, over max_query_len {max_tokens}; "
                f"using {fitting[0]!r} ({counts[fitting[0]]})"
            )
        queries[kind] = fitting[0]
    return queries


def export_open_vljepa(
    encoder: VJepa2Encoder,
    model: OpenVLJepa,
    query_tokenizer_file: Path,
    caption_tokenizer_file: Path,
    out_dir: Path,
    queries: Mapping[str, str] | None = None,
    bank_texts: Mapping[str, Sequence[str]] | None = None,
    model_id: str = "open-vljepa",
    frame_rate_hz: float = 4.0,
    opset: int = DEFAULT_OPSET,
    tolerance: float = FP32_TOLERANCE,
    parity_batch: int = 2,
    log: Callable[[str], None] = print,
) -> Path:
    """Export the loaded modules into `out_dir`; returns the manifest path.

    `queries` {kind: text}: written as given (ValueError if longer than the checkpoint's query length); kinds
    not given get the first DEFAULT_QUERY_CHOICES entry that fits (`fitting_queries`), checked before any graph
    is exported. `bank_texts` {name: texts}: banks embedded with the exported Y-encoder through ONNX Runtime
    ("captions" is the one replay and the decoder use by default). `parity_batch`: clips/queries per parity check.
    """
    predictor, y_encoder = model.predictor, model.y_encoder
    if predictor.cfg.visual_dim != encoder.cfg.embed_dim:
        raise ValueError(f"predictor visual_dim {predictor.cfg.visual_dim} != encoder width {encoder.cfg.embed_dim}")
    y_width = y_encoder.projector.out_features
    if y_width != predictor.cfg.embedding_dim:
        raise ValueError(f"Y-encoder width {y_width} != predictor embedding_dim {predictor.cfg.embedding_dim}")
    pad_id = model.query_tokenizer.token_to_id(QUERY_PAD_TOKEN)
    caption_tokens = model.caption_tokenizer.truncation["max_length"]
    max_query = predictor.cfg.max_query_tokens
    # Counted as the runtime will count them (its tokenizer, BOS included), before minutes of export.
    runtime_tokenizer = SubwordQueryTokenizer(Tokenizer.from_file(str(query_tokenizer_file)), max_query, pad_id)
    queries = fitting_queries(
        queries or {}, lambda text: len(runtime_tokenizer.tokenizer.encode(text).ids), max_query, log
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # open-vljepa resizes with torchvision, antialiased: the manifest records it for the runtime.
    clip = clip_spec_for(encoder, frame_rate_hz, resize_short=encoder.cfg.img_size, antialias=True)
    enc = export_encoder(
        encoder,
        out_dir / "encoder.onnx",
        opset,
        tolerance,
        frame_rate_hz=frame_rate_hz,
        parity_batch=parity_batch,
        log=log,
    )
    table = write_query_embeddings(predictor, out_dir / "query_embeddings.npy")
    pred = export_predictor(
        predictor,
        out_dir / "predictor.onnx",
        encoder.cfg.num_tokens,
        max_query,
        opset,
        tolerance,
        log=log,
        query_embeddings=True,
        parity_batch=parity_batch,
    )
    text = export_y_encoder(
        y_encoder,
        caption_tokenizer_file,
        caption_tokens,
        out_dir,
        pad_token=CAPTION_PAD_TOKEN,
        normalise=True,
        tokenizer_name="text_tokenizer.json",
        opset=opset,
        tolerance=tolerance,
        log=log,
    )
    query_tokenizer = out_dir / "query_tokenizer.json"
    shutil.copyfile(query_tokenizer_file, query_tokenizer)
    banks = {}
    if bank_texts:
        embedder = TextEncoderRuntime.from_spec(text, check_sha256=False)
        for name, texts in bank_texts.items():
            banks[name] = embedder.make_bank(texts).save(out_dir / f"{name}.npz").resolve()
            log(f"bank {name}: {len(texts)} texts embedded by the exported Y-encoder")
    manifest = Manifest(
        root=out_dir.resolve(),
        model_id=model_id,
        version=model_version([enc.spec.sha256, pred.spec.sha256, table.sha256, text.sha256]),
        embedding_dim=predictor.cfg.embedding_dim,
        clip=clip,
        encoder=enc.spec,
        predictor=pred.spec,
        query_tokenizer=QueryTokenizerSpec(
            vocab_file=None,
            max_tokens=max_query,
            lowercase=False,
            pad_id=pad_id,
            kind="subword",
            tokenizer_file=query_tokenizer.resolve(),
        ),
        queries=dict(queries),
        banks=banks,
        text_encoder=text,
        opset=opset,
        query_embeddings=table,
    )
    return write_manifest(manifest, out_dir / "manifest.yaml")


def export_open_vljepa_files(
    checkpoint: Path,
    x_encoder: Path,
    llama_dir: Path,
    gemma_dir: Path,
    out_dir: Path,
    frames: int = OPEN_VLJEPA_FRAMES,
    crop: int | None = None,
    num_heads: int | None = None,
    log: Callable[[str], None] = print,
    **options,
) -> Path:
    """`export_open_vljepa` from the downloads: best.pt, the V-JEPA 2 x-encoder (a Hugging Face folder or any
    layout `load_encoder` reads), the Llama-3.2-1B and EmbeddingGemma folders (config.json + tokenizer.json).
    `crop` None: the x-encoder's native crop. `options`: export_open_vljepa's keyword arguments."""
    encoder, info = load_encoder(x_encoder, num_frames=frames, img_size=crop, num_heads=num_heads)
    log(describe(info, encoder))
    model = load_open_vljepa(checkpoint, llama_dir, gemma_dir)
    log(
        f"{Path(checkpoint).name}: epoch {model.epoch}, predictor {model.predictor.cfg.depth} layers of "
        f"{model.predictor.cfg.hidden_dim}, queries of {model.predictor.cfg.max_query_tokens} tokens"
    )
    return export_open_vljepa(
        encoder,
        model,
        Path(llama_dir) / "tokenizer.json",
        Path(gemma_dir) / "tokenizer.json",
        out_dir,
        log=log,
        **options,
    )
