"""Manifest: load, structural validation, and mismatch errors against the real ONNX files."""

import shutil

import pytest
import yaml

from vljepa_ros.runtime.manifest import ManifestError, load_manifest
from vljepa_ros.runtime.vljepa_runtime import VLJepaRuntime

from support.tiny_models import tiny_random_model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return tiny_random_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def model_dir(exported, tmp_path):
    """A private copy of the exported model that a test may corrupt."""
    target = tmp_path / "model"
    shutil.copytree(exported.parent, target)
    return target


def _edit(model_dir, change):
    path = model_dir / "manifest.yaml"
    raw = yaml.safe_load(path.read_text())
    change(raw)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_exported_manifest_loads_and_round_trips(exported):
    m = load_manifest(exported)
    assert m.clip.frames == 8 and m.clip.crop_size == 64 and m.clip.resize_short == 73
    assert m.encoder.inputs[0].shape == ("batch", 3, 8, 64, 64)
    assert m.encoder.outputs[0].shape == ("batch", m.clip.num_tokens, 96)
    assert m.predictor.outputs[0].shape == ("batch", m.embedding_dim)
    assert set(m.banks) == {"captions", "actions"}
    assert m.to_dict() == yaml.safe_load(exported.read_text())


def test_wrong_input_name_is_named_at_start_up(model_dir):
    path = _edit(model_dir, lambda r: r["encoder"]["inputs"][0].update(name="video"))
    with pytest.raises(ManifestError, match=r"encoder\.inputs\[0\]\.name: manifest says 'video', the graph has 'clip'"):
        VLJepaRuntime.from_manifest(path, providers=("cpu",))


def test_wrong_output_shape_is_named_at_start_up(model_dir):
    path = _edit(model_dir, lambda r: r["predictor"]["outputs"][0].update(shape=["batch", 512]))
    r = yaml.safe_load(path.read_text())
    r["embedding_dim"] = 512
    path.write_text(yaml.safe_dump(r, sort_keys=False))
    with pytest.raises(ManifestError, match=r"predictor\.outputs\[0\]\.shape: manifest says \['batch', 512\]"):
        VLJepaRuntime.from_manifest(path, providers=("cpu",))


def test_wrong_dtype_is_named_at_start_up(model_dir):
    path = _edit(model_dir, lambda r: r["predictor"]["inputs"][1].update(dtype="int32"))
    with pytest.raises(ManifestError, match=r"predictor\.inputs\[1\]\.dtype: manifest says int32"):
        VLJepaRuntime.from_manifest(path, providers=("cpu",))


def test_fixed_dim_where_graph_is_dynamic_is_a_mismatch(model_dir):
    path = _edit(model_dir, lambda r: r["encoder"]["inputs"][0].update(shape=[1, 3, 8, 64, 64]))
    with pytest.raises(ManifestError, match=r"encoder\.inputs\[0\]\.shape"):
        VLJepaRuntime.from_manifest(path, providers=("cpu",))


def test_wrong_sha256_is_named(model_dir):
    path = _edit(model_dir, lambda r: r["predictor"].update(sha256="0" * 64))
    with pytest.raises(
        ManifestError, match=r"predictor\.sha256: predictor\.onnx has sha256 [0-9a-f]{16}\.\.\., manifest says 0{16}"
    ):
        load_manifest(path)


def test_modified_onnx_file_fails_the_hash(model_dir):
    with open(model_dir / "encoder.onnx", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ManifestError, match=r"encoder\.sha256"):
        load_manifest(model_dir / "manifest.yaml")


@pytest.mark.parametrize(
    "name,key",
    [
        ("encoder.onnx", "encoder.file"),
        ("query_vocab.txt", "query_tokenizer.vocab_file"),
        ("actions.npz", "banks.actions"),
    ],
)
def test_missing_file_is_named(model_dir, name, key):
    (model_dir / name).unlink()
    with pytest.raises(ManifestError, match=rf"{key}: .*{name} does not exist"):
        load_manifest(model_dir / "manifest.yaml")


def test_missing_manifest_file(tmp_path):
    with pytest.raises(ManifestError, match="manifest file not found"):
        load_manifest(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    "change,field",
    [
        (lambda r: r["clip"].update(crop_size=60), "clip.crop_size"),
        (lambda r: r["clip"].update(frames=7), "clip.frames"),
        (lambda r: r["clip"].update(std=[0.2, 0.0, 0.2]), "clip.std"),
        (lambda r: r["clip"].pop("patch"), "clip.patch: missing"),
        (lambda r: r["encoder"]["inputs"][0].update(dtype="float64"), r"encoder.inputs\[0\].dtype"),
        (lambda r: r.update(format_version=9), "format_version"),
        (lambda r: r["query_tokenizer"].update(max_tokens=0), "query_tokenizer.max_tokens"),
        (lambda r: r["queries"].update(caption=""), "queries.caption"),
        (lambda r: r.update(embedding_dim=128), r"predictor.outputs\[0\].shape"),
        (
            lambda r: r["encoder"].update(normalise_in_graph=True),
            r"encoder.inputs\[0\]: normalise_in_graph expects uint8",
        ),
        (
            lambda r: r["encoder"].update(normalise_in_graph=True, fused_preprocessing=True),
            "encoder.normalise_in_graph: cannot be combined with fused_preprocessing",
        ),
        (lambda r: r["predictor"].update(output_l2_normalized="yes"), "predictor.output_l2_normalized"),
        (lambda r: r["predictor"]["outputs"].pop(), "predictor.outputs: output_l2_normalized needs a second output"),
    ],
)
def test_structural_errors_name_the_field(model_dir, change, field):
    path = _edit(model_dir, change)
    with pytest.raises(ManifestError, match=field):
        load_manifest(path, check_files=False)
