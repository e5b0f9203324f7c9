"""Query tokenizer and text bank (pure numpy parts of the runtime)."""

import numpy as np
import pytest

from vljepa_ros.runtime.query_tokenizer import QueryTokenizer, build_vocab, read_vocab, split_words, write_vocab
from vljepa_ros.runtime.text_bank import TextBank, l2_normalise


def test_split_words_lowercases_and_separates_punctuation():
    assert split_words("What changed? The Robot's arm.") == ["what", "changed", "?", "the", "robot's", "arm", "."]


def test_encode_ids_mask_and_unknown_words(tmp_path):
    vocab = build_vocab(["describe the scene", "what changed"])
    assert vocab[:2] == ("<pad>", "<unk>")
    tok = QueryTokenizer(read_vocab(write_vocab(vocab, tmp_path / "v.txt")), max_tokens=6)
    q = tok.encode("Describe the  GARDEN")
    assert q.ids.dtype == np.int64 and q.mask.dtype == np.int64
    assert q.ids.tolist() == [vocab.index("describe"), vocab.index("the"), 1, 0, 0, 0]
    assert q.mask.tolist() == [1, 1, 1, 0, 0, 0]
    assert q.unknown_words == ("garden",)
    ids, mask = tok.encode_batch(["what changed", "the scene"])
    assert ids.shape == mask.shape == (2, 6)


def test_too_long_and_empty_queries_raise():
    tok = QueryTokenizer(build_vocab(["a b"]), max_tokens=2)
    with pytest.raises(ValueError, match="3 tokens, more than max_tokens=2"):
        tok.encode("a b a")
    with pytest.raises(ValueError, match="has no tokens"):
        tok.encode("   ")


def test_vocab_file_errors(tmp_path):
    (tmp_path / "blank.txt").write_text("<pad>\n\n<unk>\n")
    with pytest.raises(ValueError, match="line 2 is empty"):
        read_vocab(tmp_path / "blank.txt")
    (tmp_path / "dup.txt").write_text("<pad>\n<unk>\na\na\n")
    with pytest.raises(ValueError, match="duplicate"):
        read_vocab(tmp_path / "dup.txt")


def test_bank_top_k_by_cosine(tmp_path):
    emb = np.array([[1, 0, 0], [0, 2, 0], [1, 1, 0], [0, 0, -3]], np.float32)
    bank = TextBank.from_embeddings(["x", "y", "xy", "-z"], emb)
    np.testing.assert_allclose(np.linalg.norm(bank.embeddings, axis=1), 1.0, atol=1e-6)
    top = bank.top_k(np.array([1.0, 0.2, 0.0]), k=2)
    assert [t for t, _ in top] == ["x", "xy"]
    assert top[0][1] == pytest.approx(1 / np.sqrt(1.04), abs=1e-6)
    loaded = TextBank.load(bank.save(tmp_path / "b.npz"))
    assert loaded.texts == bank.texts
    np.testing.assert_allclose(loaded.embeddings, bank.embeddings)
    assert bank.similarities(np.eye(3, dtype=np.float32)).shape == (3, 4)


def test_bank_errors(tmp_path):
    with pytest.raises(ValueError, match="2 texts for 3 embeddings"):
        TextBank(("a", "b"), np.eye(3, dtype=np.float32))
    with pytest.raises(ValueError, match="zero or not finite"):
        l2_normalise(np.zeros((2, 3)))
    bank = TextBank.from_embeddings(["a"], np.ones((1, 3)))
    with pytest.raises(ValueError, match="query dim 4 != bank dim 3"):
        bank.top_k(np.ones(4))
    np.savez(tmp_path / "bad.npz", texts=np.array(["a"]))
    with pytest.raises(ValueError, match="missing array"):
        TextBank.load(tmp_path / "bad.npz")
