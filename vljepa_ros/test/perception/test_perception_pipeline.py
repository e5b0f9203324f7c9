"""The perception core on a real ONNX Runtime model: batching, stamps, transitions, keep-latest, runtime changes."""

import numpy as np
import pytest

from vljepa_ros.perception.config import ConfigError, PipelineConfig, QosConfig, cameras_from_parameters
from vljepa_ros.perception.image_conversion import ImageConversionError
from vljepa_ros.perception.pipeline import PerceptionPipeline, VocabularyError, cosine_distance
from vljepa_ros.perception.results import DROP_DISABLED, DROP_OUT_OF_ORDER, DROP_WORKER_BEHIND
from vljepa_ros.runtime.vljepa_runtime import VLJepaRuntime

from support.counting_runtime import CountingRuntime
from support.perception_fixtures import moving_frame, tiny_random_manifest
from support.tiny_models import tiny_random_model

MS = 1_000_000
CAMERA_PERIOD_NS = 33 * MS  # a 30 Hz camera


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    return VLJepaRuntime.from_manifest(tiny_random_manifest(tmp_path_factory), providers=("cpu",))


def _pipeline(runtime, **config):
    return PerceptionPipeline(runtime, PipelineConfig(**config))


def _stream(pipeline, camera, seconds, start_ns=0, seed=0):
    """Offer a 30 Hz camera stream; returns {stamp_ns: raw frame} of everything offered."""
    frames = {}
    for i in range(int(seconds * 1e9 / CAMERA_PERIOD_NS)):
        stamp = start_ns + i * CAMERA_PERIOD_NS
        frames[stamp] = moving_frame(stamp / 1e9, seed=seed)
        pipeline.offer_frame(camera, f"{camera}_optical", stamp, frames[stamp])
    return frames


def test_clip_input_matches_the_runtime_preprocessing_of_the_raw_frames(runtime):
    pipeline = _pipeline(runtime)
    raw = [moving_frame(i * 0.25) for i in range(8)]
    prepared = [pipeline.prepare_frame(f) for f in raw]
    np.testing.assert_array_equal(pipeline.clip_input(prepared), runtime.prepare_clip(raw))
    before = [moving_frame(10 + i * 0.25, seed=3) for i in range(8)]
    np.testing.assert_array_equal(
        pipeline.transition_input([pipeline.prepare_frame(f) for f in before], prepared),
        runtime.transition_clip(before, raw),
    )


def test_two_cameras_share_one_batched_call_and_keep_their_newest_stamps(runtime):
    pipeline = _pipeline(runtime, transition_horizon_s=0.0, queue_depth=1)
    front = _stream(pipeline, "front", 2.1)
    rear = _stream(pipeline, "rear", 2.1, start_ns=5 * MS, seed=1)
    batch = pipeline.step()
    assert batch.batch_size == 2 and batch.transitions == ()
    by_camera = {r.camera: r for r in batch.embeddings}
    assert set(by_camera) == {"front", "rear"}
    for camera, frames in (("front", front), ("rear", rear)):
        result = by_camera[camera]
        assert result.stamp_ns in frames and result.frame_id == f"{camera}_optical"
        assert result.num_frames == 8 and result.query == "describe the scene"
        # The clip spans 8 samples at 4 Hz: 7 periods of 250 ms, each within one camera period.
        assert abs((result.stamp_ns - result.clip_start_ns) - 7 * 250 * MS) <= 7 * CAMERA_PERIOD_NS
        assert result.clip_start_ns in frames
    # The batched result equals running the runtime on the same raw frames, one clip at a time.
    front_clip = _clip_frames(pipeline, front, by_camera["front"])
    tokens = runtime.encode(runtime.prepare_clip(front_clip))
    expected = runtime.predict(tokens, "describe the scene")[0]
    np.testing.assert_allclose(by_camera["front"].embedding, expected, atol=1e-5)
    np.testing.assert_allclose(by_camera["front"].visual_state, runtime.visual_state(tokens)[0], atol=1e-5)
    assert pipeline.step() is None


