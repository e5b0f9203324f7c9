"""Session factory: provider fallback with a reason, warm-up, IO binding path, on the CPU onnxruntime build."""

import logging

import numpy as np
import onnxruntime as ort
import pytest

from vljepa_ros.runtime.onnx_session import (
    OnnxModel,
    SessionConfig,
    create_session,
    parse_provider_list,
    provider_options,
)

from support.tiny_models import tiny_random_model

CPU_ONLY = "CUDAExecutionProvider" not in ort.get_available_providers()


@pytest.fixture(scope="module")
def encoder_path(tmp_path_factory):
    return tiny_random_model(tmp_path_factory.mktemp("tiny")).parent / "encoder.onnx"


@pytest.mark.skipif(not CPU_ONLY, reason="needs the CPU-only onnxruntime build")
def test_fallback_to_cpu_says_why_in_one_line(encoder_path, caplog):
    caplog.set_level(logging.INFO, logger="vljepa_ros.runtime.onnx_session")
    session, choice = create_session(encoder_path, SessionConfig(providers=("tensorrt", "cuda", "cpu")))
    assert session.get_providers()[0] == "CPUExecutionProvider" == choice.provider
    assert choice.skipped == {
        "tensorrt": "not available in this onnxruntime build",
        "cuda": "not available in this onnxruntime build",
    }
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "encoder.onnx: running on CPUExecutionProvider (tensorrt: not available in this onnxruntime "
        "build; cuda: not available in this onnxruntime build)"
    ]


def test_cpu_first_has_no_fallback_note(encoder_path, caplog):
    caplog.set_level(logging.INFO, logger="vljepa_ros.runtime.onnx_session")
    _, choice = create_session(encoder_path, SessionConfig(providers=("cpu",)))
    assert choice.skipped == {}
    assert [r.getMessage() for r in caplog.records] == ["encoder.onnx: running on CPUExecutionProvider"]


@pytest.mark.skipif(not CPU_ONLY, reason="needs the CPU-only onnxruntime build")
def test_no_usable_provider_raises_with_reasons(encoder_path):
    with pytest.raises(RuntimeError, match="no requested provider could run .*cuda: not available"):
        create_session(encoder_path, SessionConfig(providers=("cuda",)))


def test_broken_model_file_fails_to_create(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a graph")
    with pytest.raises(RuntimeError, match="cpu: failed to create"):
        create_session(bad, SessionConfig(providers=("cpu",)))


def test_io_binding_matches_plain_run(encoder_path):
    plain = OnnxModel.load(encoder_path, SessionConfig(providers=("cpu",), io_binding=False))
    bound = OnnxModel.load(encoder_path, SessionConfig(providers=("cpu",), io_binding=True))
    feeds = {"clip": np.random.default_rng(0).standard_normal((2, 3, 8, 64, 64)).astype(np.float32)}
    np.testing.assert_array_equal(plain.run(feeds)[0], bound.run(feeds)[0])
    assert plain.run(feeds)[0].shape == (2, 256, 96)


def test_pool_threads_do_not_spin_unless_asked(encoder_path):
    def spinning(config):
        session, _ = create_session(encoder_path, config)
        return session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")

    assert spinning(SessionConfig(providers=("cpu",))) == "0"
    assert spinning(SessionConfig(providers=("cpu",), spin_wait=True)) == "1"


def test_dummy_inputs_follow_graph_signature(encoder_path):
    model = OnnxModel.load(encoder_path, SessionConfig(providers=("cpu",), warmup_runs=0))
    feeds = model.dummy_inputs(batch=3)
    assert feeds["clip"].shape == (3, 3, 8, 64, 64) and feeds["clip"].dtype == np.float32


def test_tensorrt_options_carry_cache_dir_and_fp16(tmp_path):
    opts = provider_options("tensorrt", SessionConfig(trt_cache_dir=tmp_path / "trt", fp16=True))
    assert opts["trt_fp16_enable"] == "True"
    assert opts["trt_engine_cache_enable"] == "True" and opts["trt_engine_cache_path"] == str(tmp_path / "trt")
    assert (tmp_path / "trt").is_dir()


@pytest.mark.parametrize("bad", ["", "gpu", "cuda,npu"])
def test_unknown_provider_names_are_rejected(bad):
    with pytest.raises(ValueError, match="providers"):
        parse_provider_list(bad)


def test_provider_list_parsing():
    assert parse_provider_list(" TensorRT, cuda ,cpu") == ("tensorrt", "cuda", "cpu")
