"""DecoderCore: what the decoder node (and replay, and evaluate_selective) decide for each embedding."""

import numpy as np

from vljepa_ros.decoding.change_detection import ChangeDetectorConfig, DecodeReason
from vljepa_ros.decoding.config import StreamLimits
from vljepa_ros.decoding.decoder_core import (
    MAX_CAMERA_NAME_BYTES,
    REJECT_CAMERA_NAME,
    DecoderCore,
    EmbeddingInput,
    camera_name_too_long,
    online_captions,
)
from vljepa_ros.decoding.decoders import RetrievalDecoder

from support.selective_streams import NS, load_bank, make_stream

BANK = load_bank()
CONFIG = ChangeDetectorConfig(
    trigger="change", window=3, threshold=0.03, settle=2, min_interval_s=1.0, provisional=False, reconfirm_s=0.0
)


def idx(text):
    return BANK.texts.index(text)


WALK = [idx("an empty floor"), idx("a blue cube on the floor"), idx("an empty floor in the dark")]


def core(config=CONFIG, **kwargs):
    return DecoderCore(RetrievalDecoder(BANK), config, **kwargs)


def inputs(stream, camera="front", version="v1", query="describe the scene", kind=1):
    return [
        EmbeddingInput(camera, camera + "_optical", int(s), v, kind, "m", version, query, (v.size,))
        for s, v in zip(stream.stamps_ns, stream.vectors)
    ]


def test_camera_names_over_the_limit_are_refused_and_counted_without_a_stream():
    c = core()
    stream = make_stream(BANK, [WALK[0]], [5.0], noise=0.2, seed=1)
    at_limit = "x" * MAX_CAMERA_NAME_BYTES
    too_long = "é" * (MAX_CAMERA_NAME_BYTES // 2 + 1)  # 2 bytes each in UTF-8: 258 bytes, 129 characters
    assert not camera_name_too_long(at_limit) and camera_name_too_long(too_long)
    assert camera_name_too_long("x" * (MAX_CAMERA_NAME_BYTES + 1))
    outcomes = [c.feed(item, 0) for item in inputs(stream, camera=too_long)]
    assert {(o.status, o.reason) for o in outcomes} == {("refused", REJECT_CAMERA_NAME)}
    assert c.refused[REJECT_CAMERA_NAME] == len(stream.stamps_ns)
    assert len(c.cameras) == 0 and c.pipeline.cameras == []
    assert online_captions(c, inputs(stream, camera=at_limit))[0].camera == at_limit


def test_kinds_queries_shapes_and_dimensions_are_sorted_by_reason():
    c = core(query_filter="describe the scene")
    stream = make_stream(BANK, [WALK[0]], [5.0], noise=0.2, seed=2)
    good = inputs(stream)
    assert c.feed(EmbeddingInput("front", "f", 1, good[0].vector, kind=0), 0).reason == "kind"
    assert c.feed(EmbeddingInput("front", "f", 1, good[0].vector, query="what changed"), 0).reason == "query"
    bad_shape = EmbeddingInput("front", "f", 1, good[0].vector, query="describe the scene", shape=(3, 3))
    assert (c.feed(bad_shape, 0).status, c.feed(bad_shape, 0).reason) == ("rejected", "shape")
    short = EmbeddingInput("front", "f", 1, np.ones(7, np.float32), query="describe the scene")
    assert c.feed(short, 0).reason == "dimension"
    info = c.cameras.get("front")
    assert dict(info.ignored) == {"kind": 1, "query": 1}
    assert c.pipeline.statistics("front").rejected == {"shape": 2, "dimension": 1}
    assert [e.text for e in online_captions(c, good)] == [BANK.texts[WALK[0]]]


def test_a_model_or_query_change_restarts_the_stream_with_a_first_caption():
    c = core()
    stream = make_stream(BANK, [WALK[0]], [12.0], noise=0.2, seed=3)
    items = inputs(stream)
    half = len(items) // 2
    changed = [EmbeddingInput(**{**i.__dict__, "model_version": "v2"}) for i in items[half:]]
    events = online_captions(c, items[:half] + changed)
    assert [e.reason for e in events] == [DecodeReason.FIRST, DecodeReason.FIRST]
    assert c.cameras.get("front").stream_resets == 1
    outcome = c.feed(EmbeddingInput(**{**items[-1].__dict__, "stamp_ns": items[-1].stamp_ns + NS, "query": "q"}), 0)
    assert outcome.reset_from == ("v2", "describe the scene") and c.cameras.get("front").stream_resets == 2


def test_streams_are_bounded_and_idle_ones_expire():
    c = core(limits=StreamLimits(max_streams=1, stream_expiry_s=10.0))
    vec = make_stream(BANK, [WALK[0]], [1.0], noise=0.2).vectors[0]
    assert c.feed(EmbeddingInput("a", "a", 0, vec), 0).status == "fed"
    assert c.feed(EmbeddingInput("b", "b", 0, vec), 5 * NS).reason == "streams_full"
    outcome = c.feed(EmbeddingInput("b", "b", 0, vec), 11 * NS)
    assert outcome.expired == ("a",) and c.pipeline.cameras == ["b"] and c.cameras.refused_full == 1


def test_provisional_decoding_captions_a_change_at_once_and_confirms_only_a_different_text():
    stream = make_stream(BANK, WALK, [10.0, 10.0, 10.0], noise=0.2, seed=4)
    settled = core()
    provisional = core(
        ChangeDetectorConfig(
            trigger="change", window=3, threshold=0.03, settle=2, min_interval_s=1.0, provisional=True, reconfirm_s=0
        )
    )
    late = online_captions(settled, inputs(stream))
    early = online_captions(provisional, inputs(stream))
    assert [e.text for e in late] == [BANK.texts[i] for i in WALK]
    changes = [e for e in early if e.reason == DecodeReason.CHANGE]
    assert len(changes) == 2
    for k, change in enumerate(changes, start=1):
        assert change.stamp_ns < late[k].stamp_ns  # the provisional caption is out before the settled one
        # Once settled, the caption in effect is the settled decode's, whether the confirm was published or not.
        in_effect = [e for e in early if e.stamp_ns <= late[k].stamp_ns][-1]
        assert in_effect.text == late[k].text
    stats = provisional.pipeline.statistics("front")
    assert stats.decodes == 1 + 2 * 2  # every change costs two decodes
    assert len(early) == stats.decodes - stats.confirmed_silently  # a confirm that agrees is not published
    assert all(e.reason != DecodeReason.CONFIRM or e.text != p.text for p, e in zip(early, early[1:]))


def test_a_provisional_caption_of_a_transient_is_taken_back():
    # 3 s of another scene, shorter than window + settle: the detector sees it, then the stream comes back.
    stream = make_stream(BANK, [WALK[0], WALK[2], WALK[0]], [10.0, 1.5, 10.0], noise=0.1, seed=5, blend=1)
    config = ChangeDetectorConfig(
        trigger="change", window=2, threshold=0.03, settle=6, min_interval_s=0.0, provisional=True, reconfirm_s=0
    )
    c = core(config)
    events = online_captions(c, inputs(stream))
    assert c.pipeline.statistics("front").transients == 1
    # The transient got a provisional caption; the CONFIRM takes it back to the scene the stream is in.
    assert [(e.text, e.reason) for e in events] == [
        (BANK.texts[WALK[0]], DecodeReason.FIRST),
        (BANK.texts[WALK[2]], DecodeReason.CHANGE),
        (BANK.texts[WALK[0]], DecodeReason.CONFIRM),
    ]