def _clip_frames(pipeline, frames, result):
    """The raw frames the sampler must have picked for `result` (re-derived from a fresh buffer)."""
    replay = PerceptionPipeline(pipeline.runtime, PipelineConfig(transition_horizon_s=0.0, queue_depth=1000))
    for stamp, frame in frames.items():
        replay.offer_frame("x", "x", stamp, frame)
        if stamp == result.stamp_ns:
            break
    clips = []
    while batch := replay.queue.take_batch(1, 0):
        clips.extend(batch)
    assert clips[-1].stamp_ns == result.stamp_ns
    return [frames[s] for s in clips[-1].stamps_ns]


def test_transitions_start_after_the_horizon_and_compare_with_the_state_then(runtime):
    pipeline = _pipeline(runtime, transition_horizon_s=1.0, queue_depth=1000, top_k=3)
    _stream(pipeline, "front", 3.5)
    states, transitions = {}, []
    while (batch := pipeline.step()) is not None:
        states.update({r.stamp_ns: r.visual_state for r in batch.embeddings})
        transitions.extend(batch.transitions)
    assert transitions, "no transition after 3.5 s with a 1 s horizon"
    first_clip_end = min(states)
    for t in transitions:
        assert t.stamp_ns - t.before_stamp_ns == pytest.approx(1000 * MS, abs=CAMERA_PERIOD_NS)
        assert t.before_stamp_ns >= first_clip_end
        expected = cosine_distance(states[t.before_stamp_ns], states[t.stamp_ns])
        assert t.state_distance == pytest.approx(expected, abs=1e-6)
        assert len(t.action_labels) == 3 and list(t.action_scores) == sorted(t.action_scores, reverse=True)
        assert set(t.action_labels) <= set(runtime.load_bank("actions").texts)
        assert t.query == "what changed" and np.linalg.norm(t.transition_embedding) == pytest.approx(1.0, abs=1e-5)
    # A clip whose look-back clip never went through the model still gets its transition.
    assert len(transitions) == sum(1 for s in states if s - 1000 * MS >= first_clip_end - CAMERA_PERIOD_NS)


def test_a_dropped_lookback_clip_is_encoded_in_the_same_batch(runtime):
    pipeline = _pipeline(runtime, transition_horizon_s=1.0, queue_depth=1)
    _stream(pipeline, "front", 3.5)  # the worker never ran: only the newest clip is waiting
    batch = pipeline.step()
    assert len(batch.embeddings) == 1 and len(batch.transitions) == 1
    assert batch.batch_size == 3  # the clip, its look-back clip, and the transition clip
    assert pipeline.stats["front"].drops[DROP_WORKER_BEHIND] > 0


def test_keep_latest_drops_the_oldest_waiting_clip_and_counts_it(runtime):
    pipeline = _pipeline(runtime, transition_horizon_s=0.0, queue_depth=2)
    _stream(pipeline, "front", 4.0)
    clips_emitted = pipeline.stats["front"].drops[DROP_WORKER_BEHIND] + pipeline.queue.pending()
    assert pipeline.queue.pending() == 2 and clips_emitted >= 8
    newest_first = pipeline.step().embeddings[0].stamp_ns
    newest_second = pipeline.step().embeddings[0].stamp_ns
    assert newest_second > newest_first
    assert newest_second >= 4000 * MS - 250 * MS - CAMERA_PERIOD_NS


def test_malformed_frames_are_counted_and_the_sampling_slot_stays_open(runtime):
    pipeline = _pipeline(runtime)

    def corrupt():
        raise ImageConversionError("corrupt_compressed", "test jpeg")

    with pytest.raises(ImageConversionError):
        pipeline.offer_frame("front", "f", 0, corrupt)
    assert pipeline.stats["front"].malformed["corrupt_compressed"] == 1
    assert pipeline.offer_frame("front", "f", CAMERA_PERIOD_NS, moving_frame(0)) == "sampled"
    with pytest.raises(ImageConversionError) as info:
        pipeline.offer_frame("front", "f", 400 * MS, np.zeros((4, 4), np.uint8))
    assert info.value.reason == "bad_shape" and pipeline.stats["front"].malformed["bad_shape"] == 1


