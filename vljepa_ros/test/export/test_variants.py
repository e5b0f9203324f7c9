"""Graph variants (export/variants.py, optimise.py, quantise.py): the fused, fp16 and int8 graphs of the small
random model and of the bundled model load through the runtime and match the fp32 graphs on held-out clips.

No timing here: docs/benchmarks.md ("Graph variants") has the measurements.
"""

from collections import Counter

import numpy as np
import onnx
import pytest

from vljepa_ros.export.cli import main as export_main
from vljepa_ros.export.model import export_tiny_random
from vljepa_ros.export.parity import ParityError
from vljepa_ros.export.variants import (
    check_variant_parity,
    compare_pipelines,
    held_out_clips,
    parse_kind,
    write_variant,
)
from vljepa_ros.runtime.bundled_model import bundled_manifest_path
from vljepa_ros.runtime.manifest import ManifestError, load_manifest
from vljepa_ros.runtime.vljepa_runtime import VLJepaRuntime


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return export_tiny_random(tmp_path_factory.mktemp("tiny") / "model")


def ops(path) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


@pytest.mark.parametrize(
    "kind, floor",
    [("optimised", None), ("fp16", 0.999), ("int8", 0.99), ("optimised-int8", 0.99), ("optimised-fp16", 0.999)],
)
def test_variant_of_the_small_model_loads_and_matches_fp32(tiny, tmp_path, kind, floor):
    path = write_variant(tiny, tmp_path / kind, kind, clips=3, log=lambda _: None)
    manifest = load_manifest(path)
    assert manifest.variant.kind == kind and manifest.variant.source_version == load_manifest(tiny).version
    assert manifest.precision == ("fp16" if "fp16" in kind else "int8" if "int8" in kind else "fp32")
    # The recorded parity is the one measured now, on other held-out clips too.
    source = VLJepaRuntime.from_manifest(tiny, providers=("cpu",), warmup_runs=0)
    variant = VLJepaRuntime.from_manifest(path, providers=("cpu",), warmup_runs=0)
    parity = compare_pipelines(source, variant, held_out_clips(source, 3, seed=99), ["describe the scene"])
    if floor is None:
        assert parity["tokens_max_abs_error"] <= 1e-4 and parity["embedding_max_abs_error"] <= 1e-4
    else:
        assert parity["tokens_min_cosine"] >= floor and parity["embedding_min_cosine"] >= floor
        assert parity["embedding_max_abs_error"] > 0  # a lossy variant that changed nothing was not converted
    assert set(manifest.variant.parity) >= {"tokens_min_cosine", "embedding_min_cosine", "tokens_max_abs_error"}


def test_each_step_changes_the_graph_as_it_says(tiny, tmp_path):
    source = load_manifest(tiny)
    fused = load_manifest(write_variant(tiny, tmp_path / "opt", "optimised", clips=1, log=lambda _: None))
    steps = fused.variant.steps
    # The fusions that fire on these graphs: GELU + bias in the encoder, RMSNorm in the predictor; the RoPE
    # attention of both is not recognised (no Attention / MultiHeadAttention / RotaryEmbedding).
    assert steps["encoder"]["fused_ops"] == {"BiasGelu": 2}
    assert steps["predictor"]["fused_ops"] == {"SimplifiedLayerNormalization": 5}
    assert ops(fused.encoder.file)["BiasGelu"] == 2 and ops(fused.encoder.file)["Erf"] == 0
    assert ops(fused.predictor.file)["SimplifiedLayerNormalization"] == 5
    int8 = load_manifest(write_variant(tiny, tmp_path / "int8", "int8", clips=1, log=lambda _: None))
    quantised = int8.variant.steps["encoder"]["quantised_ops"]
    assert quantised["MatMul"] == ops(source.encoder.file)["MatMul"] - quantised["kept"] > 0
    int8_ops = ops(int8.encoder.file)
    assert int8_ops["MatMulInteger"] == quantised["MatMul"] and int8_ops["Softmax"] == 2
    weights = {t.data_type for t in onnx.load(str(int8.encoder.file)).graph.initializer if len(t.dims) == 2}
    assert onnx.TensorProto.INT8 in weights


