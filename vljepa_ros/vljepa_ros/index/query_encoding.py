"""Search text -> a vector in the model's text (Y-encoder) space.

With a `text_encoder` in the manifest any text is embedded. Without one (the bundled tiny-world model ships
only caption and action banks) the text is looked up in the caption bank: an exact caption gives its vector,
any other text the vector of the lexically closest caption, and the caption used is reported.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vljepa_ros.runtime.manifest import load_manifest
from vljepa_ros.runtime.onnx_session import SessionConfig
from vljepa_ros.runtime.text_bank import TextBank, l2_normalise
from vljepa_ros.runtime.text_encoder_runtime import TextEncoderRuntime


@dataclass(frozen=True)
class EncodedQuery:
    """A query vector and how it was obtained ("text encoder" or the bank caption used)."""

    vector: np.ndarray
    source: str


class QueryEncoder:
    """Embeds search texts with the manifest's Y-encoder, else through its caption bank."""

    def __init__(self, model_id: str, model_version: str, encoder: TextEncoderRuntime | None, bank: TextBank | None):
        if encoder is None and bank is None:
            raise ValueError(f"{model_id}: neither a text encoder nor a caption bank to embed queries with")
        self.model_id = model_id
        self.model_version = model_version
        self.encoder = encoder
        self.bank = bank
        self._by_text = {} if bank is None else {_normal(t): i for i, t in enumerate(bank.texts)}

    @classmethod
    def from_manifest(cls, path: Path | str, providers: tuple[str, ...] = ("cpu",)) -> QueryEncoder:
        """The manifest's text encoder when it has one, else its caption bank."""
        manifest = load_manifest(path, check_files=False)
        encoder = None
        if manifest.text_encoder is not None:
            encoder = TextEncoderRuntime.from_spec(manifest.text_encoder, SessionConfig(providers=providers))
        bank = TextBank.load(manifest.banks["captions"]) if "captions" in manifest.banks else None
        return cls(manifest.model_id, manifest.version, encoder, bank)

    def encode(self, text: str) -> EncodedQuery:
        """The unit query vector for `text`."""
        if self.encoder is not None:
            return EncodedQuery(l2_normalise(self.encoder.encode([text])[0]), "text encoder")
        index = self._by_text.get(_normal(text))
        if index is None:
            index = max(
                range(len(self.bank.texts)),
                key=lambda i: difflib.SequenceMatcher(None, _normal(text), _normal(self.bank.texts[i])).ratio(),
            )
        return EncodedQuery(self.bank.embeddings[index], f"caption bank: {self.bank.texts[index]!r}")


def _normal(text: str) -> str:
    return " ".join(text.lower().split())