def test_frames_skipped_for_rate_are_never_converted(runtime):
    pipeline = _pipeline(runtime)
    calls = []

    def convert():
        calls.append(1)
        return moving_frame(0)

    verdicts = [pipeline.offer_frame("c", "c", i * CAMERA_PERIOD_NS, convert) for i in range(30)]
    assert verdicts.count("sampled") == len(calls) == 5  # grid 0, 250, .., 1000 ms; 957 ms is within a quarter period
    assert pipeline.frames_subsampled["c"] == 25 and pipeline.stats["c"].input_rate.total == 30


def test_out_of_order_frames_are_counted_as_drops(runtime):
    pipeline = _pipeline(runtime)
    pipeline.offer_frame("c", "c", 500 * MS, moving_frame(0))
    assert pipeline.offer_frame("c", "c", 400 * MS, moving_frame(0)) == DROP_OUT_OF_ORDER
    assert pipeline.stats["c"].drops[DROP_OUT_OF_ORDER] == 1


def test_query_change_takes_effect_and_invalid_queries_keep_the_old_one(runtime):
    pipeline = _pipeline(runtime, transition_horizon_s=0.0, queue_depth=1000)
    _stream(pipeline, "front", 2.3)
    first = pipeline.step().embeddings[0]
    for bad in ("", "   ", "zebra quokka", " ".join(["the"] * 50)):
        with pytest.raises(VocabularyError, match="query"):
            pipeline.set_query(bad)
        assert pipeline.query == "describe the scene"
    pipeline.set_query("what changed")
    second = pipeline.step().embeddings[0]
    assert second.query == "what changed"
    assert float(np.dot(first.embedding, second.embedding)) < 0.9999
    frames = [moving_frame(0)] * 8  # same visual input, two queries: different answers
    tokens = runtime.encode(runtime.prepare_clip(frames))
    assert not np.allclose(runtime.predict(tokens, "what changed"), runtime.predict(tokens, "describe the scene"))


def test_action_vocabulary_subset_of_the_bank_or_refused(runtime):
    pipeline = _pipeline(runtime)
    bank = runtime.load_bank("actions")
    pipeline.set_action_vocabulary(bank.texts[:2])
    assert pipeline.action_vocabulary == bank.texts[:2]
    for bad in (["a new action nobody embedded"], ["x", "x"], [""]):
        with pytest.raises(VocabularyError, match="action_vocabulary"):
            pipeline.set_action_vocabulary(bad)
        assert pipeline.action_vocabulary == bank.texts[:2]
    pipeline.set_action_vocabulary(())
    assert pipeline.action_vocabulary == bank.texts


def test_vocabulary_outside_the_bank_uses_the_text_encoder(runtime):
    seen = []

    def encode(texts):
        seen.extend(texts)
        return np.eye(len(texts), 384, dtype=np.float32) * 3.0

    pipeline = PerceptionPipeline(runtime, PipelineConfig(), text_encoder=encode)
    pipeline.set_action_vocabulary(["open the door", "close the door"])
    assert seen == ["open the door", "close the door"]
    assert pipeline.action_vocabulary == ("open the door", "close the door")
    assert pipeline._actions.embeddings[0, 0] == pytest.approx(1.0)  # stored L2-normalised


def test_disabling_discards_waiting_clips_and_counts_frames(runtime):
    pipeline = _pipeline(runtime, transition_horizon_s=0.0)
    _stream(pipeline, "front", 2.3)
    assert pipeline.queue.pending() == 1
    pipeline.set_enabled(False)
    assert pipeline.queue.pending() == 0 and pipeline.stats["front"].drops[DROP_DISABLED] == 1
    assert pipeline.offer_frame("front", "f", 10_000 * MS, moving_frame(0)) == DROP_DISABLED
    pipeline.set_enabled(True)
    _stream(pipeline, "front", 2.3, start_ns=20_000 * MS)
    assert pipeline.step().embeddings[0].stamp_ns > 20_000 * MS


@pytest.mark.parametrize(
    "kwargs,parameter",
    [
        (dict(frame_rate_hz=-1.0), "frame_rate_hz"),
        (dict(stride=0), "stride"),
        (dict(queue_depth=0), "queue_depth"),
        (dict(top_k=0), "top_k"),
        (dict(transition_horizon_s=-0.5), "transition_horizon_s"),
        (dict(query=""), "query"),
        (dict(action_vocabulary=("a", "a")), "action_vocabulary"),
    ],
)
def test_config_errors_name_the_parameter(kwargs, parameter):
    with pytest.raises(ConfigError) as info:
        PipelineConfig(**kwargs)
    assert info.value.parameter == parameter and parameter in str(info.value)


