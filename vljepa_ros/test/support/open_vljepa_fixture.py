"""A tiny random open-vljepa `best.pt` with the Llama, EmbeddingGemma and V-JEPA 2 folders it is used with.

The checkpoint has open-vljepa's layout (epoch, model_state_dict without x_encoder.model.*, loss, config) and
key names; its weights come from transformers' LlamaModel / Gemma3TextModel at tiny sizes (all parameters,
norms included, randomised so that parity tests see every weight). The folders hold a config.json in the form
the real downloads use (flat `rope_theta`/`rope_scaling` keys) and a word-level tokenizer.json with the special
tokens the real tokenizers have. Building it needs transformers (tests only).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors

from vljepa_ros.torch_models.open_vljepa import CAPTION_PAD_TOKEN, QUERY_PAD_TOKEN

VOCABULARY_TEXT = (
    "describe the video . what is happening in ? a red ball rolls to left right robot arm picks up small blue box "
    "from table and puts it on shelf person walks dog cat sits"
)
WORDS = tuple(VOCABULARY_TEXT.split())
VISUAL_DIM = 24
EMBEDDING_DIM = 20
N_KEEP_LAYERS = 2
MAX_QUERY_LEN = 12
MAX_CAPTION_LEN = 16

LLAMA_CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 0,
    "eos_token_id": 1,
    "head_dim": 8,
    "hidden_act": "silu",
    "hidden_size": 32,
    "intermediate_size": 48,
    "max_position_embeddings": 2048,
    "mlp_bias": False,
    "model_type": "llama",
    "num_attention_heads": 4,
    "num_hidden_layers": 3,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-05,
    # Llama-3.2-1B's scaling with a short original context, so all three frequency bands occur at head_dim 8.
    "rope_scaling": {
        "factor": 32.0,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 64,
        "rope_type": "llama3",
    },
    "rope_theta": 500000.0,
    "tie_word_embeddings": True,
    "vocab_size": 64,
}

GEMMA_CONFIG = {
    "architectures": ["Gemma3TextModel"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "attn_logit_softcapping": None,
    "bos_token_id": 2,
    "eos_token_id": 1,
    "final_logit_softcapping": None,
    "head_dim": 8,
    "hidden_activation": "gelu_pytorch_tanh",
    "hidden_size": 16,
    "intermediate_size": 40,
    "layer_types": ["sliding_attention", "sliding_attention", "full_attention"],
    "max_position_embeddings": 2048,
    "model_type": "gemma3_text",
    "num_attention_heads": 2,
    "num_hidden_layers": 3,
    "num_key_value_heads": 1,
    "pad_token_id": 0,
    "query_pre_attn_scalar": 8,
    "rms_norm_eps": 1e-06,
    "rope_local_base_freq": 10000.0,
    "rope_scaling": None,
    "rope_theta": 1000000.0,
    # Short enough that captions of MAX_CAPTION_LEN tokens are cut by the sliding layers' reach (3).
    "sliding_window": 6,
    "use_bidirectional_attention": True,
    "vocab_size": 48,
}

VJEPA2_CONFIG = {
    "crop_size": 32,
    "frames_per_clip": 4,
    "hidden_size": VISUAL_DIM,
    "num_attention_heads": 2,
    "num_hidden_layers": 2,
    "mlp_ratio": 2.0,
    "pred_hidden_size": 16,
    "pred_num_attention_heads": 2,
    "pred_num_hidden_layers": 1,
    "pred_num_mask_tokens": 2,
}


@dataclass(frozen=True)
class OpenVLJepaFixture:
    checkpoint: Path
    llama_dir: Path
    gemma_dir: Path
    vjepa2_dir: Path | None


def word_level_tokenizer(specials: list[str], template: str) -> Tokenizer:
    """Specials first (ids 0..), then WORDS; split on whitespace and punctuation; `template` adds specials."""
    vocab = {token: i for i, token in enumerate([*specials, *WORDS])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    tokenizer.post_processor = processors.TemplateProcessing(
        single=template, special_tokens=[(t, vocab[t]) for t in specials if t in template]
    )
    tokenizer.add_special_tokens(specials)
    return tokenizer


def write_stand_in_tokenizers(folder: Path) -> dict[str, Path]:
    """Word-level stand-ins for the Llama and Gemma tokenizer.json files (their ids fit both vocabularies)."""
    paths = {"llama": folder / "llama.json", "gemma": folder / "gemma.json"}
    word_level_tokenizer(
        ["<|begin_of_text|>", "<|end_of_text|>", QUERY_PAD_TOKEN, "<unk>"], "<|begin_of_text|> $A"
    ).save(str(paths["llama"]))
    word_level_tokenizer([CAPTION_PAD_TOKEN, "<eos>", "<bos>", "<unk>"], "<bos> $A <eos>").save(str(paths["gemma"]))
    return paths


def write_hf_folder(folder: Path, config: dict, tokenizer: Tokenizer) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    tokenizer.save(str(folder / "tokenizer.json"))
    return folder


def randomise(module: torch.nn.Module, generator: torch.Generator) -> None:
    """Every parameter drawn anew: norm weights away from their 1 / 0 init, matrices at a modest scale."""
    with torch.no_grad():
        for name, param in module.named_parameters():
            scale = 0.3 if name.endswith("norm.weight") else 0.2
            param.copy_(torch.randn(param.shape, generator=generator) * scale)


def open_vljepa_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """model_state_dict as open-vljepa saves it (x_encoder.model.* left out), random tiny weights."""
    from transformers import Gemma3TextConfig, Gemma3TextModel, LlamaConfig, LlamaModel

    generator = torch.Generator().manual_seed(seed)
    llama = LlamaModel(LlamaConfig(**LLAMA_CONFIG))
    gemma = Gemma3TextModel(Gemma3TextConfig(**GEMMA_CONFIG))
    vis_proj = torch.nn.Linear(VISUAL_DIM, LLAMA_CONFIG["hidden_size"])
    out_proj = torch.nn.Linear(LLAMA_CONFIG["hidden_size"], EMBEDDING_DIM)
    projector = torch.nn.Linear(GEMMA_CONFIG["hidden_size"], EMBEDDING_DIM)
    for module in (llama, gemma, vis_proj, out_proj, projector):
        randomise(module, generator)
    with torch.no_grad():
        for name, param in llama.named_parameters():
            if name.endswith("layernorm.weight") or name == "norm.weight":
                param.add_(1.0)  # Llama norms scale by weight (Gemma's by 1 + weight): keep them near 1
    state = {f"predictor.embed_tokens.{k}": v for k, v in llama.embed_tokens.state_dict().items()}
    kept = llama.layers[-N_KEEP_LAYERS:]
    for i, layer in enumerate(kept):
        state.update({f"predictor.layers.{i}.{k}": v for k, v in layer.state_dict().items()})
    state.update({f"predictor.norm.{k}": v for k, v in llama.norm.state_dict().items()})
    state.update({f"predictor.vis_proj.{k}": v for k, v in vis_proj.state_dict().items()})
    state.update({f"predictor.out_proj.{k}": v for k, v in out_proj.state_dict().items()})
    state.update({f"y_encoder.model.{k}": v for k, v in gemma.state_dict().items()})
    state.update({f"y_encoder.projector.{k}": v for k, v in projector.state_dict().items()})
    return {k: v.detach().clone() for k, v in state.items()}


def open_vljepa_train_config(max_query_len: int = MAX_QUERY_LEN) -> dict:
    """The `config` entry: open-vljepa's YAML sections, sized for the tiny fixture."""
    return {
        "encoder": {"type": "vjepa2-vitl", "model_name": "facebook/vjepa2-vitl-fpc64-256", "frozen": True},
        "y_encoder": {"type": "embeddinggemma", "model_name": "google/embeddinggemma-300m", "proj_dim": EMBEDDING_DIM},
        "predictor": {
            "type": "llama",
            "llama_name": "meta-llama/Llama-3.2-1B",
            "n_keep_layers": N_KEEP_LAYERS,
            "proj_dim": EMBEDDING_DIM,
            "max_query_len": 512,
            "disable_causal_mask": True,
        },
        "data": {"num_frames": 4, "image_size": 32, "max_query_len": max_query_len, "max_caption_len": MAX_CAPTION_LEN},
    }


