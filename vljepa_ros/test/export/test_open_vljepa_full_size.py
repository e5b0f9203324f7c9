"""open-vljepa at full size with random weights: export, then one clip through the runtime in a fresh process.

ViT-L 8x256 x-encoder, the predictor as open-vljepa keeps it (8 Llama-3.2-1B layers of 2048, vocab 128256,
Llama-3 RoPE scaling, 64-token queries), EmbeddingGemma-300m's shape + a 1536-d projector. Checks the graphs
load in ONNX Runtime (the predictor's weights in external data, its embedding table in query_embeddings.npy)
and prints export time, file sizes, the runtime's load time, resident memory and per-clip CPU latency
(docs/benchmarks.md, "open-vljepa at full size"). Needs ~12 GB of RAM and several minutes on two cores.
"""

import gc
import json
import subprocess
import sys
import time

import pytest
import torch

from vljepa_ros.export.open_vljepa import export_open_vljepa
from vljepa_ros.torch_models.gemma3_text import GemmaYEncoder, gemma3_config_from_hf
from vljepa_ros.torch_models.open_vljepa import (
    CAPTION_PAD_TOKEN,
    QUERY_PAD_TOKEN,
    OpenVLJepa,
    fixed_length_tokenizer,
)
from vljepa_ros.torch_models.vjepa2_encoder import VJepa2Encoder, encoder_config
from vljepa_ros.torch_models.vljepa_predictor import Llama3RopeScaling, VLJepaPredictor, VLJepaPredictorConfig

from support.open_vljepa_fixture import word_level_tokenizer

# google/embeddinggemma-300m's config.json (architecture fields).
EMBEDDINGGEMMA_300M = {
    "hidden_size": 768,
    "intermediate_size": 1152,
    "num_hidden_layers": 24,
    "num_attention_heads": 3,
    "num_key_value_heads": 1,
    "head_dim": 256,
    "vocab_size": 262144,
    "sliding_window": 512,
    "layer_types": (["sliding_attention"] * 5 + ["full_attention"]) * 4,
    "query_pre_attn_scalar": 256,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1_000_000.0,
    "rope_local_base_freq": 10_000.0,
    "use_bidirectional_attention": True,
}
LLAMA_3_2_ROPE = Llama3RopeScaling(
    factor=32.0, low_freq_factor=1.0, high_freq_factor=4.0, original_max_position_embeddings=8192
)
MAX_QUERY_LEN = MAX_CAPTION_LEN = 64  # open-vljepa's configs/base.yaml data section

RUNTIME_PROBE = r"""
import json, sys, time
import numpy as np

def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith(("VmRSS", "VmHWM")):
            yield line.split()[0].rstrip(":"), int(line.split()[1]) / 1024

from vljepa_ros.runtime.vljepa_runtime import VLJepaRuntime

start = time.perf_counter()
runtime = VLJepaRuntime.from_manifest(sys.argv[1], providers=("cpu",), warmup_runs=0)
load_s = time.perf_counter() - start
after_load = dict(rss_mib())
frames = list(np.random.default_rng(0).integers(0, 256, (runtime.manifest.clip.frames, 480, 640, 3), dtype=np.uint8))
timings = []
for _ in range(2):
    start = time.perf_counter()
    clip = runtime.prepare_clip(frames)
    t1 = time.perf_counter()
    tokens = runtime.encode(clip)
    t2 = time.perf_counter()
    embedding = runtime.predict(tokens, runtime.manifest.queries["caption"])
    t3 = time.perf_counter()
    timings.append({"preprocess_s": t1 - start, "encoder_s": t2 - t1, "predictor_s": t3 - t2})
after_clip = dict(rss_mib())
start = time.perf_counter()
text_encoder = runtime.load_text_encoder()
text_load_s = time.perf_counter() - start
start = time.perf_counter()
texts = text_encoder.encode(["a person walks a dog", "a robot arm picks up a small blue box from the table"])
text_s = time.perf_counter() - start
print(json.dumps({
    "load_s": load_s, "rss_after_load_mib": after_load["VmRSS"], "rss_after_clip_mib": after_clip["VmRSS"],
    "peak_rss_mib": after_clip["VmHWM"], "clip": timings[-1], "first_clip": timings[0],
    "text_encoder_load_s": text_load_s, "two_captions_s": text_s, "rss_with_text_encoder_mib": dict(rss_mib())["VmRSS"],
    "embedding_shape": list(embedding.shape), "text_shape": list(texts.shape),
}))
"""


def full_size_model(tokenizers) -> tuple[VJepa2Encoder, OpenVLJepa]:
    torch.manual_seed(0)
    encoder = VJepa2Encoder(encoder_config("vit_l", num_frames=8, img_size=256)).eval()
    predictor = VLJepaPredictor(
        VLJepaPredictorConfig(visual_dim=1024, max_query_tokens=MAX_QUERY_LEN, rope_scaling=LLAMA_3_2_ROPE)
    ).eval()
    y_encoder = GemmaYEncoder(gemma3_config_from_hf(EMBEDDINGGEMMA_300M), 1536).eval()
    model = OpenVLJepa(
        predictor=predictor,
        y_encoder=y_encoder,
        query_tokenizer=fixed_length_tokenizer(tokenizers["llama"], MAX_QUERY_LEN, QUERY_PAD_TOKEN),
        caption_tokenizer=fixed_length_tokenizer(tokenizers["gemma"], MAX_CAPTION_LEN, CAPTION_PAD_TOKEN),
        epoch=None,
        train_config={},
    )
    return encoder, model


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_full_size_export_loads_and_runs_one_clip(tmp_path):
    # Word-level stand-ins for the Llama / Gemma tokenizer.json files (their ids fit both vocabularies).
    tokenizers = {"llama": tmp_path / "llama.json", "gemma": tmp_path / "gemma.json"}
    word_level_tokenizer(
        ["<|begin_of_text|>", "<|end_of_text|>", QUERY_PAD_TOKEN, "<unk>"], "<|begin_of_text|> $A"
    ).save(str(tokenizers["llama"]))
    word_level_tokenizer([CAPTION_PAD_TOKEN, "<eos>", "<bos>", "<unk>"], "<bos> $A <eos>").save(
        str(tokenizers["gemma"])
    )
    encoder, model = full_size_model(tokenizers)
    out = tmp_path / "model"
    start = time.perf_counter()
    manifest = export_open_vljepa(
        encoder,
        model,
        tokenizers["llama"],
        tokenizers["gemma"],
        out,
        bank_texts={"captions": ("a red ball rolls to the left", "a person walks a dog")},
        parity_batch=1,
    )
    export_s = time.perf_counter() - start
    del encoder, model
    gc.collect()
    sizes = {p.name: round(p.stat().st_size / 2**20, 1) for p in sorted(out.iterdir()) if p.is_file()}
    assert (out / "predictor.onnx.data").is_file(), "the predictor's weights exceed protobuf's 2 GB: external data"
    assert sizes["query_embeddings.npy"] == pytest.approx(128256 * 2048 * 4 / 2**20, abs=1)
    probe = subprocess.run(
        [sys.executable, "-c", RUNTIME_PROBE, str(manifest)], capture_output=True, text=True, timeout=1800
    )
    assert probe.returncode == 0, probe.stderr[-2000:]
    result = json.loads(probe.stdout.strip().splitlines()[-1])
    assert result["embedding_shape"] == [1, 1536] and result["text_shape"] == [2, 1536]
    print(json.dumps({"export_s": round(export_s, 1), "files_mib": sizes, **result}, indent=1))
