"""replay: bag in -> the nodes' core -> output bag; every frame accounted for; reruns byte-identical."""

import json
from pathlib import Path

import numpy as np
import pytest

from vljepa_ros.bags import bag_io
from vljepa_ros.decoding.change_detection import ChangeDetectorConfig
from vljepa_ros.runtime.manifest import load_manifest
from vljepa_ros.tiny_world.bag_writer import write_stream_bag
from vljepa_ros.tiny_world.stream import StreamConfig, generate_stream
from vljepa_ros.tools import replay, report

from support.perception_fixtures import tiny_random_manifest

DURATION_S = 6.0
FPS = 10.0


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_random_manifest(tmp_path_factory)


@pytest.fixture(scope="module")
def world_bag(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("world") / "bag"
    write_stream_bag(generate_stream(StreamConfig(seed=5, duration_s=DURATION_S, fps=FPS, width=160, height=120)), path)
    return path


def _run(bag: Path, out: Path, model: Path, *extra: str) -> dict:
    args = replay.build_parser().parse_args([str(bag), "--out", str(out), "--model", str(model), "--quiet", *extra])
    return replay.run_replay(replay.config_from_args(args), log=lambda *_: None)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, world_bag, model):
    """The same bag replayed twice (the first with its report): (output folder, summary) each."""
    root = tmp_path_factory.mktemp("replays")
    return [
        (root / name, _run(world_bag, root / name, model, *extra))
        for name, extra in (("a", ()), ("b", ("--no-report",)))
    ]


def test_outputs_stamps_and_accounting(two_runs, world_bag, model):
    out, summary = two_runs[0]
    clip = load_manifest(model, check_files=False).clip
    frames = list(bag_io.read_camera_frames(world_bag))
    camera = summary["cameras"]["camera"]

    # Every frame has exactly one fate; at 10 Hz in and the model's 4 Hz, 4 of 10 frames are sampled.
    assert camera["frames_read"] == len(frames) == int(DURATION_S * FPS)
    assert sum(camera["frames_by_fate"].values()) == len(frames) and camera["unaccounted_frames"] == 0
    sampled = camera["frames_by_fate"]["sampled"]
    assert sampled == pytest.approx(len(frames) * clip.frame_rate_hz / FPS, abs=1)
    assert camera["clip_drops"] == {} and summary["all_frames_accounted"]
    # One embedding per full clip: every sampled frame from the T-th on closes a clip (stride 1).
    assert camera["embeddings"] == sampled - (clip.frames - 1)

    out_bag = out / "bag"
    embeddings = bag_io.read_messages(out_bag, replay.TOPIC_EMBEDDING)
    assert len(embeddings) == camera["embeddings"] == summary["messages_written"][replay.TOPIC_EMBEDDING]
    input_stamps = [f.stamp_ns for f in frames]
    stamps = [bag_io.stamp_to_ns(m.header.stamp) for _, m in embeddings]
    # Header stamps are copied from input frames, the bag time equals the stamp, and clips advance in order.
    assert set(stamps) <= set(input_stamps)
    assert [t for t, _ in embeddings] == stamps and stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    for _, message in embeddings:
        start = bag_io.stamp_to_ns(message.clip_start)
        assert start in input_stamps and message.num_frames == clip.frames
        # The clip spans T samples at the model rate: (T - 1) periods, within one camera frame of jitter.
        span_s = (bag_io.stamp_to_ns(message.header.stamp) - start) / 1e9
        assert span_s == pytest.approx((clip.frames - 1) / clip.frame_rate_hz, abs=1 / FPS)
        assert message.header.frame_id == "camera_optical_frame"
        assert message.camera == "camera" and message.kind == 1 and message.normalized
        assert np.linalg.norm(message.data) == pytest.approx(1.0, abs=1e-5)

    transitions = bag_io.read_messages(out_bag, replay.TOPIC_TRANSITION)
    assert len(transitions) == camera["transitions"] > 0
    for _, message in transitions:
        gap_s = (bag_io.stamp_to_ns(message.after_stamp) - bag_io.stamp_to_ns(message.before_stamp)) / 1e9
        assert gap_s == pytest.approx(2.0, abs=0.2)  # transition_horizon_s from config/vljepa.yaml
    captions = bag_io.read_messages(out_bag, replay.TOPIC_CAPTION)
    assert len(captions) == camera["captions_online"] >= 1
    assert captions[0][1].reason == 0  # REASON_FIRST
    segments = bag_io.read_messages(out_bag, replay.TOPIC_SEGMENT_CAPTION)
    assert len(segments) == camera["captions_offline_segments"] == len(captions)
    assert all(m.reason == 3 for _, m in segments)
    ((_, statistics),) = bag_io.read_messages(out_bag, replay.TOPIC_STATISTICS)
    # Every caption is a decode; a CONFIRM that repeated the caption already out is a decode without one.
    assert statistics.embeddings_seen == camera["embeddings"] and statistics.decodes >= len(captions)

    # The report can be rebuilt from the output bag alone (as the demo does for a live recording).
    (timeline,) = report.timelines_from_bags(out_bag, world_bag)
    assert timeline.camera == "camera" and len(timeline.embedding_stamps_ns) == camera["embeddings"]
    assert [c.stamp_ns for c in timeline.captions] == [bag_io.stamp_to_ns(m.header.stamp) for _, m in captions]
    assert set(timeline.thumbnails) == {c.stamp_ns for c in timeline.captions}
    assert len(timeline.segment_captions) == len(segments)

    written = json.loads((out / "summary.json").read_text())
    assert written["cameras"] == summary["cameras"]
    assert Path(summary["report"]).is_file() and (out / "report" / "timeline_camera.png").is_file()


