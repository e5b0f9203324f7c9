"""Y-encoder: torch wrapper vs sentence-transformers, ONNX export parity, the torch-free runtime."""

import shutil

import numpy as np
import pytest
import torch

from vljepa_ros.export.text_encoder import export_text_encoder
from vljepa_ros.runtime.manifest import ManifestError, load_manifest
from vljepa_ros.runtime.text_encoder_runtime import TextEncoderRuntime
from vljepa_ros.torch_models.text_encoder import (
    TextEncoderSource,
    TorchTextEncoder,
    minilm_source,
)

TEXTS = ["a red ball rolls left", "the robot picks up the blue box and puts it on the shelf", "ok", "what changed?"]


@pytest.fixture(scope="module")
def tiny_source(tmp_path_factory):
    """A 2-layer, 32-wide BERT with random weights and MiniLM's real tokenizer."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_bert")
    BertModel(
        BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    ).save_pretrained(folder)
    shutil.copyfile(minilm_source().tokenizer_file, folder / "tokenizer.json")
    return TextEncoderSource(model_dir=folder, model_id="tiny-bert", max_tokens=32)


@pytest.fixture(scope="module")
def tiny_export(tiny_source, tmp_path_factory):
    return export_text_encoder(tmp_path_factory.mktemp("te"), tiny_source, log=lambda _: None)


def test_tiny_export_parity_and_runtime_matches_torch(tiny_source, tiny_export):
    runtime = TextEncoderRuntime.from_spec(tiny_export)
    want = TorchTextEncoder(tiny_source).encode(TEXTS)
    got = runtime.encode(TEXTS)
    assert got.shape == (4, 32) and runtime.dim == 32
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_padding_and_batching_do_not_change_embeddings(tiny_export):
    runtime = TextEncoderRuntime.from_spec(tiny_export)
    together = runtime.encode(TEXTS)
    alone = np.concatenate([runtime.encode([t]) for t in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(runtime.encode(TEXTS, batch_size=3), together, atol=1e-6)


def test_long_text_is_truncated_to_max_tokens(tiny_export):
    runtime = TextEncoderRuntime.from_spec(tiny_export)
    long = " ".join(["word"] * 200)
    assert len(runtime.tokenizer.encode(long).ids) == 32
    assert runtime.encode([long]).shape == (1, 32)


def test_make_bank_and_errors(tiny_export):
    runtime = TextEncoderRuntime.from_spec(tiny_export)
    bank = runtime.make_bank(["ball", "box"])
    assert bank.texts == ("ball", "box") and bank.dim == 32
    assert bank.top_k(runtime.encode(["box"])[0], 1)[0][0] == "box"
    with pytest.raises(TypeError, match="not one string"):
        runtime.encode("ball")
    assert runtime.encode([]).shape == (0, 32)


def test_hash_mismatch_is_refused(tiny_export, tmp_path):
    from dataclasses import replace

    with pytest.raises(ManifestError, match="text_encoder.sha256"):
        TextEncoderRuntime.from_spec(replace(tiny_export, sha256="0" * 64))


def test_model_manifest_with_text_encoder(tiny_source, tiny_export, tmp_path):
    from dataclasses import replace

    from vljepa_ros.export.model import export_model
    from vljepa_ros.runtime.manifest import write_manifest
    from vljepa_ros.runtime.query_tokenizer import build_vocab
    from vljepa_ros.runtime.vljepa_runtime import VLJepaRuntime
    from vljepa_ros.torch_models.vjepa2_encoder import VJepa2Encoder, encoder_config
    from vljepa_ros.torch_models.vljepa_predictor import VLJepaPredictor, predictor_config

    torch.manual_seed(0)
    encoder = VJepa2Encoder(encoder_config("tiny", num_frames=2, img_size=16, depth=1)).eval()
    predictor = VLJepaPredictor(predictor_config("tiny", visual_dim=96, embedding_dim=32)).eval()
    path = export_model(
        encoder, predictor, build_vocab(["describe the scene", "what changed"]), tmp_path, log=lambda _: None
    )
    # ship the (module-scoped) exported tiny Y-encoder with this model, as export_model(text_encoder_source=) does
    for name in ("text_encoder.onnx", "tokenizer.json"):
        shutil.copyfile(tiny_export.file.parent / name, tmp_path / name)
    spec = replace(tiny_export, file=tmp_path / "text_encoder.onnx", tokenizer=tmp_path / "tokenizer.json")
    write_manifest(replace(load_manifest(path), text_encoder=spec), path)
    manifest = load_manifest(path)
    assert manifest.text_encoder.max_tokens == 32 and manifest.text_encoder.outputs[0].shape == ("batch", 32)
    runtime = VLJepaRuntime.from_manifest(path, providers=("cpu",))
    text = runtime.load_text_encoder()
    np.testing.assert_allclose(text.encode(TEXTS), TorchTextEncoder(tiny_source).encode(TEXTS), atol=1e-5)
    with pytest.raises(ManifestError, match="no text_encoder section"):
        VLJepaRuntime.from_manifest(
            write_manifest(replace(manifest, text_encoder=None), path), providers=("cpu",)
        ).load_text_encoder()


def test_export_model_with_text_encoder_source(tiny_source, tmp_path):
    """export_model(text_encoder_source=...) refuses a Y-encoder whose width differs, before exporting anything."""
    from vljepa_ros.export.model import export_model
    from vljepa_ros.torch_models.vjepa2_encoder import VJepa2Encoder, encoder_config
    from vljepa_ros.torch_models.vljepa_predictor import VLJepaPredictor, predictor_config

    torch.manual_seed(0)
    encoder = VJepa2Encoder(encoder_config("tiny", num_frames=2, img_size=16, depth=1)).eval()
    predictor = VLJepaPredictor(predictor_config("tiny", visual_dim=96, embedding_dim=48)).eval()
    with pytest.raises(ValueError, match="text encoder width 32 != predictor embedding_dim 48"):
        export_model(
            encoder,
            predictor,
            ["<pad>", "<unk>", "what"],
            tmp_path,
            text_encoder_source=tiny_source,
            log=lambda _: None,
        )


def test_minilm_wrapper_matches_sentence_transformers():
    """The packaged all-MiniLM-L6-v2, loaded offline, gives sentence-transformers' normalised embeddings."""
    from sentence_transformers import SentenceTransformer

    ours = TorchTextEncoder(minilm_source())
    reference = SentenceTransformer(str(minilm_source().model_dir), device="cpu")
    np.testing.assert_allclose(ours.encode(TEXTS), reference.encode(TEXTS, normalize_embeddings=True), atol=1e-5)
    assert ours.dim == 384


