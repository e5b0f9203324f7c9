"""The margin-certified drift trigger: captions equal to decoding every embedding, with fewer decoder calls."""

import numpy as np
import pytest

from vljepa_ros.decoding.change_detection import ChangeDetectorConfig, DecodeReason, RejectedEmbedding
from vljepa_ros.decoding.config import detector_config, detector_values_from_parameters
from vljepa_ros.decoding.decoders import Decoded, RetrievalDecoder, certified_radius
from vljepa_ros.decoding.drift_trigger import DriftTrigger, decode_radius
from vljepa_ros.decoding.pipeline import DecodingPipeline
from vljepa_ros.perception.config import ConfigError

NS = 1_000_000_000
DIM = 16


def _unit(v):
    return v / np.linalg.norm(v)


def _bank(rng, size=20):
    texts = [f"caption {i}" for i in range(size)]
    return RetrievalDecoder.from_texts(texts, rng.standard_normal((size, DIM)).astype(np.float32), num_alternatives=1)


def _walk(rng, steps, step=0.004, jump_every=37):
    """A random walk on the sphere with an occasional jump (a scene change)."""
    e = _unit(rng.standard_normal(DIM))
    out = []
    for k in range(steps):
        jump = k % jump_every == jump_every - 1
        e = _unit(rng.standard_normal(DIM)) if jump else _unit(e + step * rng.standard_normal(DIM))
        out.append(e.astype(np.float32))
    return out


class CountingDecoder:
    """A decoder that counts its calls (the pipeline's own count is checked against it)."""

    def __init__(self, inner, certify=True):
        self.inner, self.calls, self.certify = inner, 0, certify

    @property
    def embedding_dim(self):
        return self.inner.embedding_dim

    def decode(self, embedding):
        self.calls += 1
        d = self.inner.decode(embedding)
        return d if self.certify else Decoded(d.text, d.score, d.alternatives)