def write_vjepa2_folder(folder: Path, seed: int = 0) -> Path:
    """A tiny Hugging Face VJEPA2Model folder (config.json + model.safetensors)."""
    from transformers import VJEPA2Config, VJEPA2Model

    torch.manual_seed(seed)
    VJEPA2Model(VJEPA2Config(**VJEPA2_CONFIG)).save_pretrained(str(folder))
    return folder


def build_open_vljepa_fixture(
    root: str | Path, seed: int = 0, with_vjepa2: bool = False, max_query_len: int = MAX_QUERY_LEN
) -> OpenVLJepaFixture:
    """Write best.pt, llama/, gemma/ (and vjepa2/ if asked) under `root`; `max_query_len`: the trained query
    length its config records (the predictor's query positions)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    llama_specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|finetune_right_pad_id|>", "<unk>"]
    llama_tokenizer = word_level_tokenizer(llama_specials, "<|begin_of_text|> $A")
    llama_dir = write_hf_folder(root / "llama", LLAMA_CONFIG, llama_tokenizer)
    gemma_dir = write_hf_folder(
        root / "gemma", GEMMA_CONFIG, word_level_tokenizer(["<pad>", "<eos>", "<bos>", "<unk>"], "<bos> $A <eos>")
    )
    checkpoint = root / "best.pt"
    state = open_vljepa_state_dict(seed)
    torch.save(
        {"epoch": 3, "model_state_dict": state, "loss": 1.25, "config": open_vljepa_train_config(max_query_len)},
        checkpoint,
    )
    vjepa2_dir = write_vjepa2_folder(root / "vjepa2", seed) if with_vjepa2 else None
    return OpenVLJepaFixture(checkpoint=checkpoint, llama_dir=llama_dir, gemma_dir=gemma_dir, vjepa2_dir=vjepa2_dir)
