"""VLJepaRuntime: the VL-JEPA model behind a numpy API (onnxruntime only, no torch).

encode clips -> visual tokens; pool them into a visual state; predict query embeddings in the Y-encoder space;
build WorldPrediction-style transition clips (before state, then after state, in one clip).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from vljepa_ros.runtime import preprocessing
from vljepa_ros.runtime.manifest import (
    Manifest,
    ManifestError,
    QueryEmbeddingsSpec,
    check_session_io,
    load_manifest,
)
from vljepa_ros.runtime.onnx_session import OnnxModel, SessionConfig
from vljepa_ros.runtime.query_tokenizer import (
    QueryTokenizer,
    SubwordQueryTokenizer,
    TokenizedQuery,
    query_tokenizer_from_spec,
)
from vljepa_ros.runtime.text_bank import TextBank, l2_normalise
from vljepa_ros.runtime.text_encoder_runtime import TextEncoderRuntime

LOG = logging.getLogger(__name__)

_NUMPY_DTYPE = {"float32": np.float32, "float16": np.float16, "uint8": np.uint8, "int64": np.int64}

Frames = Sequence[np.ndarray] | np.ndarray
QUERY_CACHE_SIZE = 256  # distinct tokenised queries kept; the oldest is dropped beyond this


def load_query_embeddings(spec: QueryEmbeddingsSpec) -> np.ndarray:
    """The query embedding table, memory-mapped read-only: only the pages of the rows queries use are read."""
    try:
        table = np.load(spec.file, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ManifestError(f"query_embeddings.file: {spec.file.name}: {err}") from None
    if table.dtype != np.float32 or table.shape != (spec.rows, spec.width):
        raise ManifestError(
            f"query_embeddings.file: {spec.file.name} is {table.dtype} {table.shape}, "
            f"manifest says float32 ({spec.rows}, {spec.width})"
        )
    return table


class VLJepaRuntime:
    """Encoder + predictor sessions validated against their manifest. See docs/architecture.md.

    `query_embeddings`: the predictor's token-embedding table when it lives outside the predictor graph
    (manifest `query_embeddings`); the query's rows are gathered here and fed instead of the ids.
    """

    def __init__(
        self,
        manifest: Manifest,
        encoder: OnnxModel,
        predictor: OnnxModel,
        tokenizer: QueryTokenizer | SubwordQueryTokenizer,
        query_embeddings: np.ndarray | None = None,
    ):
        self.manifest = manifest
        self.encoder = encoder
        self.predictor = predictor
        self.tokenizer = tokenizer
        self.query_embeddings = query_embeddings
        self._queries: dict[str, TokenizedQuery] = {}
        self._batched_queries: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
        self._predictor_normalises = manifest.predictor.output_l2_normalized
        spec = manifest.encoder.inputs[0]
        self._clip_shape = tuple(spec.shape[1:])
        self._clip_dtype = _NUMPY_DTYPE[spec.dtype]

    @classmethod
    def from_manifest(
        cls,
        path: str | Path,
        providers: Sequence[str] = ("tensorrt", "cuda", "cpu"),
        trt_cache_dir: str | Path | None = None,
        fp16: bool = False,
        warmup_runs: int = 1,
        intra_op_threads: int = 0,
        log: logging.Logger = LOG,
        io_binding: bool | None = None,
    ) -> VLJepaRuntime:
        """Load the manifest, check files and hashes, create and warm up sessions, check their I/O signature.

        `io_binding` None: on for CUDA / TensorRT (outputs stay on the device; see `embed`), off on the CPU.
        Raises ManifestError (one line naming the field) on any mismatch.
        """
        manifest = load_manifest(path)
        if manifest.variant is not None:
            cosine = manifest.variant.parity.get("embedding_min_cosine")
            log.info(
                "%s: graph variant %s of version %s (%s; embedding cosine to fp32 %s)",
                manifest.model_id,
                manifest.variant.kind,
                manifest.variant.source_version,
                manifest.precision,
                "not measured" if cosine is None else f"{cosine:.5f}",
            )
        config = SessionConfig(
            providers=tuple(providers),
            trt_cache_dir=Path(trt_cache_dir) if trt_cache_dir else None,
            fp16=fp16,
            warmup_runs=0,
            intra_op_threads=intra_op_threads,
            io_binding=io_binding,
        )
        models = {}
        for key in ("encoder", "predictor"):
            spec = getattr(manifest, key)
            model = OnnxModel.load(spec.file, config, log)
            check_session_io(spec.inputs, spec.outputs, model.session.get_inputs(), model.session.get_outputs(), key)
            model.warm_up(warmup_runs)
            models[key] = model
        try:
            tokenizer = query_tokenizer_from_spec(manifest.query_tokenizer)
        except Exception as err:  # tokenizers raises a bare Exception on a malformed tokenizer.json
            raise ManifestError(f"{path}: query_tokenizer: {err}") from None
        for name, text in manifest.queries.items():
            try:
                tokenizer.encode(text)
            except ValueError as err:
                raise ManifestError(f"{path}: queries.{name}: {err}") from None
        table = None
        if manifest.query_embeddings is not None:
            table = load_query_embeddings(manifest.query_embeddings)
            if table.shape[0] < tokenizer.vocab_size:
                raise ManifestError(
                    f"{path}: query_embeddings.rows: {table.shape[0]} rows for a tokenizer of {tokenizer.vocab_size}"
                )
        return cls(manifest, models["encoder"], models["predictor"], tokenizer, table)

    # ------------------------------------------------------------------------------------------ info
    @property
    def provider(self) -> str:
        """The execution provider running the encoder, e.g. "CPUExecutionProvider"."""
        return self.encoder.provider

    @property
    def fused_preprocessing(self) -> bool:
        return self.manifest.encoder.fused_preprocessing

    # ----------------------------------------------------------------------------------- clip inputs
    def prepare_clip(self, frames: Frames) -> np.ndarray:
        """T RGB uint8 frames -> one encoder input (no batch axis), per the manifest's preprocessing mode."""
        if self.fused_preprocessing:
            _, height, width, _ = self._clip_shape
            return preprocessing.stack_frames(frames, self.manifest.clip, height, width)
        if self.manifest.encoder.normalise_in_graph:
            return preprocessing.crop_clip(frames, self.manifest.clip)
        return preprocessing.preprocess_clip(frames, self.manifest.clip)

    def prepare_image(self, image: np.ndarray) -> np.ndarray:
        """One RGB uint8 image -> one encoder input: the image repeated to fill the clip."""
        return self.prepare_clip([image] * self.manifest.clip.frames)

    def transition_clip(self, before: np.ndarray | Frames, after: np.ndarray | Frames) -> np.ndarray:
        """WorldPrediction-style input: the first half of the clip shows `before`, the second half `after`.

        Each side is one image (repeated) or a frame sequence (sampled evenly). Halves are whole tubelets so
        no token mixes the two states. Returns one encoder input (no batch axis).
        """
        frames, tubelet = self.manifest.clip.frames, self.manifest.clip.tubelet
        half = frames // 2
        if half % tubelet:
            raise ValueError(f"clip.frames={frames} cannot be split into two halves of whole tubelets ({tubelet})")
        return self.prepare_clip(_sample(before, half, "before") + _sample(after, frames - half, "after"))

    # ------------------------------------------------------------------------------------- inference
    def encode(self, clips: np.ndarray) -> np.ndarray:
        """(B, *clip_shape) encoder inputs (a single clip without batch axis is accepted) -> (B, N, D) tokens."""
        return self.encoder.run({self.encoder.input_names[0]: self._checked_clips(clips)})[0]

    def embed(self, clips: np.ndarray, query: str) -> np.ndarray:
        """encode() then predict() with one query, in one call: (B, *clip_shape) -> (B, E) unit embeddings.

        With IO binding (on by default for CUDA / TensorRT) the encoder's tokens stay where the encoder wrote them
        (GPU memory) and go straight into the predictor: no copy to the host and back between the two graphs.
        """
        if not self.encoder.io_binding:
            return self.predict(self.encode(clips), query)
        clips = self._checked_clips(clips)
        tokens = self.encoder.run_on_device({self.encoder.input_names[0]: clips})[0]
        return self._predict(tokens, *self._batched_query(query, len(clips)))

    def _checked_clips(self, clips: np.ndarray) -> np.ndarray:
        clips = _contiguous(clips)
        if clips.ndim == len(self._clip_shape):
            clips = clips[None]
        if clips.shape[1:] != self._clip_shape or clips.dtype != self._clip_dtype:
            raise ValueError(
                f"encode: expected (batch, {', '.join(map(str, self._clip_shape))}) "
                f"{np.dtype(self._clip_dtype).name}, got {clips.shape} {clips.dtype}"
            )
        if clips.shape[0] == 0:
            raise ValueError("encode: empty batch")
        return clips

    @staticmethod
    def visual_state(tokens: np.ndarray) -> np.ndarray:
        """(B, N, D) tokens -> (B, D) L2-normalised mean over tokens."""
        return l2_normalise(np.asarray(tokens, dtype=np.float32).mean(axis=1))

    def query_tokens(self, query: str) -> TokenizedQuery:
        """Tokenised query, cached (queries repeat every frame)."""
        cached = self._queries.get(query)
        if cached is None:
            cached = self.tokenizer.encode(query)
            if cached.unknown_words:
                LOG.warning("query %r: words not in the vocabulary map to <unk>: %s", query, cached.unknown_words)
            if len(self._queries) >= QUERY_CACHE_SIZE:
                del self._queries[next(iter(self._queries))]
            self._queries[query] = cached
        return cached

    def predict(self, tokens: np.ndarray, query: str | Sequence[str]) -> np.ndarray:
        """(B, N, D) tokens + one query (or B queries) -> (B, E) L2-normalised predicted embeddings.

        Raises ValueError when an embedding is zero or not finite (never a silent NaN).
        """
        tokens = _contiguous(tokens, np.float32)
        if tokens.ndim != 3:
            raise ValueError(f"predict: expected (batch, N, D) tokens, got shape {tokens.shape}")
        batch = tokens.shape[0]
        if isinstance(query, str):
            ids, mask = self._batched_query(query, batch)
        else:
            queries = list(query)
            if len(queries) != batch:
                raise ValueError(f"predict: {len(queries)} queries for a batch of {batch}")
            encoded = [self.query_tokens(q) for q in queries]
            ids, mask = np.stack([e.ids for e in encoded]), np.stack([e.mask for e in encoded])
        return self._predict(tokens, ids, mask)

    def _predict(self, tokens: np.ndarray | ort.OrtValue, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The predictor on tokens (host array, or an OrtValue from the encoder's `run_on_device`)."""
        names = self.predictor.input_names
        query = ids if self.query_embeddings is None else np.asarray(self.query_embeddings[ids])
        outputs = self.predictor.run({names[0]: tokens, names[1]: query, names[2]: mask})
        if not self._predictor_normalises:
            return l2_normalise(outputs[0])
        if not outputs[1]:  # the graph's flag: every row's norm was finite and non-zero
            raise ValueError("predict: the predictor returned a zero or non-finite embedding")
        return outputs[0]

    def _batched_query(self, query: str, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """One query's ids and mask repeated for a batch, cached: the node asks for the same few every clip."""
        key = (query, batch)
        cached = self._batched_queries.get(key)
        if cached is None:
            encoded = self.query_tokens(query)
            cached = (encoded.ids[None].repeat(batch, axis=0), encoded.mask[None].repeat(batch, axis=0))
            if len(self._batched_queries) >= QUERY_CACHE_SIZE:
                del self._batched_queries[next(iter(self._batched_queries))]
            self._batched_queries[key] = cached
        return cached

    def predict_default(self, tokens: np.ndarray, name: str = "caption") -> np.ndarray:
        """predict() with one of the manifest's default queries ("caption", "transition")."""
        if name not in self.manifest.queries:
            raise KeyError(f"no default query {name!r}; the manifest has {sorted(self.manifest.queries)}")
        return self.predict(tokens, self.manifest.queries[name])

    def load_text_encoder(self, providers: Sequence[str] = ("cpu",)) -> TextEncoderRuntime:
        """The manifest's Y-encoder (to embed new vocabularies); ManifestError if the model ships none."""
        spec = self.manifest.text_encoder
        if spec is None:
            raise ManifestError(f"{self.manifest.model_id}: the manifest has no text_encoder section")
        # from_manifest already checked the file's sha256.
        encoder = TextEncoderRuntime.from_spec(spec, SessionConfig(providers=tuple(providers)), check_sha256=False)
        if encoder.dim != self.manifest.embedding_dim:
            raise ManifestError(f"text_encoder: width {encoder.dim} != embedding_dim {self.manifest.embedding_dim}")
        return encoder

    def load_bank(self, name: str) -> TextBank:
        """A text bank shipped with the model (e.g. "captions", "actions"); dim checked against the model."""
        if name not in self.manifest.banks:
            raise KeyError(f"no bank {name!r}; the manifest has {sorted(self.manifest.banks)}")
        bank = TextBank.load(self.manifest.banks[name])
        if bank.dim != self.manifest.embedding_dim:
            raise ManifestError(f"banks.{name}: dim {bank.dim} != embedding_dim {self.manifest.embedding_dim}")
        return bank


def _contiguous(array, dtype=None) -> np.ndarray:
    """``array`` as a C-contiguous ndarray (of ``dtype``), copied only when it is not one already.

    The node's batches and the encoder's tokens already are; numpy's conversion calls are then pure cost, and
    a high one right after a model call, when their code is out of the caches."""
    if isinstance(array, np.ndarray) and array.flags.c_contiguous and (dtype is None or array.dtype == dtype):
        return array
    return np.ascontiguousarray(array, dtype=dtype)


def _sample(side: np.ndarray | Frames, count: int, label: str) -> list[np.ndarray]:
    """One image -> `count` copies; a frame sequence -> `count` evenly spaced frames (first and last kept)."""
    if isinstance(side, np.ndarray) and side.ndim == 3:
        return [side] * count
    frames = list(side)
    if not frames:
        raise ValueError(f"transition_clip: {label} has no frames")
    index = np.linspace(0, len(frames) - 1, count).round().astype(int)
    return [frames[i] for i in index]
