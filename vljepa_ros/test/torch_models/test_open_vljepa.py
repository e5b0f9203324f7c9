"""open-vljepa predictor and Y-encoder: parity with transformers' Llama / Gemma 3 layers, and the strict loader."""

from dataclasses import asdict, replace

import pytest
import torch

from vljepa_ros.torch_models.checkpoint import CheckpointError
from vljepa_ros.torch_models.gemma3_text import Gemma3TextModel, gemma3_config_from_hf
from vljepa_ros.torch_models.open_vljepa import llama_rope, load_open_vljepa, read_hf_config
from vljepa_ros.torch_models.vljepa_predictor import VLJepaPredictorConfig, rope_tables

from support.open_vljepa_fixture import (
    GEMMA_CONFIG,
    LLAMA_CONFIG,
    MAX_CAPTION_LEN,
    MAX_QUERY_LEN,
    N_KEEP_LAYERS,
    VISUAL_DIM,
    build_open_vljepa_fixture,
)

transformers = pytest.importorskip("transformers")

QUERIES = ["describe the video .", "what is happening in the video ? a robot arm picks up a box"]
CAPTIONS = ["a red ball rolls to the left", "a robot arm picks up a small blue box from the table and puts it on shelf"]
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def fixture(tmp_path_factory):
    return build_open_vljepa_fixture(tmp_path_factory.mktemp("open_vljepa"))


@pytest.fixture(scope="module")
def loaded(fixture):
    return load_open_vljepa(fixture.checkpoint, fixture.llama_dir, fixture.gemma_dir)


@pytest.fixture(scope="module")
def state(fixture):
    return torch.load(fixture.checkpoint, weights_only=True)["model_state_dict"]


def tokenize(tokenizer, texts):
    encodings = tokenizer.encode_batch(texts)
    ids = torch.tensor([e.ids for e in encodings], dtype=torch.int64)
    return ids, torch.tensor([e.attention_mask for e in encodings], dtype=torch.int64)


def sub_state(state, prefix):
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def hf_predictor_forward(state, attn_implementation, visual, ids, mask):
    """open-vljepa's Predictor.forward on transformers' LlamaDecoderLayer and LlamaRotaryEmbedding."""
    config = transformers.LlamaConfig(**{**LLAMA_CONFIG, "num_hidden_layers": N_KEEP_LAYERS})
    config._attn_implementation = attn_implementation
    llama = transformers.LlamaModel(config).eval()
    llama.load_state_dict(
        {k: v for k, v in sub_state(state, "predictor.").items() if not k.startswith(("vis_proj", "out_proj"))}
    )
    vis_proj = torch.nn.Linear(VISUAL_DIM, config.hidden_size)
    vis_proj.load_state_dict(sub_state(state, "predictor.vis_proj."))
    out_proj = torch.nn.Linear(config.hidden_size, state["predictor.out_proj.weight"].shape[0])
    out_proj.load_state_dict(sub_state(state, "predictor.out_proj."))
    h = torch.cat([vis_proj(visual), llama.embed_tokens(ids)], dim=1)
    b, length = h.shape[:2]
    keep = torch.cat([torch.ones(b, visual.shape[1]), mask.float()], dim=1)
    additive = ((1.0 - keep) * torch.finfo(h.dtype).min)[:, None, None, :].expand(b, 1, length, length).contiguous()
    position_ids = torch.arange(length)[None].expand(b, -1)
    position_embeddings = llama.rotary_emb(h, position_ids)
    for layer in llama.layers:
        h = layer(h, attention_mask=additive, position_ids=position_ids, position_embeddings=position_embeddings)
        h = h[0] if isinstance(h, tuple) else h
    h = llama.norm(h)
    weights = keep[..., None]
    return out_proj((h * weights).sum(1) / weights.sum(1).clamp(min=1.0))


