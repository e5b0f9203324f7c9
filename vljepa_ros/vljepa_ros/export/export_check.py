"""The last step of every export: load the folder the way the runtime does and run it once.

`export_model` must not write a folder its own runtime refuses (a default query longer than the model's query
length did exactly that). This loads the manifest (files, hashes), the sessions (each graph's inputs and
outputs against the manifest), the query tokenizer and every default query, every bank (dimension) and the
text encoder, then runs one clip through the encoder and every default query through the predictor.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vljepa_ros.runtime.vljepa_runtime import VLJepaRuntime


class ExportCheckError(ValueError):
    """A written model folder the runtime cannot use; the message says what, in one line."""


def check_export(manifest_path: Path | str, text_encoder: bool = True) -> str:
    """Load and run the exported model at `manifest_path` on the CPU; returns a one-line summary.

    Raises ExportCheckError naming the first problem. `text_encoder`: also load and run the Y-encoder.
    """
    try:
        runtime = VLJepaRuntime.from_manifest(manifest_path, providers=("cpu",), warmup_runs=0)
        manifest = runtime.manifest
        for name, query in manifest.queries.items():
            tokens = runtime.query_tokens(query)
            if int(tokens.mask.sum()) == len(tokens.unknown_words):
                raise ExportCheckError(f"queries.{name}: no token of {query!r} is in the query vocabulary")
        banks = {name: runtime.load_bank(name) for name in manifest.banks}
        frame = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
        tokens = runtime.encode(runtime.prepare_image(frame)[None])
        for name in manifest.queries:
            embedding = runtime.predict_default(tokens, name)
            if embedding.shape != (1, manifest.embedding_dim) or not np.all(np.isfinite(embedding)):
                raise ExportCheckError(f"queries.{name}: the predictor gave {embedding.shape} with non-finite values")
        texts = ""
        if text_encoder and manifest.text_encoder is not None:
            vectors = runtime.load_text_encoder().encode(["a test caption"])
            if vectors.shape != (1, manifest.embedding_dim):
                raise ExportCheckError(f"text_encoder: gave {vectors.shape}, expected (1, {manifest.embedding_dim})")
            texts = ", text encoder"
    except ExportCheckError:
        raise
    except Exception as err:  # onnxruntime and tokenizers raise their own types: any failure is the answer
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ExportCheckError(f"the written model does not load: {first}") from None
    bank_text = ", ".join(f"{name} ({len(bank)})" for name, bank in banks.items()) or "none"
    return (
        f"checked {Path(manifest_path)}: loads and runs on {runtime.provider}; queries "
        f"{', '.join(f'{k}={v!r}' for k, v in manifest.queries.items())}; banks {bank_text}{texts}"
    )