def test_two_runs_give_byte_identical_bags(two_runs):
    (out_a, first), (out_b, second) = two_runs
    assert (out_a / "bag/bag.mcap").read_bytes() == (out_b / "bag/bag.mcap").read_bytes()
    ignored = ("timings", "output_bag", "report")
    assert {k: v for k, v in first.items() if k not in ignored} == {k: v for k, v in second.items() if k not in ignored}


def test_malformed_frames_are_counted_and_replay_continues(tmp_path, world_bag, model):
    store = bag_io.make_typestore()
    bag = tmp_path / "bad"
    frames = list(bag_io.read_camera_frames(world_bag))
    with bag_io.BagWriter(bag, storage="sqlite3", typestore=store) as writer:
        for i, frame in enumerate(frames):
            message = frame.message
            if i in (0, 13):  # sampled slots: the first frame, and one a few samples in
                message = store.deserialize_cdr(frame.raw, bag_io.IMAGE_TYPE)
                message.data = message.data[:100]
            writer.write(frame.topic, bag_io.IMAGE_TYPE, frame.bag_time_ns, message=message)
    summary = _run(bag, tmp_path / "out", model, "--no-report", "--storage", "sqlite3")
    camera = summary["cameras"]["camera"]
    assert camera["frames_by_fate"]["malformed.truncated"] == 2
    assert camera["unaccounted_frames"] == 0 and summary["all_frames_accounted"]
    assert camera["embeddings"] > 0
    assert len(bag_io.read_messages(tmp_path / "out" / "bag", replay.TOPIC_EMBEDDING)) == camera["embeddings"]


def test_config_errors_are_one_line(tmp_path, world_bag, model, capsys):
    assert replay.main([str(world_bag), "--out", str(tmp_path / "o"), "--model", str(tmp_path / "none.yaml")]) == 2
    assert "no model manifest" in capsys.readouterr().err
    assert replay.main([str(world_bag), "--out", str(tmp_path / "o"), "--model", str(model), "--topics", "/x"]) == 2
    assert "'/x' not in the bag" in capsys.readouterr().err


def test_parameters_map_like_the_nodes():
    pipeline = replay.pipeline_config_from_parameters({"frame_rate_hz": 0.0, "query": "", "stride": 2})
    assert pipeline.frame_rate_hz is None and pipeline.query is None and pipeline.stride == 2
    values = replay.detector_values_from_parameters({"threshold": 0.3, "bank_path": "x"})
    assert (
        values["threshold"] == 0.3 and "bank_path" not in values and values["window"] == ChangeDetectorConfig().window
    )