def _caption_in_force(pipeline, vectors):
    shown, out = None, []
    for k, v in enumerate(vectors):
        event = pipeline.feed("cam", "cam", k * NS // 4, v)
        if event is not None:
            shown = event.text
        out.append(shown)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_caption_in_force_equals_decoding_every_embedding_with_fewer_calls(seed):
    rng = np.random.default_rng(seed)
    decoder = CountingDecoder(_bank(rng))
    vectors = _walk(rng, 600)
    pipeline = DecodingPipeline(decoder, ChangeDetectorConfig(trigger="margin", min_interval_s=0.0))
    shown = _caption_in_force(pipeline, vectors)
    every = [decoder.inner.decode(v).text for v in vectors]
    assert shown == every
    calls = pipeline.statistics("cam").decodes
    assert calls == decoder.calls
    assert 0 < calls < len(vectors) / 2  # the walk stays inside certified balls most of the time
    assert pipeline.statistics("cam").confirmed_silently > 0  # drift decodes that kept the caption: unpublished


def test_half_the_top1_margin_is_always_certified():
    rng = np.random.default_rng(3)
    decoder = _bank(rng)
    for v in _walk(rng, 200):
        d = decoder.decode(v)
        assert d.certified_radius >= d.margin / 2 - 1e-5
        assert d.margin == pytest.approx(d.score - d.alternatives[0][1])


def test_no_embedding_inside_the_certified_radius_changes_the_caption():
    rng = np.random.default_rng(4)
    decoder = _bank(rng)
    for v in _walk(rng, 100, jump_every=1):
        d = decoder.decode(v)
        v = _unit(v.astype(np.float64))
        angle = 2 * np.arcsin(min(0.999 * d.certified_radius / 2, 1.0))  # chord 0.999 r on the unit sphere
        for _ in range(20):
            tangent = rng.standard_normal(DIM)
            tangent = _unit(tangent - np.dot(tangent, v) * v)
            moved = np.cos(angle) * v + np.sin(angle) * tangent
            assert np.linalg.norm(moved - v) < d.certified_radius
            assert decoder.decode(moved.astype(np.float32)).text == d.text


def test_the_certificate_ignores_duplicate_entries_and_a_single_entry_bank():
    entries = np.asarray([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], np.float32)
    scores = entries @ np.asarray([1.0, 0.0], np.float32)
    assert certified_radius(entries, scores, 0) == pytest.approx((1.0 - 1e-5) / np.sqrt(2.0))
    assert certified_radius(entries[:1], scores[:1], 0) == np.inf


def test_a_decoder_without_a_certificate_uses_drift_radius_and_the_floor_bounds_both():
    cfg = ChangeDetectorConfig(trigger="margin", drift_radius=0.3, drift_floor=0.1)
    assert decode_radius(Decoded("a", 1.0), cfg) == 0.3
    assert decode_radius(Decoded("a", 1.0, certified_radius=0.05), cfg) == 0.1
    assert decode_radius(Decoded("a", 1.0, certified_radius=0.5), cfg) == 0.5


def test_floor_and_min_interval_cut_decodes_and_the_uncertified_decoder_decodes_every_embedding():
    rng = np.random.default_rng(5)
    bank = _bank(rng)
    vectors = _walk(rng, 400)
    counts = {}
    for name, cfg, certify in (
        ("exact", ChangeDetectorConfig(trigger="margin", min_interval_s=0.0), True),
        ("floor", ChangeDetectorConfig(trigger="margin", min_interval_s=0.0, drift_floor=0.5), True),
        ("interval", ChangeDetectorConfig(trigger="margin", min_interval_s=2.0), True),
        ("uncertified", ChangeDetectorConfig(trigger="margin", min_interval_s=0.0), False),
    ):
        decoder = CountingDecoder(bank, certify)
        _caption_in_force(DecodingPipeline(decoder, cfg), vectors)
        counts[name] = decoder.calls
    assert counts["floor"] < counts["exact"]
    assert counts["interval"] <= 400 / 8 + 1  # at most one decode per 2 s of stamps at 4 Hz
    assert counts["uncertified"] == 400  # drift_radius 0: every embedding that moved at all


def test_first_change_heartbeat_and_rejections():
    trigger = DriftTrigger(ChangeDetectorConfig(trigger="margin", min_interval_s=0.0, max_interval_s=1.0))
    e = np.eye(4)[0]
    first = trigger.update(0, e)
    assert first.reason == DecodeReason.FIRST and not first.publish_if_new
    trigger.note_decoded(Decoded("a", 1.0, certified_radius=0.5))
    assert trigger.update(NS // 4, e) is None
    change = trigger.update(NS // 2, np.eye(4)[1])
    assert change.reason == DecodeReason.CHANGE and change.publish_if_new
    assert trigger.last_score == pytest.approx(np.sqrt(2.0))
    trigger.note_decoded(Decoded("b", 1.0, certified_radius=1.9))
    heartbeat = trigger.update(NS * 3 // 2, np.eye(4)[1])
    assert heartbeat.reason == DecodeReason.HEARTBEAT
    with pytest.raises(RejectedEmbedding) as err:
        trigger.update(NS * 2, np.full(4, np.nan))
    assert err.value.reason == "non_finite"
    with pytest.raises(RejectedEmbedding) as err:
        trigger.update(NS, e)
    assert err.value.reason == "stamp_backwards"


def test_switching_trigger_restarts_detection_with_a_first_decode():
    rng = np.random.default_rng(6)
    pipeline = DecodingPipeline(_bank(rng), ChangeDetectorConfig())
    vectors = _walk(rng, 10)
    for k, v in enumerate(vectors[:5]):
        pipeline.feed("cam", "cam", k * NS, v)
    pipeline.set_config(ChangeDetectorConfig(trigger="margin"))
    event = pipeline.feed("cam", "cam", 5 * NS, vectors[5])
    assert event is not None and event.reason == DecodeReason.FIRST


@pytest.mark.parametrize(
    "name, value",
    [
        ("trigger", "nearest"),
        ("trigger", 1),
        ("drift_floor", -0.1),
        ("drift_floor", 2.5),
        ("drift_radius", float("nan")),
    ],
)
def test_bad_trigger_settings_are_refused_naming_the_parameter(name, value):
    with pytest.raises(ValueError, match=f"^{name} "):
        ChangeDetectorConfig(**{name: value})
    with pytest.raises(ConfigError) as err:
        detector_config(detector_values_from_parameters({name: value}))
    assert name in str(err.value)