def test_pipeline_refuses_a_query_the_model_cannot_read(runtime):
    with pytest.raises(ConfigError) as info:
        PerceptionPipeline(runtime, PipelineConfig(query="zebra quokka"))
    assert info.value.parameter == "query"
    with pytest.raises(ConfigError) as info:
        PerceptionPipeline(runtime, PipelineConfig(action_vocabulary=("fly to the moon",)))
    assert info.value.parameter == "action_vocabulary"


def test_model_frame_rate_can_be_overridden(runtime):
    assert _pipeline(runtime).frame_rate_hz == 4.0
    pipeline = _pipeline(runtime, frame_rate_hz=10.0)
    verdicts = [pipeline.offer_frame("c", "c", i * CAMERA_PERIOD_NS, moving_frame(0)) for i in range(30)]
    assert verdicts.count("sampled") + verdicts.count("queued") == 10


def test_camera_names_over_256_bytes_of_utf8_are_refused_naming_their_parameter():
    """The limit counts bytes, not characters: 128 two-byte characters pass, 129 do not."""
    assert cameras_from_parameters(["/a"], (), ["\u00e9" * 128])[0].name == "\u00e9" * 128
    with pytest.raises(ConfigError, match=r"camera_names.*258 bytes .* limit of 256"):
        cameras_from_parameters(["/a"], (), ["\u00e9" * 129])
    with pytest.raises(ConfigError, match=r"camera_topics.*300 bytes.*set camera_names"):
        cameras_from_parameters(["/" + "c" * 300])
    assert cameras_from_parameters(["/" + "c" * 300], (), ["front"])[0].name == "front"


def test_camera_parameters():
    cams = cameras_from_parameters(
        ["/front/image_raw", "/robot/left/image_raw/compressed", "/rear"], ["auto", "auto", "compressed"]
    )
    assert [(c.name, c.compressed) for c in cams] == [("front", False), ("robot_left", True), ("rear", True)]
    with pytest.raises(ConfigError, match="camera_types"):
        cameras_from_parameters(["/a"], ["jpeg"])
    with pytest.raises(ConfigError, match="camera_names"):
        cameras_from_parameters(["/a/image_raw", "/a/image_raw/compressed"])
    with pytest.raises(ConfigError, match="camera_topics"):
        cameras_from_parameters([])
    assert QosConfig.parse("input_qos", "sensor_data", 5) == QosConfig("SENSOR_DATA", 5)
    with pytest.raises(ConfigError, match="input_qos_depth"):
        QosConfig.parse("input_qos", "DEFAULT", 0)
    with pytest.raises(ConfigError, match="'output_qos'"):
        QosConfig.parse("output_qos", "BEST", 5)


def test_validation_runs_for_frames_the_sampler_skips(runtime):
    pipeline = _pipeline(runtime)
    pipeline.offer_frame("c", "c", 0, moving_frame(0))

    def bad_step():
        raise ImageConversionError("bad_step", "step 10")

    with pytest.raises(ImageConversionError):
        pipeline.offer_frame("c", "c", CAMERA_PERIOD_NS, moving_frame(0), validate=bad_step)  # not due yet
    assert pipeline.stats["c"].malformed["bad_step"] == 1


def test_fused_preprocessing_model_gets_uint8_frames_at_its_input_size(tmp_path):
    manifest = tiny_random_model(tmp_path / "fused", variant="fused_96x128")
    runtime = VLJepaRuntime.from_manifest(manifest, providers=("cpu",))
    pipeline = _pipeline(runtime, transition_horizon_s=1.0, queue_depth=100)
    raw = [moving_frame(i * 0.25, height=120, width=160) for i in range(8)]
    prepared = [pipeline.prepare_frame(f) for f in raw]
    assert prepared[0].dtype == np.uint8 and prepared[0].shape == (96, 128, 3)
    np.testing.assert_array_equal(pipeline.clip_input(prepared), runtime.prepare_clip(raw))
    np.testing.assert_array_equal(
        pipeline.transition_input(prepared[::-1], prepared), runtime.transition_clip(raw[::-1], raw)
    )
    _stream(pipeline, "front", 3.2)
    results = [pipeline.step() for _ in range(pipeline.queue.pending())]
    assert results[-1].transitions and results[-1].embeddings[0].embedding.shape == (384,)


