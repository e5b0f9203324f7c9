"""The subword query tokenizer (tokenizer.json via `tokenizers`) and the format-2 manifest fields, without torch."""

from pathlib import Path

import numpy as np
import pytest
import yaml
from tokenizers import Tokenizer, models, pre_tokenizers, processors

from vljepa_ros.runtime.bundled_model import bundled_manifest_path
from vljepa_ros.runtime.manifest import (
    ManifestError,
    QueryEmbeddingsSpec,
    QueryTokenizerSpec,
    load_manifest,
    parse_manifest,
)
from vljepa_ros.runtime.query_tokenizer import QueryTokenizer, SubwordQueryTokenizer, query_tokenizer_from_spec
from vljepa_ros.runtime.vljepa_runtime import load_query_embeddings

SPECIALS = ["<|begin_of_text|>", "<|finetune_right_pad_id|>", "<unk>"]
WORDS = ["describe", "the", "video", "."]


def write_tokenizer(path: Path) -> Path:
    vocab = {t: i for i, t in enumerate([*SPECIALS, *WORDS])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", 0)]
    )
    tokenizer.add_special_tokens(SPECIALS)
    tokenizer.save(str(path))
    return path


@pytest.fixture
def spec(tmp_path):
    file = write_tokenizer(tmp_path / "query_tokenizer.json")
    return QueryTokenizerSpec(vocab_file=None, max_tokens=6, pad_id=1, kind="subword", tokenizer_file=file)


def test_queries_get_bos_and_right_padding(spec):
    tokenizer = query_tokenizer_from_spec(spec)
    assert isinstance(tokenizer, SubwordQueryTokenizer) and tokenizer.vocab_size == 7
    query = tokenizer.encode("describe the video.")
    np.testing.assert_array_equal(query.ids, [0, 3, 4, 5, 6, 1])
    np.testing.assert_array_equal(query.mask, [1, 1, 1, 1, 1, 0])
    assert query.ids.dtype == query.mask.dtype == np.int64 and query.unknown_words == ()
    ids, mask = tokenizer.encode_batch(["the video", "video"])
    assert ids.shape == mask.shape == (2, 6) and mask.sum(axis=1).tolist() == [3, 2]


def test_unknown_words_are_reported_by_their_text(spec):
    assert query_tokenizer_from_spec(spec).encode("describe a robot").unknown_words == ("a", "robot")


def test_too_long_and_empty_queries_are_refused_not_truncated(spec):
    tokenizer = query_tokenizer_from_spec(spec)
    with pytest.raises(ValueError, match="7 tokens, more than max_tokens=6"):
        tokenizer.encode("describe the video the video .")
    with pytest.raises(ValueError, match="no tokens"):
        tokenizer.encode("   ")


def test_word_kind_is_still_the_word_level_tokenizer():
    spec = load_manifest(bundled_manifest_path(), check_files=False).query_tokenizer
    assert spec.kind == "word" and isinstance(query_tokenizer_from_spec(spec), QueryTokenizer)


def _format_2(raw: dict) -> dict:
    """The bundled manifest turned into a format-2 one with a subword tokenizer and a query embedding table."""
    raw = dict(raw, format_version=2)
    raw["query_tokenizer"] = {"kind": "subword", "tokenizer_file": "q.json", "max_tokens": 16, "pad_id": 1}
    width = raw["predictor"]["inputs"][0]["shape"][-1]
    raw["query_embeddings"] = {"file": "q.npy", "sha256": "0" * 64, "rows": 7, "width": width}
    predictor = dict(raw["predictor"])
    predictor["inputs"] = [
        predictor["inputs"][0],
        {"name": "query_embeddings", "dtype": "float32", "shape": ["batch", 16, width]},
        predictor["inputs"][2],
    ]
    raw["predictor"] = predictor
    return raw


@pytest.fixture
def bundled_raw():
    raw = yaml.safe_load(bundled_manifest_path().read_text())
    raw["query_tokenizer"]["max_tokens"] = 16
    for spec in raw["predictor"]["inputs"][1:]:
        spec["shape"] = ["batch", 16]
    return raw


def test_format_2_fields_round_trip(bundled_raw, tmp_path):
    manifest = parse_manifest(_format_2(bundled_raw), tmp_path)
    assert manifest.format_version == 2 and manifest.query_tokenizer.tokenizer_file == tmp_path / "q.json"
    assert (manifest.query_embeddings.rows, manifest.query_embeddings.file) == (7, tmp_path / "q.npy")
    again = parse_manifest(manifest.to_dict(), tmp_path)
    assert again.query_tokenizer == manifest.query_tokenizer and again.query_embeddings == manifest.query_embeddings


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda r: r["query_tokenizer"].update(kind="bytes"), "query_tokenizer.kind"),
        (lambda r: r["query_tokenizer"].pop("tokenizer_file"), "query_tokenizer.tokenizer_file"),
        (lambda r: r["query_embeddings"].update(width=3), "predictor.inputs[1]"),
        (lambda r: r.update(format_version=4), "format_version"),
    ],
)
def test_format_2_errors_name_the_field(bundled_raw, tmp_path, edit, field):
    raw = _format_2(bundled_raw)
    edit(raw)
    with pytest.raises(ManifestError, match=field.replace("[", r"\[").replace("]", r"\]")):
        parse_manifest(raw, tmp_path)


def test_a_table_of_the_wrong_shape_is_refused_at_load(tmp_path):
    np.save(tmp_path / "q.npy", np.zeros((7, 4), dtype=np.float32))
    assert load_query_embeddings(QueryEmbeddingsSpec(tmp_path / "q.npy", "x", 7, 4)).shape == (7, 4)
    with pytest.raises(ManifestError, match=r"float32 \(7, 5\)"):
        load_query_embeddings(QueryEmbeddingsSpec(tmp_path / "q.npy", "x", 7, 5))
