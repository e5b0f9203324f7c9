"""export_model --open-vljepa: the exported folder, read by the runtime, gives what the torch modules give.

The small open-vljepa-layout checkpoint of the fixture is exported through the CLI; the runtime (ONNX Runtime,
its own tokenizers) is then compared with load_encoder + load_open_vljepa in torch on the same clip, queries and
captions, tokenised by open-vljepa's fixed-length tokenizers.
"""

import contextlib
import io

import numpy as np
import pytest
import torch

from vljepa_ros.export.cli import main
from vljepa_ros.runtime.bundled_model import bundled_manifest_path
from vljepa_ros.runtime.manifest import load_manifest
from vljepa_ros.runtime.vljepa_runtime import VLJepaRuntime
from vljepa_ros.torch_models.encoder_loading import load_encoder
from vljepa_ros.torch_models.open_vljepa import load_open_vljepa

from support.open_vljepa_fixture import build_open_vljepa_fixture

QUERIES = ("Describe the video.", "what is happening in the video ?", "a robot arm picks up a small blue box")
CAPTIONS = ("a red ball rolls to the left", "person walks dog", "the cat sits on the table and the dog walks left")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("ov_export")
    fixture = build_open_vljepa_fixture(root / "downloads", seed=2, with_vjepa2=True)
    args = ["--open-vljepa", str(fixture.checkpoint), "--x-encoder", str(fixture.vjepa2_dir), "--llama"]
    args += [str(fixture.llama_dir), "--y-encoder", str(fixture.gemma_dir), "--out", str(root / "m"), "--frames", "4"]
    args += ["--query", "caption=describe the video ."]
    return fixture, args, root / "m" / "manifest.yaml"


@pytest.fixture(scope="module")
def logged(exported):
    _, args, _ = exported
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(args) == 0
    return out.getvalue()


@pytest.fixture(scope="module")
def runtime(logged, exported):
    return VLJepaRuntime.from_manifest(exported[2], providers=("cpu",))


@pytest.fixture(scope="module")
def torch_side(exported):
    fixture, _, _ = exported
    encoder, _ = load_encoder(fixture.vjepa2_dir, num_frames=4)
    return encoder, load_open_vljepa(fixture.checkpoint, fixture.llama_dir, fixture.gemma_dir)


def test_parity_of_each_graph_is_logged_within_1e_4(logged):
    for label in ("encoder", "predictor", "text_encoder"):
        line = next(line for line in logged.splitlines() if line.startswith(f"parity {label}:"))
        assert float(line.split("max abs error ")[1].split()[0]) <= 1e-4


def test_manifest_describes_the_open_vljepa_contract(runtime):
    m = runtime.manifest
    assert m.format_version == 3 and m.query_tokenizer.kind == "subword" and m.clip.resize_antialias
    assert m.queries["caption"] == "describe the video ." and "transition" in m.queries
    assert m.clip.frames == 4 and m.clip.crop_size == m.clip.resize_short == 32
    assert m.predictor.inputs[1].name == "query_embeddings" and m.predictor.output_l2_normalized
    assert (m.query_embeddings.rows, m.query_embeddings.width) == (64, 32)
    assert m.text_encoder.pad_token == "<pad>" and m.text_encoder.max_tokens == 16
    assert m.query_tokenizer.max_tokens == 12 and m.query_tokenizer.pad_id == 2


def test_runtime_query_tokens_equal_open_vljepa_tokenizer(runtime, torch_side):
    _, model = torch_side
    for query in QUERIES:
        tokens = runtime.query_tokens(query)
        want = model.query_tokenizer.encode(query)
        np.testing.assert_array_equal(tokens.ids, want.ids)
        np.testing.assert_array_equal(tokens.mask, want.attention_mask)


def test_runtime_prediction_equals_torch_on_frames(runtime, torch_side):
    encoder, model = torch_side
    frames = list(np.random.default_rng(3).integers(0, 256, (4, 40, 56, 3), dtype=np.uint8))
    clip = runtime.prepare_clip(frames)
    got = runtime.predict(np.repeat(runtime.encode(clip), len(QUERIES), axis=0), list(QUERIES))
    batch = [model.query_tokenizer.encode(q) for q in QUERIES]
    ids = torch.tensor([e.ids for e in batch])
    mask = torch.tensor([e.attention_mask for e in batch])
    with torch.no_grad():
        tokens = encoder(torch.from_numpy(clip)[None]).repeat(len(QUERIES), 1, 1)
        want = torch.nn.functional.normalize(model.predictor(tokens, ids, mask), dim=-1).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_runtime_text_embeddings_equal_torch_y_encoder(runtime, torch_side):
    _, model = torch_side
    got = runtime.load_text_encoder().encode(list(CAPTIONS))
    batch = [model.caption_tokenizer.encode(c) for c in CAPTIONS]  # padded to max_caption_len, as in training
    with torch.no_grad():
        ids = torch.tensor([e.ids for e in batch])
        mask = torch.tensor([e.attention_mask for e in batch])
        want = torch.nn.functional.normalize(model.y_encoder(ids, mask), dim=-1).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_missing_folders_are_named(exported, tmp_path, capsys):
    fixture, _, _ = exported
    code = main(
        ["--open-vljepa", str(fixture.checkpoint), "--x-encoder", str(fixture.vjepa2_dir), "--out", str(tmp_path)]
    )
    assert code == 1
    assert "--open-vljepa needs --llama, --y-encoder" in capsys.readouterr().err


def test_a_checkpoint_of_another_layout_is_refused_in_one_line(exported, tmp_path, capsys):
    fixture, _, _ = exported
    torch.save({"model_state_dict": {"predictor.vis_proj.weight": torch.zeros(24, 5)}}, tmp_path / "bad.pt")
    args = ["--open-vljepa", str(tmp_path / "bad.pt"), "--x-encoder", str(fixture.vjepa2_dir), "--llama"]
    args += [str(fixture.llama_dir), "--y-encoder", str(fixture.gemma_dir), "--out", str(tmp_path / "m")]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("export_model: error:") and "\n" not in err


def test_old_manifests_keep_format_1():
    manifest = load_manifest(bundled_manifest_path())
    assert manifest.format_version == 1 and manifest.query_tokenizer.kind == "word"
    assert manifest.to_dict()["format_version"] == 1 and "query_embeddings" not in manifest.to_dict()