def test_fp16_variant_keeps_softmax_norm_statistics_and_l2_norm_in_fp32(tiny, tmp_path):
    path = write_variant(tiny, tmp_path / "fp16", "fp16", clips=1, log=lambda _: None)
    model = onnx.shape_inference.infer_shapes(onnx.load(str(load_manifest(path).predictor.file)))
    types = {v.name: v.type.tensor_type.elem_type for v in (*model.graph.value_info, *model.graph.output)}
    kept = [n for n in model.graph.node if n.op_type in ("Softmax", "ReduceMean", "Pow", "ReduceL2")]
    assert kept and all(types[n.output[0]] == onnx.TensorProto.FLOAT for n in kept)
    matmuls = [n for n in model.graph.node if n.op_type == "MatMul"]
    assert any(types.get(n.output[0]) == onnx.TensorProto.FLOAT16 for n in matmuls)


def test_bundled_model_variants_keep_its_captions(tmp_path):
    """On the bundled tiny-world model: each variant's caption and transition embeddings pick the same bank entry
    as fp32 on held-out clips (the benchmark reports accuracy on the labelled evaluation set)."""
    source = VLJepaRuntime.from_manifest(bundled_manifest_path(), providers=("cpu",), warmup_runs=0)
    clips = held_out_clips(source, 6, seed=5)
    bank = source.load_bank("captions")
    for kind in ("optimised", "fp16", "int8"):
        variant = VLJepaRuntime.from_manifest(
            write_variant(bundled_manifest_path(), tmp_path / kind, kind, clips=2, log=lambda _: None),
            providers=("cpu",),
            warmup_runs=0,
        )
        want = source.predict_default(source.encode(clips))
        got = variant.predict_default(variant.encode(clips))
        assert [bank.top_k(e, 1)[0][0] for e in got] == [bank.top_k(e, 1)[0][0] for e in want], kind


def test_parity_bars_refuse_what_misses_them():
    good = {"tokens_max_abs_error": 5e-5, "embedding_max_abs_error": 1e-6}
    check_variant_parity("optimised", good)
    with pytest.raises(ParityError, match="max abs error"):
        check_variant_parity("optimised", {**good, "tokens_max_abs_error": 2e-4})
    cosines = {"tokens_min_cosine": 0.995, "embedding_min_cosine": 0.999}
    check_variant_parity("int8", cosines)
    with pytest.raises(ParityError, match="below 0.999"):
        check_variant_parity("fp16", cosines)
    for bad in ("", "int4", "int8-int8", "fp16-int8"):
        with pytest.raises(ValueError, match="variant kind"):
            parse_kind(bad)


def test_a_variant_is_made_from_fp32_graphs_only(tiny, tmp_path):
    first = write_variant(tiny, tmp_path / "int8", "int8", clips=1, log=lambda _: None)
    with pytest.raises(ValueError, match="already a variant"):
        write_variant(first, tmp_path / "again", "optimised", log=lambda _: None)


def test_manifest_rejects_an_unknown_variant_kind(tiny, tmp_path):
    path = write_variant(tiny, tmp_path / "opt", "optimised", clips=1, log=lambda _: None)
    text = path.read_text().replace("kind: optimised", "kind: turbo")
    path.write_text(text)
    with pytest.raises(ManifestError, match="variant.kind"):
        load_manifest(path)


def test_export_model_writes_checked_variants_beside_the_export(tmp_path, capsys):
    out = tmp_path / "model"
    assert export_main(["--out", str(out), "--tiny-random", "--variant", "optimised", "--variant", "int8"]) == 0
    printed = capsys.readouterr().out
    assert "parity variant optimised vs fp32" in printed and "parity variant int8 vs fp32" in printed
    for kind in ("optimised", "int8"):
        manifest = load_manifest(out / "variants" / kind / "manifest.yaml")
        assert manifest.variant.kind == kind


def test_embed_keeps_tokens_bound_and_matches_encode_then_predict(tiny):
    """IO binding with the encoder's tokens handed to the predictor as an OrtValue (on a GPU they stay in its
    memory; here the same code path runs on the CPU)."""
    plain = VLJepaRuntime.from_manifest(tiny, providers=("cpu",), warmup_runs=0)
    bound = VLJepaRuntime.from_manifest(tiny, providers=("cpu",), warmup_runs=0, io_binding=True)
    assert bound.encoder.io_binding and not plain.encoder.io_binding
    clips = held_out_clips(plain, 2, seed=3)
    tokens = bound.encoder.run_on_device({bound.encoder.input_names[0]: clips})[0]
    assert tokens.device_name().lower() == "cpu" and tokens.shape() == [2, *plain.encode(clips).shape[1:]]
    want = plain.predict(plain.encode(clips), "describe the scene")
    np.testing.assert_allclose(bound.embed(clips, "describe the scene"), want, atol=1e-6)
    np.testing.assert_allclose(plain.embed(clips, "describe the scene"), want, atol=1e-6)
