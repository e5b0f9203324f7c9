"""open-vljepa end to end with a small checkpoint in its layout: export_model, embed, then replay of a tiny-world bag.

The checkpoint, the Llama / EmbeddingGemma folders and the Hugging Face V-JEPA 2 folder come from the fixture
(random tiny weights), so this is the user's path from a fresh clone with the downloads swapped for small ones.
"""

import numpy as np
import pytest

from vljepa_ros.bags import bag_io
from vljepa_ros.export.cli import main as export_main
from vljepa_ros.runtime.manifest import load_manifest
from vljepa_ros.runtime.text_bank import TextBank
from vljepa_ros.tiny_world.bag_writer import write_stream_bag
from vljepa_ros.tiny_world.stream import StreamConfig, generate_stream
from vljepa_ros.tools import replay
from vljepa_ros.tools.embed import main as embed_main
from vljepa_ros.tools.make_bank import main as make_bank_main

from support.open_vljepa_fixture import build_open_vljepa_fixture

CAPTIONS = ("a red ball rolls to the left", "a robot arm picks up a small blue box", "a dog sits", "a person walks")
BAG_SECONDS = 6.0


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("open_vljepa")
    fixture = build_open_vljepa_fixture(root / "downloads", seed=1, with_vjepa2=True)
    (root / "captions.txt").write_text("# captions for the decoder\n" + "\n".join(CAPTIONS) + "\n\n")
    args = ["--open-vljepa", str(fixture.checkpoint), "--x-encoder", str(fixture.vjepa2_dir)]
    args += ["--llama", str(fixture.llama_dir), "--y-encoder", str(fixture.gemma_dir), "--out", str(root / "model")]
    args += ["--bank-texts", f"captions={root / 'captions.txt'}"]
    return root, export_main(args)


def test_export_writes_a_loadable_model_with_its_caption_bank(exported, capsys):
    root, code = exported
    assert code == 0
    manifest = load_manifest(root / "model" / "manifest.yaml")
    assert manifest.model_id == "open-vljepa" and manifest.format_version == 3
    assert manifest.clip.frames == 8 and manifest.clip.resize_short == manifest.clip.crop_size
    assert list(TextBank.load(manifest.banks["captions"]).texts) == list(CAPTIONS)


def test_embed_writes_unit_predicted_and_text_embeddings(exported, tmp_path):
    root, _ = exported
    manifest = load_manifest(root / "model" / "manifest.yaml")
    frames = np.random.default_rng(0).integers(0, 256, (manifest.clip.frames, 48, 64, 3), dtype=np.uint8)
    np.save(tmp_path / "frames.npy", frames)
    args = ["--manifest", str(manifest.root / "manifest.yaml"), "--frames", str(tmp_path / "frames.npy")]
    args += ["--query", "Describe the video.", "--query", "what is happening in the video ?"]
    args += ["--text", CAPTIONS[0], "--text", CAPTIONS[2], "--text", "a cat", "--out", str(tmp_path / "r.npz")]
    assert embed_main(args) == 0
    with np.load(tmp_path / "r.npz") as result:
        predicted, text = result["predicted"], result["text"]
        assert list(result["texts"]) == [CAPTIONS[0], CAPTIONS[2], "a cat"]
    assert predicted.shape == (2, manifest.embedding_dim) and text.shape == (3, manifest.embedding_dim)
    assert predicted.dtype == text.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(predicted, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-5)
    bank = TextBank.load(manifest.banks["captions"])
    np.testing.assert_allclose(text[:2], bank.embeddings[[0, 2]], atol=1e-5)  # same Y-encoder as the bank
    assert not np.allclose(predicted[0], predicted[1], atol=1e-3)  # the query matters


def test_embed_refuses_a_clip_of_the_wrong_shape(exported, tmp_path, capsys):
    root, _ = exported
    np.save(tmp_path / "clip.npy", np.zeros((8, 3, 16, 16), dtype=np.float32))
    args = ["--manifest", str(root / "model" / "manifest.yaml"), "--clip", str(tmp_path / "clip.npy")]
    assert embed_main([*args, "--query", "Describe the video.", "--out", str(tmp_path / "r.npz")]) == 2
    assert "--clip: expected float32 (8, 3, 32, 32)" in capsys.readouterr().err


def test_replay_of_a_tiny_world_bag_with_the_exported_model(exported):
    root, _ = exported
    manifest = load_manifest(root / "model" / "manifest.yaml")
    write_stream_bag(generate_stream(StreamConfig(seed=7, duration_s=BAG_SECONDS)), root / "bag")
    args = [str(root / "bag"), "--model", str(manifest.root / "manifest.yaml"), "--out", str(root / "out")]
    assert replay.main([*args, "--quiet", "--no-report"]) == 0
    embeddings = bag_io.read_messages(root / "out" / "bag", replay.TOPIC_EMBEDDING)
    expected = BAG_SECONDS * manifest.clip.frame_rate_hz - (manifest.clip.frames - 1)
    assert len(embeddings) == pytest.approx(expected, abs=1)
    _, message = embeddings[0]
    assert message.model_id == "open-vljepa" and message.model_version == manifest.version


def test_make_bank_embeds_a_text_file_with_the_models_y_encoder(exported, tmp_path, capsys):
    root, _ = exported
    manifest = root / "model" / "manifest.yaml"
    assert (
        make_bank_main(
            ["--manifest", str(manifest), "--texts", str(root / "captions.txt"), "--out", str(tmp_path / "b.npz")]
        )
        == 0
    )
    bank, shipped = TextBank.load(tmp_path / "b.npz"), TextBank.load(load_manifest(manifest).banks["captions"])
    assert bank.texts == shipped.texts
    np.testing.assert_allclose(bank.embeddings, shipped.embeddings, atol=1e-6)
    (tmp_path / "twice.txt").write_text("a dog\na dog\n")
    assert (
        make_bank_main(
            ["--manifest", str(manifest), "--texts", str(tmp_path / "twice.txt"), "--out", str(tmp_path / "c.npz")]
        )
        == 2
    )
    assert "'a dog' appears twice" in capsys.readouterr().err
