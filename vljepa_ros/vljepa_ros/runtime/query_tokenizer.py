"""Tokenizers for the predictor's text query: word-level (vocabulary file: one token per line, line = id) for the
small models trained here, subword (a `tokenizers` tokenizer.json, e.g. Llama-3.2's) for open-vljepa-style models;
the manifest's `query_tokenizer.kind` selects one (`query_tokenizer_from_spec`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from vljepa_ros.runtime.manifest import QueryTokenizerSpec

PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
_WORD = re.compile(r"[\w']+|[^\w\s]")


def split_words(text: str, lowercase: bool = True) -> list[str]:
    """Words and single punctuation marks, in order (apostrophes stay inside words)."""
    return _WORD.findall(text.lower() if lowercase else text)


def read_vocab(path: str | Path) -> tuple[str, ...]:
    """Vocabulary file -> tokens (line i is id i). Blank lines are an error: they would shift every id."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    for i, token in enumerate(lines):
        if not token.strip():
            raise ValueError(f"{path}: line {i + 1} is empty (every line is one token)")
    if len(set(lines)) != len(lines):
        raise ValueError(f"{path}: duplicate tokens in the vocabulary")
    return tuple(lines)


def write_vocab(tokens: Sequence[str], path: str | Path) -> Path:
    """Write a vocabulary file (one token per line)."""
    path = Path(path)
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return path


def build_vocab(texts: Sequence[str], lowercase: bool = True) -> tuple[str, ...]:
    """<pad>, <unk>, then every word of `texts` in first-seen order (ids 0 and 1 are pad and unk)."""
    tokens = [PAD_TOKEN, UNK_TOKEN]
    seen = set(tokens)
    for text in texts:
        for word in split_words(text, lowercase):
            if word not in seen:
                seen.add(word)
                tokens.append(word)
    return tuple(tokens)


@dataclass(frozen=True)
class TokenizedQuery:
    """Token ids and mask, both int64 of shape (max_tokens,); mask 1 = real token, 0 = pad."""

    ids: np.ndarray
    mask: np.ndarray
    unknown_words: tuple[str, ...]


class QueryTokenizer:
    """Maps a query to fixed-length ids + mask. Too-long or empty queries raise ValueError (never truncated)."""

    def __init__(self, vocab: Sequence[str], max_tokens: int, lowercase: bool = True, pad_id: int = 0, unk_id: int = 1):
        if max_tokens <= 0:
            raise ValueError(f"max_tokens: must be positive, got {max_tokens}")
        for key, value in (("pad_id", pad_id), ("unk_id", unk_id)):
            if not 0 <= value < len(vocab):
                raise ValueError(f"{key}: {value} is outside the vocabulary of {len(vocab)} tokens")
        self.vocab = tuple(vocab)
        self.max_tokens = max_tokens
        self.lowercase = lowercase
        self.pad_id = pad_id
        self.unk_id = unk_id
        self._ids = {token: i for i, token in enumerate(self.vocab)}

    @classmethod
    def from_spec(cls, spec: QueryTokenizerSpec) -> QueryTokenizer:
        """Tokenizer described by a manifest's `query_tokenizer` section (kind word)."""
        return cls(read_vocab(spec.vocab_file), spec.max_tokens, spec.lowercase, spec.pad_id, spec.unk_id)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> TokenizedQuery:
        """One query -> ids/mask (max_tokens,) int64. Unknown words map to unk_id and are reported."""
        words = split_words(text, self.lowercase)
        if not words:
            raise ValueError(f"query {text!r} has no tokens")
        if len(words) > self.max_tokens:
            raise ValueError(f"query {text!r} has {len(words)} tokens, more than max_tokens={self.max_tokens}")
        ids = np.full(self.max_tokens, self.pad_id, dtype=np.int64)
        mask = np.zeros(self.max_tokens, dtype=np.int64)
        unknown = []
        for i, word in enumerate(words):
            token_id = self._ids.get(word)
            if token_id is None:
                unknown.append(word)
                token_id = self.unk_id
            ids[i] = token_id
            mask[i] = 1
        return TokenizedQuery(ids=ids, mask=mask, unknown_words=tuple(unknown))

    def encode_batch(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Several queries -> (ids, mask), each (B, max_tokens) int64."""
        encoded = [self.encode(t) for t in texts]
        return np.stack([e.ids for e in encoded]), np.stack([e.mask for e in encoded])


class SubwordQueryTokenizer:
    """Maps a query to fixed-length ids + mask with a tokenizer.json, special tokens (BOS) added by its template
    as in training, right-padded with `pad_id`. Too-long or empty queries raise ValueError (never truncated)."""

    def __init__(self, tokenizer: Tokenizer, max_tokens: int, pad_id: int):
        if max_tokens <= 0:
            raise ValueError(f"max_tokens: must be positive, got {max_tokens}")
        if not 0 <= pad_id < tokenizer.get_vocab_size():
            raise ValueError(f"pad_id: {pad_id} is outside the vocabulary of {tokenizer.get_vocab_size()} tokens")
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.pad_id = pad_id
        unk = getattr(tokenizer.model, "unk_token", None)
        self.unk_id = tokenizer.token_to_id(unk) if unk else None

    @classmethod
    def from_spec(cls, spec: QueryTokenizerSpec) -> SubwordQueryTokenizer:
        """Tokenizer described by a manifest's `query_tokenizer` section (kind subword)."""
        return cls(Tokenizer.from_file(str(spec.tokenizer_file)), spec.max_tokens, spec.pad_id)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, text: str) -> TokenizedQuery:
        """One query -> ids/mask (max_tokens,) int64. Tokens that map to the unknown token are reported."""
        if not text.strip():
            raise ValueError(f"query {text!r} has no tokens")
        encoding = self.tokenizer.encode(text)
        count = len(encoding.ids)
        if count > self.max_tokens:
            raise ValueError(f"query {text!r} has {count} tokens, more than max_tokens={self.max_tokens}")
        ids = np.full(self.max_tokens, self.pad_id, dtype=np.int64)
        mask = np.zeros(self.max_tokens, dtype=np.int64)
        ids[:count] = encoding.ids
        mask[:count] = 1
        unknown = tuple(text[a:b] for (a, b), i in zip(encoding.offsets, encoding.ids) if i == self.unk_id)
        return TokenizedQuery(ids=ids, mask=mask, unknown_words=unknown)

    def encode_batch(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Several queries -> (ids, mask), each (B, max_tokens) int64."""
        encoded = [self.encode(t) for t in texts]
        return np.stack([e.ids for e in encoded]), np.stack([e.mask for e in encoded])


def query_tokenizer_from_spec(spec: QueryTokenizerSpec) -> QueryTokenizer | SubwordQueryTokenizer:
    """The tokenizer of a manifest's `query_tokenizer` section, of the kind it names."""
    if spec.kind == "subword":
        return SubwordQueryTokenizer.from_spec(spec)
    return QueryTokenizer.from_spec(spec)