def test_without_visual_state_or_transitions_the_embedding_is_unchanged(runtime):
    full = _pipeline(runtime, transition_horizon_s=0.0)
    lean = _pipeline(runtime, transition_horizon_s=0.0, publish_visual_state=False)
    for pipeline in (full, lean):
        _stream(pipeline, "front", 2.1)
    a, b = full.step().embeddings[0], lean.step().embeddings[0]
    assert b.visual_state is None and a.visual_state is not None
    np.testing.assert_array_equal(a.embedding, b.embedding)


def _clips_with_raw_frames(pipeline, seconds, gap_after_s=None):
    """Offer a 30 Hz stream (with a 1 s hole after ``gap_after_s``, which resets the clip buffer) into a deep
    queue; returns every queued clip with the raw frames its stamps name."""
    raw, clips = {}, []
    for i in range(int(seconds * 1e9 / CAMERA_PERIOD_NS)):
        stamp = i * CAMERA_PERIOD_NS
        if gap_after_s is not None and gap_after_s * 1e9 <= stamp < (gap_after_s + 1) * 1e9:
            continue
        raw[stamp] = moving_frame(stamp / 1e9)
        if pipeline.offer_frame("front", "front_optical", stamp, raw[stamp]) == "queued":
            clips.append(pipeline.queue._queues["front"][-1])
    return [(clip, [raw[s] for s in clip.stamps_ns]) for clip in clips]


@pytest.mark.parametrize("stride", [1, 3])
def test_clips_carry_inputs_laid_out_ahead_equal_to_the_runtime_preprocessing(runtime, stride):
    pipeline = _pipeline(runtime, transition_horizon_s=0.0, queue_depth=100, stride=stride)
    clips = _clips_with_raw_frames(pipeline, 9.0, gap_after_s=4.0)
    assert len(clips) >= 4 and pipeline.clip_resets("front") == {"gap": 1}
    for clip, raw in clips:
        np.testing.assert_array_equal(clip.encoder_input, runtime.prepare_clip(raw))
    # Each clip got its own array: the producer never writes into an input it already queued.
    assert len({id(clip.encoder_input) for clip, _ in clips}) == len(clips)


@pytest.fixture(scope="module")
def other_layouts(tmp_path_factory):
    """The tiny random model exported with uint8 crops in, and with fused preprocessing for 96x128 frames."""

    folder = tmp_path_factory.mktemp("layouts")
    return {
        "crops": VLJepaRuntime.from_manifest(tiny_random_model(folder / "crops", variant="crops"), providers=("cpu",)),
        "fused": VLJepaRuntime.from_manifest(
            tiny_random_model(folder / "fused", variant="fused_96x128"), providers=("cpu",)
        ),
    }


@pytest.mark.parametrize("layout", ["crops", "fused"])
def test_laid_out_inputs_match_the_runtime_for_uint8_layouts_too(other_layouts, layout):
    runtime = other_layouts[layout]
    pipeline = _pipeline(runtime, transition_horizon_s=0.0, queue_depth=100)
    clips = _clips_with_raw_frames(pipeline, 5.0, gap_after_s=2.5)
    assert len(clips) >= 3 and clips[0][0].encoder_input.dtype == np.uint8
    for clip, raw in clips:
        np.testing.assert_array_equal(clip.encoder_input, runtime.prepare_clip(raw))