def hf_gemma(state, attn_implementation):
    config = transformers.Gemma3TextConfig(**GEMMA_CONFIG)
    config._attn_implementation = attn_implementation
    model = transformers.Gemma3TextModel(config).eval()
    model.load_state_dict(sub_state(state, "y_encoder.model."))
    return model


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_predictor_matches_transformers_llama(loaded, state, attn_implementation):
    torch.manual_seed(1)
    visual = torch.randn(2, 5, VISUAL_DIM)
    ids, mask = tokenize(loaded.query_tokenizer, QUERIES)
    assert ids.shape == (2, MAX_QUERY_LEN) and mask.sum(1).tolist() == [5, 12]
    with torch.no_grad():
        ours = loaded.predictor(visual, ids, mask)
        reference = hf_predictor_forward(state, attn_implementation, visual, ids, mask)
    diff = (ours - reference).abs().max().item()
    print(f"predictor vs transformers Llama ({attn_implementation}): max abs diff {diff:.3g}")
    assert diff < TOLERANCE


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_gemma_hidden_states_match_transformers(loaded, state, attn_implementation):
    ids, mask = tokenize(loaded.caption_tokenizer, CAPTIONS)
    assert ids.shape == (2, MAX_CAPTION_LEN) and mask.sum(1).tolist() == [9, 16]
    with torch.no_grad():
        ours = loaded.y_encoder.model(ids, mask)
        reference = hf_gemma(state, attn_implementation)(input_ids=ids, attention_mask=mask).last_hidden_state
    real = mask.bool()
    diff = (ours[real] - reference[real]).abs().max().item()
    print(f"Gemma3 text model vs transformers ({attn_implementation}): max abs diff {diff:.3g}")
    assert diff < TOLERANCE


def test_y_encoder_matches_transformers_pooled_projection(loaded, state):
    ids, mask = tokenize(loaded.caption_tokenizer, CAPTIONS)
    projector = torch.nn.Linear(GEMMA_CONFIG["hidden_size"], state["y_encoder.projector.weight"].shape[0])
    projector.load_state_dict(sub_state(state, "y_encoder.projector."))
    with torch.no_grad():
        hidden = hf_gemma(state, "sdpa")(input_ids=ids, attention_mask=mask).last_hidden_state
        weights = mask[..., None].float()
        reference = projector((hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0))
        ours = loaded.y_encoder(ids, mask)
    diff = (ours - reference).abs().max().item()
    print(f"Y-encoder vs transformers: max abs diff {diff:.3g}")
    assert diff < TOLERANCE


def test_sliding_window_limits_what_a_long_caption_sees(loaded):
    """The fixture's captions are longer than the sliding reach, so the window changes the result."""
    ids, mask = tokenize(loaded.caption_tokenizer, CAPTIONS[1:])
    wide = Gemma3TextModel(replace(loaded.y_encoder.model.cfg, sliding_window=4 * MAX_CAPTION_LEN)).eval()
    wide.load_state_dict(loaded.y_encoder.model.state_dict())
    with torch.no_grad():
        assert not torch.allclose(loaded.y_encoder.model(ids, mask), wide(ids, mask), atol=1e-3)


def test_llama3_rope_matches_transformers():
    config = transformers.LlamaConfig(**LLAMA_CONFIG)
    inv_freq, _ = transformers.modeling_rope_utils.ROPE_INIT_FUNCTIONS["llama3"](config)
    rotary = transformers.models.llama.modeling_llama.LlamaRotaryEmbedding(config)
    theta, scaling = llama_rope(LLAMA_CONFIG)
    cos, sin = rope_tables(40, LLAMA_CONFIG["head_dim"], theta, scaling=scaling)
    ref_cos, ref_sin = rotary(torch.zeros(1, 40, 1), torch.arange(40)[None])
    torch.testing.assert_close(cos, ref_cos[0], rtol=0, atol=0)
    torch.testing.assert_close(sin, ref_sin[0], rtol=0, atol=0)
    assert not torch.equal(inv_freq, 1.0 / theta ** (torch.arange(0, 8, 2).float() / 8))  # scaling does apply


