"""Retrieval decoder over a real MiniLM caption bank: nearest text, runner-ups, runtime bank swap, errors."""

import threading

import numpy as np
import pytest

from vljepa_ros.decoding.decoders import Decoder, RetrievalDecoder
from vljepa_ros.runtime.text_bank import TextBank

from support.selective_streams import BANK_PATH, load_bank


def test_decodes_every_bank_vector_to_its_own_text_with_sorted_alternatives():
    decoder = RetrievalDecoder.from_file(BANK_PATH, num_alternatives=3)
    bank = decoder.bank
    assert decoder.source == str(BANK_PATH)
    assert isinstance(decoder, Decoder)
    for text, vec in zip(bank.texts, bank.embeddings):
        out = decoder.decode(vec)
        assert out.text == text
        assert out.score == pytest.approx(1.0, abs=1e-5)
        assert len(out.alternatives) == 3
        scores = [out.score] + [s for _, s in out.alternatives]
        assert scores == sorted(scores, reverse=True)
        assert text not in [t for t, _ in out.alternatives]


def test_runner_up_is_the_nearest_other_caption():
    bank = load_bank()
    decoder = RetrievalDecoder(bank, num_alternatives=1)
    sims = bank.embeddings @ bank.embeddings.T
    np.fill_diagonal(sims, -np.inf)
    for i in range(0, len(bank), 7):
        ((alt, score),) = decoder.decode(bank.embeddings[i]).alternatives
        assert alt == bank.texts[int(np.argmax(sims[i]))]
        assert score == pytest.approx(float(np.max(sims[i])), abs=1e-5)


def test_replacing_the_bank_changes_the_vocabulary():
    bank = load_bank()
    decoder = RetrievalDecoder(bank, num_alternatives=0)
    query = bank.embeddings[bank.texts.index("a blue cube on the floor")]
    assert decoder.decode(query).text == "a blue cube on the floor"
    keep = [i for i, t in enumerate(bank.texts) if "blue cube" not in t]
    decoder.replace_bank(TextBank.from_embeddings([bank.texts[i] for i in keep], bank.embeddings[keep]), "subset")
    out = decoder.decode(query)
    assert "blue cube" not in out.text and out.score < 0.99 and out.alternatives == ()
    assert decoder.source == "subset"


def test_from_texts_normalises_and_small_banks_cap_alternatives():
    decoder = RetrievalDecoder.from_texts(["left", "right"], np.array([[3.0, 0.0], [0.0, 0.5]]), num_alternatives=5)
    out = decoder.decode(np.array([0.6, 0.8], dtype=np.float32))
    assert (out.text, out.score, out.alternatives) == ("right", pytest.approx(0.8), (("left", pytest.approx(0.6)),))
    assert out.margin == pytest.approx(0.2)
    assert out.certified_radius == pytest.approx(0.2 / np.sqrt(2.0), abs=1e-4)  # the two entries are sqrt(2) apart
    assert decoder.embedding_dim == 2


def test_errors_name_the_problem(tmp_path):
    decoder = RetrievalDecoder(load_bank())
    with pytest.raises(ValueError, match="dim"):
        decoder.decode(np.ones(5, dtype=np.float32))
    with pytest.raises(ValueError, match="num_alternatives"):
        RetrievalDecoder(load_bank(), num_alternatives=-1)
    bad = tmp_path / "bad.npz"
    np.savez(bad, texts=np.array(["a"]))
    with pytest.raises(ValueError, match="embeddings"):
        RetrievalDecoder.from_file(bad)


def test_bank_swap_while_decoding_in_another_thread():
    bank = load_bank()
    decoder = RetrievalDecoder(bank)
    other = TextBank.from_embeddings(bank.texts[:5], bank.embeddings[:5])
    errors = []

    def decode_many():
        try:
            for vec in np.tile(bank.embeddings, (5, 1)):
                assert decoder.decode(vec).text in bank.texts
        except Exception as err:  # collected and reported by the main thread
            errors.append(err)

    worker = threading.Thread(target=decode_many)
    worker.start()
    for _ in range(200):
        decoder.replace_bank(other)
        decoder.replace_bank(bank)
    worker.join()
    assert errors == []