def test_a_laid_out_input_is_not_reused_after_a_disable(runtime):
    pipeline = _pipeline(runtime, transition_horizon_s=0.0, queue_depth=100)
    first = _clips_with_raw_frames(pipeline, 2.5)
    pipeline.set_enabled(False)
    pipeline.set_enabled(True)
    pipeline.queue.clear()
    raw = {}
    for i in range(100, 100 + int(2.5e9 / CAMERA_PERIOD_NS)):  # the same camera, later, different content
        stamp = i * CAMERA_PERIOD_NS
        raw[stamp] = moving_frame(stamp / 1e9, seed=4)
        pipeline.offer_frame("front", "front_optical", stamp, raw[stamp])
    clip = pipeline.queue._queues["front"][0]
    assert first and clip.stamps_ns[0] > first[-1][0].stamp_ns
    np.testing.assert_array_equal(clip.encoder_input, runtime.prepare_clip([raw[s] for s in clip.stamps_ns]))


def test_batched_run_with_laid_out_inputs_equals_running_from_frames(runtime):
    pipeline = _pipeline(runtime, transition_horizon_s=1.0, queue_depth=1)
    _stream(pipeline, "front", 3.6)
    _stream(pipeline, "rear", 3.6, start_ns=5 * MS, seed=1)
    clips = pipeline.queue.take_batch(2, 0)
    assert all(c.encoder_input is not None for c in clips) and any(c.before is not None for c in clips)
    laid_out = pipeline.run_clips(clips)
    from dataclasses import replace

    from_frames = pipeline.run_clips([replace(c, encoder_input=None) for c in clips])
    for a, b in zip(laid_out.embeddings, from_frames.embeddings):
        np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-6)
    for a, b in zip(laid_out.transitions, from_frames.transitions):
        np.testing.assert_allclose(a.transition_embedding, b.transition_embedding, atol=1e-6)


@pytest.mark.parametrize("size", [(73, 97), (120, 160)])  # already at the resized size; resized
def test_a_prepared_uint8_crop_never_views_the_camera_frame(other_layouts, size):
    pipeline = _pipeline(other_layouts["crops"])
    frame = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    prepared = pipeline.prepare_frame(frame)
    assert prepared.shape == (64, 64, 3) and not np.shares_memory(prepared, frame)
    frame[:] = 0  # the message buffer is reused by the next frame
    assert prepared.any()


@pytest.mark.parametrize(
    ("mode", "readers", "clip_cost"),
    [
        ("on_subscription", False, {"encode": 1, "encoded_clips": 1, "predict": 1}),
        ("on_subscription", True, {"encode": 1, "encoded_clips": 2, "predict": 2}),
        ("always", False, {"encode": 1, "encoded_clips": 2, "predict": 2}),
    ],
)
def test_transition_work_runs_only_while_someone_reads_it(runtime, mode, readers, clip_cost):
    """Per clip past the horizon: one encoder clip and one predictor call, plus the transition clip and a second
    predictor call only with a reader (or compute_transitions=always)."""
    counting = CountingRuntime(runtime)
    subscribed = {"now": False}
    pipeline = PerceptionPipeline(
        counting,
        PipelineConfig(transition_horizon_s=1.0, queue_depth=1000, compute_transitions=mode),
        transition_readers=lambda: subscribed["now"],
    )
    _stream(pipeline, "front", 3.0)  # from here on every clip has a look-back clip (the first clip ends at 1.75 s)
    while pipeline.step() is not None:
        pass
    subscribed["now"] = readers
    before = dict(counting.calls)
    _stream(pipeline, "front", 1.5, start_ns=3_000_000_000)
    transitions, clips = [], 0
    while (batch := pipeline.step()) is not None:
        assert len(batch.embeddings) == 1  # one clip per batch: counts per call are counts per clip
        clips += 1
        transitions.extend(batch.transitions)
    assert clips >= 4
    per_clip = {name: (counting.calls[name] - before[name]) / clips for name in clip_cost}
    assert per_clip == clip_cost
    assert len(transitions) == (clips if clip_cost["predict"] == 2 else 0)
    # A subscriber appearing later gets a transition from the next clip on: look-back states come from history.
    subscribed["now"] = True
    _stream(pipeline, "front", 0.3, start_ns=4_500_000_000)
    batch = pipeline.step()
    assert len(batch.transitions) == 1 and batch.batch_size == 2


def test_compute_transitions_is_checked():
    with pytest.raises(ConfigError, match="compute_transitions"):
        PipelineConfig(compute_transitions="sometimes")