def test_both_hf_config_forms_give_the_same_architecture():
    """config.json as downloaded (rope_theta / rope_scaling) and as transformers 5 writes it (rope_parameters)."""
    new_llama = transformers.LlamaConfig(**LLAMA_CONFIG).to_dict()
    new_gemma = transformers.Gemma3TextConfig(**GEMMA_CONFIG).to_dict()
    assert "rope_parameters" in new_llama and "rope_parameters" in new_gemma
    assert llama_rope(new_llama) == llama_rope(LLAMA_CONFIG)
    assert gemma3_config_from_hf(new_gemma) == gemma3_config_from_hf(GEMMA_CONFIG)


def test_predictor_config_with_rope_scaling_survives_asdict(loaded):
    cfg = loaded.predictor.cfg
    assert replace(VLJepaPredictorConfig(), **asdict(cfg)) == cfg


def test_loader_reads_sizes_and_metadata(loaded, fixture):
    assert loaded.predictor.cfg.depth == N_KEEP_LAYERS and loaded.predictor.cfg.visual_dim == VISUAL_DIM
    assert loaded.epoch == 3 and loaded.train_config["predictor"]["llama_name"] == "meta-llama/Llama-3.2-1B"
    assert read_hf_config(fixture.gemma_dir)["sliding_window"] == GEMMA_CONFIG["sliding_window"]
    assert not loaded.predictor.training and not loaded.y_encoder.training


def rewrite(fixture, tmp_path, edit):
    data = torch.load(fixture.checkpoint, weights_only=True)
    edit(data["model_state_dict"])
    path = tmp_path / "edited.pt"
    torch.save(data, path)
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.pop("y_encoder.projector.bias"), r"1 missing key\(s\) \['y_encoder.projector.bias'\]"),
        (lambda s: s.update({"x_encoder.model.x": torch.zeros(1)}), r"1 unexpected \['x_encoder.model.x'\]"),
        (lambda s: s.pop("predictor.out_proj.weight"), r"missing key\(s\) \['predictor.out_proj.weight'\]"),
        (
            lambda s: s.update({"predictor.layers.0.mlp.up_proj.weight": torch.zeros(3, 3)}),
            r"predictor.layers.0.mlp.up_proj.weight has shape \(3, 3\)",
        ),
    ],
)
def test_loader_refuses_mismatched_keys_in_one_line(fixture, tmp_path, edit, message):
    path = rewrite(fixture, tmp_path, edit)
    with pytest.raises(CheckpointError, match=message) as info:
        load_open_vljepa(path, fixture.llama_dir, fixture.gemma_dir)
    assert "\n" not in str(info.value)


def test_loader_refuses_a_file_that_is_not_open_vljepa(fixture, tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"encoder": {}}, path)
    with pytest.raises(CheckpointError, match="model_state_dict"):
        load_open_vljepa(path, fixture.llama_dir, fixture.gemma_dir)


def test_gemma_query_scalar_matches_transformers(state):
    """query_pre_attn_scalar other than head_dim sets the attention scale."""
    hf_config = {**GEMMA_CONFIG, "query_pre_attn_scalar": 2}
    config = transformers.Gemma3TextConfig(**hf_config)
    config._attn_implementation = "eager"
    reference = transformers.Gemma3TextModel(config).eval()
    reference.load_state_dict(sub_state(state, "y_encoder.model."))
    ours = Gemma3TextModel(gemma3_config_from_hf(hf_config)).eval()
    ours.load_state_dict(sub_state(state, "y_encoder.model."))
    ids = torch.randint(4, GEMMA_CONFIG["vocab_size"], (2, 10), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        diff = (ours(ids, mask) - reference(input_ids=ids, attention_mask=mask).last_hidden_state).abs().max().item()
    print(f"Gemma3 with query_pre_attn_scalar=2 vs transformers: max abs diff {diff:.3g}")
    assert diff < TOLERANCE


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"attn_logit_softcapping": 50.0}, "attn_logit_softcapping"),
        ({"use_bidirectional_attention": False}, "use_bidirectional_attention"),
        ({"hidden_activation": "gelu"}, "hidden_activation"),
    ],
)
def test_gemma_config_refuses_what_it_does_not_build(override, message):
    with pytest.raises(ValueError, match=message):
        gemma3_config_from_hf({**GEMMA_CONFIG, **override})
