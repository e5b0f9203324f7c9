"""Y-encoder (text) -> text_encoder.onnx (mean pooling and L2 norm inside) + tokenizer.json, parity-checked."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from vljepa_ros.export.graphs import DEFAULT_OPSET, export_graph
from vljepa_ros.export.parity import check_parity
from vljepa_ros.runtime.manifest import TensorSpec, TextEncoderSpec, sha256_of_graph
from vljepa_ros.torch_models.text_encoder import TextEncoderSource, TorchTextEncoder

PARITY_TEXTS = (
    "a red ball rolls to the left",
    "describe the scene",
    "the robot arm picks up a small blue box from the table and puts it on the shelf",
    "ok",
)


def export_text_encoder(
    out_dir: Path,
    source: TextEncoderSource | None = None,
    opset: int = DEFAULT_OPSET,
    tolerance: float = 1e-4,
    log: Callable[[str], None] = print,
) -> TextEncoderSpec:
    """Write text_encoder.onnx (mean pooling and L2 norm inside) and tokenizer.json, parity-check them.

    Returns the TextEncoderSpec for the manifest.
    """
    encoder = TorchTextEncoder(source)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "text_encoder.onnx"
    inputs = (
        TensorSpec("input_ids", "int64", ("batch", "sequence")),
        TensorSpec("attention_mask", "int64", ("batch", "sequence")),
    )
    # Not "embedding": the torch.export-based exporter already names an internal value so.
    outputs = (TensorSpec("sentence_embedding", "float32", ("batch", encoder.dim)),)
    export_graph(encoder.module, encoder.tokenize(PARITY_TEXTS[:2]), path, inputs, outputs, opset, dynamo=True)
    ids, mask = encoder.tokenize(PARITY_TEXTS)
    check_parity(
        encoder.module, path, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}, tolerance, "text_encoder", log
    )
    tokenizer_path = out_dir / "tokenizer.json"
    shutil.copyfile(encoder.source.tokenizer_file, tokenizer_path)
    return TextEncoderSpec(
        file=path,
        tokenizer=tokenizer_path,
        sha256=sha256_of_graph(path),
        max_tokens=encoder.source.max_tokens,
        inputs=inputs,
        outputs=outputs,
    )
