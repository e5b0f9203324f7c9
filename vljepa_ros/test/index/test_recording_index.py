"""The recording index: parts keyed by bag content and model version, flat and ANN search, filters, the page."""

import numpy as np
import pyarrow as pa
import pytest

from vljepa_ros.index.ann import IvfIndex
from vljepa_ros.index.content_hash import bag_content_hash
from vljepa_ros.index.query_encoding import QueryEncoder
from vljepa_ros.index.recording_index import RecordingIndex, vectors_of
from vljepa_ros.index.results_page import results_html
from vljepa_ros.index.search import ClipSearcher, Filters
from vljepa_ros.index.thumbnails import jpeg_thumbnail
from vljepa_ros.runtime.text_bank import TextBank
from vljepa_ros.tools import search_recordings

from support.index_rows import clip_rows

DIM = 16


def synthetic_rows(bag_hash: str, count: int, rng: np.random.Generator, version: str = "v1", camera="cam") -> pa.Table:
    vectors = rng.standard_normal((count, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return clip_rows(
        bag_hash,
        vectors,
        camera=camera,
        version=version,
        caption=[f"caption {i % 7}" for i in range(count)],
        thumbnail_jpeg=[b"\xff\xd8"] * count,
    )


def test_a_rerun_replaces_a_bag_instead_of_appending(tmp_path):
    rng = np.random.default_rng(0)
    index = RecordingIndex(tmp_path / "index")
    index.add_bag(synthetic_rows("aa", 10, rng), "aa", "v1")
    index.add_bag(synthetic_rows("bb", 5, rng), "bb", "v1")
    index.add_bag(synthetic_rows("aa", 10, rng), "aa", "v1")  # the same bag again
    index.add_bag(synthetic_rows("aa", 10, rng, version="v2"), "aa", "v2")  # a new model version is new rows
    table = index.table()
    assert len(table) == len(index) == 25 and len(set(table["key"].to_pylist())) == 25
    assert index.has_bag("aa", "v2") and not index.has_bag("cc", "v1")
    assert not list(index.parts.glob(".*partial"))
    with pytest.raises(ValueError, match="bag hash"):
        index.add_bag(synthetic_rows("aa", 3, rng), "bb", "v1")


def test_flat_search_filters_and_ann_agree(tmp_path):
    rng = np.random.default_rng(1)
    index = RecordingIndex(tmp_path)
    for bag, camera in (("aa", "front"), ("bb", "rear")):
        index.add_bag(synthetic_rows(bag, 2000, rng, camera=camera), bag, "v1")
    searcher = ClipSearcher.load(index)
    target = 1234
    query = searcher.vectors[target]
    hits = searcher.search(query, top_k=5)
    assert hits[0].key == searcher.columns["key"][target] and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    rear = searcher.search(query, top_k=5, filters=Filters(camera="rear"))
    assert {h.camera for h in rear} == {"rear"}
    window = searcher.search(query, 50, Filters(after_ns=10_000_000_000, before_ns=20_000_000_000))
    assert len(window) == 22 and all(10e9 <= h.stamp_ns <= 20e9 for h in window)
    assert searcher.search(query, 3, Filters(model_version="v9")) == []
    searcher.build_ann()
    assert searcher.search(query, 5, use_ann=True)[0].key == hits[0].key
    # The example's own clip is its best match.
    example, version = searcher.example("bag_aa", 7.2)
    assert version == "v1" and searcher.search(example, 1)[0].stamp_ns == 7_000_000_000
    assert hits[0].replay_command == f"live_replay {hits[0].bag_path} --start {hits[0].t_s:.2f}"


def test_ivf_recall_on_clustered_vectors():
    rng = np.random.default_rng(2)
    centres = rng.standard_normal((50, DIM)).astype(np.float32)
    vectors = centres[rng.integers(0, 50, 5000)] + 0.05 * rng.standard_normal((5000, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ann = IvfIndex(vectors)
    found = sum(int(ann.search(vectors[i], 1)[0][0] == i) for i in range(0, 5000, 50))
    assert found >= 95


def test_query_encoder_without_text_encoder_uses_the_caption_bank():
    texts = ["a red cube on the floor", "a blue ball on a table"]
    bank = TextBank.from_embeddings(texts, np.eye(2, DIM, dtype=np.float32))
    encoder = QueryEncoder("m", "v1", None, bank)
    exact = encoder.encode("A blue ball  on a table")
    assert np.allclose(exact.vector, bank.embeddings[1]) and "blue ball" in exact.source
    assert np.allclose(encoder.encode("red cube").vector, bank.embeddings[0])


def test_bundled_model_has_no_text_encoder_so_search_uses_its_caption_bank():
    from vljepa_ros.runtime.bundled_model import bundled_manifest_path

    encoder = QueryEncoder.from_manifest(bundled_manifest_path())
    assert encoder.encoder is None and len(encoder.bank) > 100
    assert encoder.encode(encoder.bank.texts[3]).source == f"caption bank: {encoder.bank.texts[3]!r}"


def test_content_hash_and_thumbnail_and_page(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.mcap").write_bytes(b"same")
    assert bag_content_hash(tmp_path / "a") == bag_content_hash(tmp_path / "b")
    (tmp_path / "b" / "x.mcap").write_bytes(b"diff")
    assert bag_content_hash(tmp_path / "a") != bag_content_hash(tmp_path / "b")
    jpeg = jpeg_thumbnail(np.zeros((120, 160, 3), np.uint8), width=48)
    assert jpeg[:2] == b"\xff\xd8"
    index = RecordingIndex(tmp_path / "index")
    index.add_bag(synthetic_rows("aa", 3, np.random.default_rng(3)), "aa", "v1")
    searcher = ClipSearcher.load(index)
    hits = searcher.search(searcher.vectors[0], 2)
    page = results_html("<door>", hits, {hits[0].key: jpeg})
    assert "&lt;door&gt;" in page and page.count("data:image/jpeg;base64,") == 1 and "live_replay" in page
    assert vectors_of(index.table()).shape == (3, DIM)


def test_like_searches_only_the_examples_model_version(tmp_path, capsys):
    """Vectors of two models are not comparable: --like ranks only rows of the example's model version, and a
    bag replayed under several versions is refused, naming them, until --model-version picks one."""
    rng = np.random.default_rng(5)
    index = RecordingIndex(tmp_path)
    v1 = synthetic_rows("aa", 20, rng, version="v1")
    index.add_bag(v1, "aa", "v1")
    example = vectors_of(v1)[3]
    # Another model's rows that a cross-version comparison would rank first: the example's vector itself.
    index.add_bag(clip_rows("bb", [example] * 5, version="v2"), "bb", "v2")
    code = search_recordings.main([str(tmp_path), "--like", "bag_aa@3", "--clips", "--top-k", "10"])
    listing = capsys.readouterr().out
    assert code == 0 and "model version v1" in listing
    assert "bag_aa" in listing and "bag_bb" not in listing
    index.add_bag(clip_rows("aa", [example] * 5, version="v2"), "aa", "v2")
    assert search_recordings.main([str(tmp_path), "--like", "bag_aa@3", "--clips"]) == 2
    assert "model versions v1, v2" in capsys.readouterr().err
    code = search_recordings.main([str(tmp_path), "--like", "bag_aa@3", "--clips", "--model-version", "v2"])
    listing = capsys.readouterr().out
    assert code == 0 and "bag_bb" in listing and "model version v2" in listing
