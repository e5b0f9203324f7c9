"""VLJepaRuntime on a real exported (random-weight) model: shapes, normalisation, batching, queries, transitions."""

import numpy as np
import pytest

from vljepa_ros.runtime.preprocessing import preprocess_clip
from vljepa_ros.runtime.vljepa_runtime import VLJepaRuntime

from support.tiny_models import tiny_random_model


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    return VLJepaRuntime.from_manifest(tiny_random_model(tmp_path_factory.mktemp("tiny")), providers=("cpu",))


def _frames(n, seed, size=(90, 120)):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(n)]


def test_encode_predict_shapes_and_unit_norm(runtime):
    clips = np.stack([runtime.prepare_clip(_frames(8, s)) for s in range(3)])
    tokens = runtime.encode(clips)
    assert tokens.shape == (3, 256, 96) and tokens.dtype == np.float32
    state = runtime.visual_state(tokens)
    emb = runtime.predict(tokens, "describe the scene")
    assert state.shape == (3, 96) and emb.shape == (3, runtime.manifest.embedding_dim)
    np.testing.assert_allclose(np.linalg.norm(state, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert runtime.provider == "CPUExecutionProvider"


def test_batch_rows_equal_single_runs(runtime):
    clips = np.stack([runtime.prepare_clip(_frames(8, s)) for s in range(2)])
    both = runtime.encode(clips)
    np.testing.assert_allclose(both[1], runtime.encode(clips[1])[0], atol=1e-5)
    per_row = runtime.predict(both, ["describe the scene", "what changed"])
    np.testing.assert_allclose(per_row[1], runtime.predict(both[1:], "what changed")[0], atol=1e-5)
    assert not np.allclose(per_row[0], runtime.predict(both[:1], "what changed")[0], atol=1e-4)


def test_visual_state_is_normalised_token_mean(runtime):
    tokens = runtime.encode(runtime.prepare_clip(_frames(8, 5)))
    mean = tokens.mean(axis=1)
    np.testing.assert_allclose(
        runtime.visual_state(tokens), mean / np.linalg.norm(mean, axis=1, keepdims=True), atol=1e-6
    )


def test_query_tokens_are_cached_and_the_cache_is_bounded(runtime, monkeypatch):
    import vljepa_ros.runtime.vljepa_runtime as module

    assert runtime.query_tokens("what changed") is runtime.query_tokens("what changed")
    monkeypatch.setattr(module, "QUERY_CACHE_SIZE", 3)
    for query in ("the scene", "a red ball", "a blue box", "a green ball"):
        runtime.query_tokens(query)
    assert len(runtime._queries) == 3 and "what changed" not in runtime._queries


def test_runtime_matches_torch_on_same_weights(tmp_path):
    """The runtime (ONNX) result equals the torch predictor on the torch encoder's tokens for the same seed."""
    # An export-side check: the Python 3.10 run of the core's tests has no torch and reports this one skipped.
    torch = pytest.importorskip("torch", reason="export-side parity check; torch is not in the core's requirements")
    from vljepa_ros.export.model import DEFAULT_QUERIES, TINY_ACTIONS, TINY_CAPTIONS, export_tiny_random
    from vljepa_ros.runtime.query_tokenizer import QueryTokenizer, build_vocab
    from vljepa_ros.torch_models.vjepa2_encoder import VJepa2Encoder, encoder_config
    from vljepa_ros.torch_models.vljepa_predictor import VLJepaPredictor, predictor_config

    rt = VLJepaRuntime.from_manifest(export_tiny_random(tmp_path, seed=3), providers=("cpu",))
    torch.manual_seed(3)  # export_tiny_random builds its modules in this order from this seed
    vocab = build_vocab([*DEFAULT_QUERIES.values(), *TINY_CAPTIONS, *TINY_ACTIONS])
    encoder = VJepa2Encoder(encoder_config("tiny")).eval()
    predictor = VLJepaPredictor(
        predictor_config("tiny", visual_dim=96, vocab_size=len(vocab), embedding_dim=384)
    ).eval()
    clip = rt.prepare_clip(_frames(8, 9))
    q = QueryTokenizer(vocab, 8).encode("describe the scene")
    with torch.no_grad():
        tokens = encoder(torch.from_numpy(clip[None]))
        want = predictor(tokens, torch.from_numpy(q.ids[None]), torch.from_numpy(q.mask[None])).numpy()
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(rt.predict(rt.encode(clip), "describe the scene"), want, atol=1e-4)


def test_transition_clip_is_before_half_then_after_half(runtime):
    before, after = _frames(1, 1)[0], _frames(6, 2)
    clip = runtime.transition_clip(before, after)
    expected = preprocess_clip([before] * 4 + [after[i] for i in (0, 2, 3, 5)], runtime.manifest.clip)
    np.testing.assert_array_equal(clip, expected)
    assert runtime.encode(clip).shape == (1, 256, 96)


def test_image_input_repeats_the_frame(runtime):
    image = _frames(1, 4)[0]
    np.testing.assert_array_equal(runtime.prepare_image(image), runtime.prepare_clip([image] * 8))


def test_bad_inputs_raise_clear_errors(runtime):
    with pytest.raises(ValueError, match=r"encode: expected \(batch, 3, 8, 64, 64\) float32"):
        runtime.encode(np.zeros((1, 3, 8, 32, 32), np.float32))
    with pytest.raises(ValueError, match="float32"):
        runtime.encode(np.zeros((1, 3, 8, 64, 64), np.float64))
    tokens = runtime.encode(runtime.prepare_clip(_frames(8, 0)))
    with pytest.raises(ValueError, match="more than max_tokens=8"):
        runtime.predict(tokens, "one two three four five six seven eight nine")
    with pytest.raises(ValueError, match="2 queries for a batch of 1"):
        runtime.predict(tokens, ["a", "b"])
    with pytest.raises(KeyError, match="no bank 'objects'"):
        runtime.load_bank("objects")


def test_banks_load_with_model_dim(runtime):
    bank = runtime.load_bank("actions")
    assert bank.dim == runtime.manifest.embedding_dim and len(bank) == 4


def test_runtime_modules_never_import_torch():
    import subprocess
    import sys

    code = (
        "import sys, vljepa_ros.runtime.vljepa_runtime, vljepa_ros.runtime.text_encoder_runtime, "
        "vljepa_ros.runtime.onnx_session, vljepa_ros.runtime.preprocessing, vljepa_ros.runtime.manifest, "
        "vljepa_ros.runtime.text_bank, vljepa_ros.runtime.query_tokenizer; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
