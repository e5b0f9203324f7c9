"""Y-encoder (text) -> text_encoder.onnx (pooling and L2 norm inside) + its tokenizer.json, parity-checked.

`export_y_encoder` takes any (input_ids, attention_mask) -> (batch, E) module: MiniLM (`export_text_encoder`,
which normalises itself) or open-vljepa's EmbeddingGemma + projector (unnormalised: `normalise=True` adds it).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from tokenizers import Tokenizer
from torch import nn

from vljepa_ros.export.graphs import DEFAULT_OPSET, export_graph
from vljepa_ros.export.parity import check_parity
from vljepa_ros.runtime.manifest import TensorSpec, TextEncoderSpec, sha256_of_graph
from vljepa_ros.runtime.text_encoder_runtime import configure_tokenizer
from vljepa_ros.torch_models.text_encoder import TextEncoderSource, TorchTextEncoder

PARITY_TEXTS = (
    "a red ball rolls to the left",
    "describe the scene",
    "the robot arm picks up a small blue box from the table and puts it on the shelf",
    "ok",
)


class L2Normalised(nn.Module):
    """A text encoder whose (batch, E) output is divided by its L2 norm."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.module(input_ids, attention_mask), dim=-1)


def export_y_encoder(
    module: nn.Module,
    tokenizer_file: Path,
    max_tokens: int,
    out_dir: Path,
    pad_token: str | None = None,
    normalise: bool = False,
    dynamo: bool = False,
    tokenizer_name: str = "tokenizer.json",
    opset: int = DEFAULT_OPSET,
    tolerance: float = 1e-4,
    log: Callable[[str], None] = print,
) -> TextEncoderSpec:
    """Write text_encoder.onnx (batch and sequence dims dynamic) and the tokenizer (as `tokenizer_name`),
    parity-check the graph on texts of several lengths; returns the TextEncoderSpec for the manifest.

    The runtime tokenises as here: truncated to `max_tokens`, padded to the batch's longest text with
    `pad_token` (None: the tokenizer's own padding, [PAD] or <pad>).
    """
    module = (L2Normalised(module) if normalise else module).eval()
    tokenizer = configure_tokenizer(Tokenizer.from_file(str(tokenizer_file)), max_tokens, pad_token)

    def tokenize(texts) -> tuple[torch.Tensor, torch.Tensor]:
        encodings = tokenizer.encode_batch(list(texts))
        ids = torch.tensor([e.ids for e in encodings], dtype=torch.int64)
        return ids, torch.tensor([e.attention_mask for e in encodings], dtype=torch.int64)

    example = tokenize(PARITY_TEXTS[:2])
    with torch.no_grad():
        dim = int(module(*example).shape[-1])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "text_encoder.onnx"
    inputs = (
        TensorSpec("input_ids", "int64", ("batch", "sequence")),
        TensorSpec("attention_mask", "int64", ("batch", "sequence")),
    )
    # Not "embedding": the torch.export-based exporter already names an internal value so.
    outputs = (TensorSpec("sentence_embedding", "float32", ("batch", dim)),)
    export_graph(module, example, path, inputs, outputs, opset, dynamo=dynamo)
    ids, mask = tokenize(PARITY_TEXTS)
    check_parity(
        module, path, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}, tolerance, "text_encoder", log
    )
    tokenizer_path = out_dir / tokenizer_name
    shutil.copyfile(tokenizer_file, tokenizer_path)
    return TextEncoderSpec(
        file=path,
        tokenizer=tokenizer_path,
        sha256=sha256_of_graph(path),
        max_tokens=max_tokens,
        inputs=inputs,
        outputs=outputs,
        pad_token=pad_token,
    )


def export_text_encoder(
    out_dir: Path,
    source: TextEncoderSource | None = None,
    opset: int = DEFAULT_OPSET,
    tolerance: float = 1e-4,
    log: Callable[[str], None] = print,
) -> TextEncoderSpec:
    """Write text_encoder.onnx (mean pooling and L2 norm inside) and tokenizer.json of a Hugging Face encoder
    (default all-MiniLM-L6-v2), parity-check them. Returns the TextEncoderSpec for the manifest.

    The torch.export-based exporter is used: the traced BERT graph fails the parity check.
    """
    encoder = TorchTextEncoder(source)
    return export_y_encoder(
        encoder.module,
        encoder.source.tokenizer_file,
        encoder.source.max_tokens,
        out_dir,
        dynamo=True,
        opset=opset,
        tolerance=tolerance,
        log=log,
    )
