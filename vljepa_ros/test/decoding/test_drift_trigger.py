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
# The margin trigger without floor or settle decode: the exact certificate.
EXACT = {"trigger": "margin", "min_interval_s": 0.0, "drift_floor": 0.0, "still_step": 0.0}


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
    pipeline = DecodingPipeline(decoder, ChangeDetectorConfig(**EXACT))
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
        ("exact", ChangeDetectorConfig(**EXACT), True),
        ("floor", ChangeDetectorConfig(**{**EXACT, "drift_floor": 0.5}), True),
        ("interval", ChangeDetectorConfig(**{**EXACT, "min_interval_s": 2.0}), True),
        ("uncertified", ChangeDetectorConfig(**EXACT), False),
    ):
        decoder = CountingDecoder(bank, certify)
        _caption_in_force(DecodingPipeline(decoder, cfg), vectors)
        counts[name] = decoder.calls
    assert counts["floor"] < counts["exact"]
    assert counts["interval"] <= 400 / 8 + 1  # at most one decode per 2 s of stamps at 4 Hz
    assert counts["uncertified"] == 400  # drift_radius 0: every embedding that moved at all


def test_first_change_heartbeat_and_rejections():
    trigger = DriftTrigger(ChangeDetectorConfig(**{**EXACT, "max_interval_s": 1.0}))
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


def _glide(start, end, steps):
    """Unit vectors gliding from `start` to `end` in `steps` equal steps (a scene change seen through clips)."""
    return [_unit((1 - t) * start + t * end) for t in np.linspace(0.0, 1.0, steps + 1)[1:]]


def test_the_settle_decode_catches_the_end_of_a_change_the_floor_let_pass():
    e0, e1 = np.eye(4)[0], np.eye(4)[1]
    # A move of ~1.41 in 8 steps, then still: the floor (0.8) fires mid-way, the rest of the glide stays under it.
    stream = [e0] * 4 + _glide(e0, e1, 8) + [e1] * 6
    results = {}
    for still_step in (0.0, 0.01):
        cfg = ChangeDetectorConfig(
            trigger="margin", min_interval_s=0.0, drift_floor=0.8, still_step=still_step, still_count=2
        )
        trigger = DriftTrigger(cfg)
        requests = []
        for k, v in enumerate(stream):
            request = trigger.update(k * NS // 4, v)
            if request is not None:
                requests.append((k, request))
                trigger.note_decoded(Decoded("x", 1.0, certified_radius=0.01))
        results[still_step] = requests
    without = [(k, r.reason) for k, r in results[0.0]]
    assert without[0] == (0, DecodeReason.FIRST)
    assert [reason for _, reason in without[1:]] == [DecodeReason.CHANGE]  # once, mid-glide
    mid_glide = without[1][0]
    assert 4 <= mid_glide < 11
    settled = [(k, r) for k, r in results[0.01] if r.reason == DecodeReason.CONFIRM]
    assert len(settled) == 1  # one settle decode, when the stream has been still for 2 embeddings
    k, request = settled[0]
    assert k == 4 + 8 + 1  # the glide ends at index 11; index 12 is the first still step, 13 the second
    assert request.publish_if_new
    np.testing.assert_allclose(request.vector, e1, atol=1e-6)  # the settled state, not the blur


def test_the_settle_decode_respects_its_floor_and_the_certified_radius():
    e0, e1 = np.eye(4)[0], np.eye(4)[1]
    stream = [e0] * 4 + _glide(e0, e1, 8) + [e1] * 6

    def confirms(settle_floor, radius):
        cfg = ChangeDetectorConfig(
            trigger="margin", min_interval_s=0.0, drift_floor=0.8, still_step=0.01, settle_floor=settle_floor
        )
        trigger = DriftTrigger(cfg)
        count = 0
        for k, v in enumerate(stream):
            request = trigger.update(k * NS // 4, v)
            if request is not None:
                count += request.reason == DecodeReason.CONFIRM
                trigger.note_decoded(Decoded("x", 1.0, certified_radius=radius))
        return count

    assert confirms(0.0, 0.01) == 1
    assert confirms(1.0, 0.01) == 0  # the rest of the glide is shorter than the settle floor
    assert confirms(0.0, 1.0) == 0  # the caption is certified over the rest of the glide


def test_a_settle_decode_that_repeats_the_caption_is_counted_not_published():
    rng = np.random.default_rng(7)
    decoder = CountingDecoder(_bank(rng))
    cfg = ChangeDetectorConfig(
        trigger="margin", min_interval_s=0.0, drift_floor=0.3, still_step=0.002, settle_floor=0.0
    )
    pipeline = DecodingPipeline(decoder, cfg)
    vectors, here = [], _unit(rng.standard_normal(DIM))
    for _ in range(60):  # scenes: a glide to a new state, then a still stretch
        there = _unit(rng.standard_normal(DIM))
        vectors += _glide(here, there, 6) + [_unit(there + 1e-4 * rng.standard_normal(DIM)) for _ in range(8)]
        here = there
    events = [pipeline.feed("cam", "cam", k * NS // 4, v) for k, v in enumerate(vectors)]
    published = [e for e in events if e is not None]
    stats = pipeline.statistics("cam")
    assert stats.decodes == decoder.calls
    assert any(e.reason == DecodeReason.CONFIRM for e in published)
    assert stats.confirmed_silently > 0
    assert stats.decodes == len(published) + stats.confirmed_silently
    texts = [e.text for e in published]
    assert all(a != b for a, b in zip(texts, texts[1:]))  # nothing published twice in a row


def test_switching_trigger_restarts_detection_with_a_first_decode():
    rng = np.random.default_rng(6)
    pipeline = DecodingPipeline(_bank(rng), ChangeDetectorConfig(trigger="change"))
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
        ("still_step", -0.01),
        ("still_count", 0),
        ("settle_floor", 3.0),
    ],
)
def test_bad_trigger_settings_are_refused_naming_the_parameter(name, value):
    with pytest.raises(ValueError, match=f"^{name} "):
        ChangeDetectorConfig(**{name: value})
    with pytest.raises(ConfigError) as err:
        detector_config(detector_values_from_parameters({name: value}))
    assert name in str(err.value)
