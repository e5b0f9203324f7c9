"""The bundled default model (models/tinyworld) really works: ONNX Runtime on freshly generated clips.

A broken export, a preprocessing change that the model was not trained with, or banks that do not match the
world's vocabulary push accuracy to chance and fail here. No torch is needed.
"""

from pathlib import Path

import numpy as np
import pytest

from vljepa_ros.runtime.manifest import load_manifest
from vljepa_ros.runtime.text_bank import TextBank
from vljepa_ros.runtime.vljepa_runtime import VLJepaRuntime
from vljepa_ros.tiny_world.vocabulary import action_bank, caption_bank
from vljepa_ros.training.evaluate import DEFAULT_MANIFEST, EvalSet, generate_eval_set, model_scores

SEED = 4242  # not a training seed (0) nor the validation seed (1000003)
CLIPS = 48
# Floors far above chance (1/246 captions, 1/298 actions, 1/4) and the BGR control (0.21, 0.25, 0.67),
# below what the committed model reaches on these 48+48 clips (0.85, 0.73, 0.98).
FLOORS = {"caption_top1": 0.7, "action_top1": 0.5, "action_4way": 0.85}


@pytest.fixture(scope="module")
def runtime():
    return VLJepaRuntime.from_manifest(DEFAULT_MANIFEST, providers=("cpu",))


@pytest.fixture(scope="module")
def held_out(runtime):
    return generate_eval_set(SEED, CLIPS, CLIPS, runtime.manifest.clip)


def test_bundled_model_is_small_and_complete():
    manifest = load_manifest(DEFAULT_MANIFEST)
    folder = Path(DEFAULT_MANIFEST).parent
    total = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
    assert total < 8 * 2**20, f"bundled model is {total / 2**20:.1f} MiB; keep it a few MB"
    assert manifest.embedding_dim == 384
    assert set(manifest.queries) >= {"caption", "transition"}
    assert list(TextBank.load(manifest.banks["captions"]).texts) == caption_bank()
    assert list(TextBank.load(manifest.banks["actions"]).texts) == action_bank()


def test_bundled_model_beats_the_accuracy_floor_on_held_out_clips(runtime, held_out):
    scores = model_scores(runtime, held_out)
    for key, floor in FLOORS.items():
        assert scores[key] >= floor, f"{key} {scores[key]:.3f} below floor {floor} ({scores})"


def test_wrong_colour_order_breaks_it(runtime, held_out):
    """Negative control: the same clips fed as BGR score far lower, so the floor test can fail."""
    swapped = EvalSet(
        [f[..., ::-1].copy() for f in held_out.scene_frames],
        held_out.captions,
        [f[..., ::-1].copy() for f in held_out.before_frames],
        [f[..., ::-1].copy() for f in held_out.after_frames],
        held_out.actions,
        held_out.candidates,
    )
    scores = model_scores(runtime, swapped)
    assert scores["caption_top1"] < FLOORS["caption_top1"]


def test_predictions_are_deterministic_and_batch_independent(runtime, held_out):
    clips = np.stack([runtime.prepare_clip(f) for f in held_out.scene_frames[:4]])
    batched = runtime.predict_default(runtime.encode(clips), "caption")
    single = np.concatenate([runtime.predict_default(runtime.encode(c), "caption") for c in clips])
    np.testing.assert_allclose(batched, single, atol=1e-4)
