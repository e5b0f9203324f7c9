"""Y-encoder at run time: text -> L2-normalised embedding with onnxruntime + `tokenizers` (no torch).

Used to embed new label/caption/action vocabularies on the robot. The ONNX graph (from
`export.text_encoder.export_y_encoder`: MiniLM, or open-vljepa's EmbeddingGemma + projector) takes
(input_ids, attention_mask) and returns pooled, normalised embeddings; this module only tokenises, batches and
checks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from tokenizers import Tokenizer

from vljepa_ros.runtime.manifest import ManifestError, TextEncoderSpec, check_session_io, sha256_of_graph
from vljepa_ros.runtime.onnx_session import OnnxModel, SessionConfig
from vljepa_ros.runtime.text_bank import TextBank, l2_normalise

LOG = logging.getLogger(__name__)


class TextEmbedder(Protocol):
    """What the rest of the stack needs from a Y-encoder (MiniLM, open-vljepa's EmbeddingGemma + projector)."""

    model_id: str

    @property
    def dim(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(N, dim) float32 L2-normalised embeddings."""


def configure_tokenizer(tokenizer: Tokenizer, max_tokens: int, pad_token: str | None = None) -> Tokenizer:
    """Truncate to `max_tokens` and pad to the longest text of a batch with `pad_token`, else the tokenizer's
    configured padding, else its [PAD] or <pad> token."""
    tokenizer.enable_truncation(max_length=max_tokens)
    if pad_token is not None:
        pad_id = tokenizer.token_to_id(pad_token)
        if pad_id is None:
            raise ValueError(f"tokenizer has no pad token {pad_token!r}")
        tokenizer.enable_padding(pad_id=pad_id, pad_token=pad_token)
    elif tokenizer.padding is None:
        pad = next((t for t in ("[PAD]", "<pad>") if tokenizer.token_to_id(t) is not None), None)
        if pad is None:
            raise ValueError("tokenizer has no padding configured and no [PAD]/<pad> token")
        tokenizer.enable_padding(pad_id=tokenizer.token_to_id(pad), pad_token=pad)
    else:
        tokenizer.enable_padding(pad_id=tokenizer.padding["pad_id"], pad_token=tokenizer.padding["pad_token"])
    return tokenizer


class TextEncoderRuntime:
    """ONNX Y-encoder: `encode(texts)` -> (N, E) float32 L2-normalised; `make_bank(texts)` -> TextBank."""

    def __init__(self, model: OnnxModel, tokenizer: Tokenizer, model_id: str = "text-encoder"):
        self.model = model
        self.tokenizer = tokenizer
        self.model_id = model_id
        self._dim = int(model.session.get_outputs()[0].shape[-1])

    @classmethod
    def from_files(
        cls,
        onnx_path: str | Path,
        tokenizer_path: str | Path,
        max_tokens: int = 256,
        config: SessionConfig = SessionConfig(providers=("cpu",)),
        model_id: str = "text-encoder",
        pad_token: str | None = None,
    ) -> TextEncoderRuntime:
        """Session (per `config`) + tokenizer from files (`pad_token`: see `configure_tokenizer`)."""
        tokenizer = configure_tokenizer(Tokenizer.from_file(str(tokenizer_path)), max_tokens, pad_token)
        return cls(OnnxModel.load(onnx_path, config, LOG), tokenizer, model_id)

    @classmethod
    def from_spec(
        cls, spec: TextEncoderSpec, config: SessionConfig = SessionConfig(providers=("cpu",)), check_sha256: bool = True
    ) -> TextEncoderRuntime:
        """From a manifest's `text_encoder` section; checks the hash and the graph's I/O signature."""
        if check_sha256 and sha256_of_graph(spec.file) != spec.sha256:
            raise ManifestError(f"text_encoder.sha256: {spec.file.name} does not match the manifest")
        runtime = cls.from_files(
            spec.file, spec.tokenizer, spec.max_tokens, config, model_id=spec.file.stem, pad_token=spec.pad_token
        )
        if spec.inputs:
            session = runtime.model.session
            check_session_io(spec.inputs, spec.outputs, session.get_inputs(), session.get_outputs(), "text_encoder")
        return runtime

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Texts -> (N, E) float32 L2-normalised. Texts longer than max_tokens are truncated (as in training)."""
        if isinstance(texts, str):
            raise TypeError("encode takes a sequence of texts, not one string")
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        names = self.model.input_names
        out = []
        for start in range(0, len(texts), batch_size):
            encodings = self.tokenizer.encode_batch(texts[start : start + batch_size])
            ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
            mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
            out.append(self.model.run({names[0]: ids, names[1]: mask})[0])
        return l2_normalise(np.concatenate(out))

    def make_bank(self, texts: Sequence[str]) -> TextBank:
        """A TextBank of `texts` embedded by this encoder."""
        return TextBank.from_embeddings(texts, self.encode(texts))