@pytest.mark.slow
def test_minilm_onnx_export_matches_sentence_transformers(tmp_path):
    from sentence_transformers import SentenceTransformer

    spec = export_text_encoder(tmp_path, minilm_source(), log=lambda _: None)
    assert not list(tmp_path.glob("*.data"))  # weights embedded, one file to hash
    reference = SentenceTransformer(str(minilm_source().model_dir), device="cpu")
    got = TextEncoderRuntime.from_spec(spec).encode(TEXTS)
    np.testing.assert_allclose(got, reference.encode(TEXTS, normalize_embeddings=True), atol=1e-5)


@pytest.mark.slow
def test_export_model_ships_the_text_encoder(tiny_source, tmp_path):
    from vljepa_ros.export.model import export_model
    from vljepa_ros.torch_models.vjepa2_encoder import VJepa2Encoder, encoder_config
    from vljepa_ros.torch_models.vljepa_predictor import VLJepaPredictor, predictor_config

    torch.manual_seed(0)
    encoder = VJepa2Encoder(encoder_config("tiny", num_frames=2, img_size=16, depth=1)).eval()
    predictor = VLJepaPredictor(predictor_config("tiny", visual_dim=96, embedding_dim=32)).eval()
    path = export_model(
        encoder, predictor, ["<pad>", "<unk>", "what"], tmp_path, text_encoder_source=tiny_source, log=lambda _: None
    )
    manifest = load_manifest(path)
    assert manifest.text_encoder.file == tmp_path.resolve() / "text_encoder.onnx"
    assert (tmp_path / "tokenizer.json").is_file()
