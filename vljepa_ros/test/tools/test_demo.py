"""demo: the README's run command end to end (real nodes in their own process, live replay over DDS)."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import yaml

from vljepa_ros.bags import bag_io

from support.perception_fixtures import tiny_random_manifest

pytestmark = pytest.mark.ros


def test_demo_runs_the_nodes_and_reports(tmp_path, tmp_path_factory):
    model = tiny_random_manifest(tmp_path_factory)
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    result = subprocess.run(
        # Seed 3 changes its scene at 3.9 s, inside this short stream. 10 s, not less: the first caption needs a
        # full clip (2 s) plus the decoder's window of embeddings, later still when a loaded machine drops clips.
        [
            sys.executable,
            "-m",
            "vljepa_ros.tools.demo",
            "--model",
            str(model),
            "--duration",
            "10",
            "--seed",
            "3",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    assert "nodes up" in out and "vljepa-tiny-random" in out
    # Captions are printed as they are published, with the ground-truth comparison after the run.
    assert re.search(r"\[caption\] t=\s*[\d.]+ s  camera: \".+\"  \(first", out)
    assert "true changes vs captions" in out and "selective vs" in out
    assert re.search(r"caption in effect was right \d+% of the \d+ s with embeddings; uniform 1 Hz .*: \d+%", out)

    recorded = tmp_path / "run" / "outputs_bag"
    assert f"output bag: {recorded}" in out
    embeddings = bag_io.read_messages(recorded, "/vljepa_perception/embedding")
    captions = bag_io.read_messages(recorded, "/vljepa_decoder/caption")
    printed = re.findall(r"\[caption\]", out)
    assert len(embeddings) > 0 and len(captions) == len(printed) >= 1
    frames = {f.stamp_ns for f in bag_io.read_camera_frames(tmp_path / "tiny_world_seed3_10s")}
    assert {bag_io.stamp_to_ns(m.header.stamp) for _, m in embeddings} <= frames
    assert (tmp_path / "run" / "report" / "index.html").is_file()
    assert (tmp_path / "run" / "report" / "timeline_camera.png").is_file()


@pytest.mark.slow
def test_live_nodes_and_offline_replay_agree(tmp_path):
    """The demo's live run (nodes over DDS at 1x) and `replay` (same core, no DDS) caption the same moments."""
    from vljepa_ros.tools import replay
    from vljepa_ros.tools.params_file import default_params_file

    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    # Reliable camera input: with the default best-effort subscription, DDS may lose a frame on a loaded
    # machine, and the sampler then builds that clip from the next frame, off the offline grid.
    params = yaml.safe_load(default_params_file().read_text())
    params["/**/vljepa_perception"]["ros__parameters"]["input_qos"] = "DEFAULT"
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "vljepa_ros.tools.demo",
            "--duration",
            "25",
            "--out",
            str(tmp_path),
            "--params-file",
            str(params_file),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    bag = tmp_path / "tiny_world_seed0_25s"
    args = replay.build_parser().parse_args([str(bag), "--out", str(tmp_path / "offline"), "--quiet", "--no-report"])
    replay.run_replay(replay.config_from_args(args), log=lambda *_: None)

    def embeddings(path):
        return {
            bag_io.stamp_to_ns(m.header.stamp): np.asarray(m.data)
            for _, m in bag_io.read_messages(path, "/vljepa_perception/embedding")
        }

    live, offline = embeddings(tmp_path / "run" / "outputs_bag"), embeddings(tmp_path / "offline" / "bag")
    # Live, the keep-latest queue may drop clips when the machine is busy; offline nothing is dropped. Every
    # live clip is on the offline sampling grid and its vector is the offline one (ONNX Runtime's float
    # results vary slightly with the batch a clip was run in).
    assert len(live) >= 0.5 * len(offline) and set(live) <= set(offline)
    for stamp, vector in live.items():
        np.testing.assert_allclose(vector, offline[stamp], atol=2e-3)
    live_captions = bag_io.read_messages(tmp_path / "run" / "outputs_bag", "/vljepa_decoder/caption")
    offline_captions = bag_io.read_messages(tmp_path / "offline" / "bag", "/vljepa_decoder/caption")
    assert live_captions and offline_captions
    assert live_captions[0][1].text == offline_captions[0][1].text


def test_a_change_is_answered_by_the_caption_in_effect_at_the_end_of_its_window():
    from vljepa_msgs.msg import Caption
    from vljepa_ros.tools.demo import match_changes

    def caption(t_s, text, reason):
        msg = Caption(text=text, reason=reason)
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(t_s * 1e9), 1_000_000_000)
        return msg

    truth = {
        "segments": [
            {"start_ns": 0, "start_s": 0.0, "caption": "A"},
            {"start_ns": 10_000_000_000, "start_s": 10.0, "caption": "B"},
            {"start_ns": 20_000_000_000, "start_s": 20.0, "caption": "C"},
        ]
    }
    captions = [
        caption(1.0, "A", Caption.REASON_FIRST),
        caption(10.5, "X", Caption.REASON_CHANGE),  # provisional, wrong
        caption(11.5, "B", Caption.REASON_CONFIRM),  # corrected within the window
        caption(20.5, "C", Caption.REASON_CHANGE),
        caption(21.5, "Y", Caption.REASON_CONFIRM),  # a right caption spoiled: wrong in effect
    ]
    rows = match_changes(truth, captions, window_s=3.0)
    assert [(r["text"], r["correct"], r["first_s"], r["caption_s"]) for r in rows] == [
        ("B", True, 10.5, 11.5),
        ("Y", False, 20.5, 21.5),
    ]


def test_answer_window_refuses_a_bad_decoder_parameter_by_name(tmp_path):
    from vljepa_ros.perception.config import ConfigError
    from vljepa_ros.tools.demo import DemoOptions, answer_window_s

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"vljepa_decoder": {"ros__parameters": {"drift_floor": 3.0}}}))
    with pytest.raises(ConfigError) as refused:
        answer_window_s(DemoOptions(out_dir=tmp_path, params_file=params))
    assert refused.value.parameter == "drift_floor"


def test_in_effect_shares_scores_the_live_captions_and_uniform_decoding_over_time():
    from vljepa_msgs.msg import Caption, Embedding
    from vljepa_ros.decoding.decoders import RetrievalDecoder
    from vljepa_ros.runtime.bundled_model import bundled_manifest_path
    from vljepa_ros.runtime.manifest import load_manifest
    from vljepa_ros.runtime.text_bank import TextBank
    from vljepa_ros.tools.demo import in_effect_shares

    bank = TextBank.load(load_manifest(bundled_manifest_path(), check_files=False).banks["captions"])
    a, b = bank.texts[0], bank.texts[1]

    def stamped(msg, t_s):
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(int(round(t_s * 1e9)), 1_000_000_000)
        return msg

    # The scene turns from A to B at 5.5 s and the embeddings follow at 5.75 s (every 0.25 s over 10 s).
    embeddings = [
        stamped(Embedding(kind=1, data=bank.embeddings[0 if k * 0.25 < 5.75 else 1].tolist()), k * 0.25)
        for k in range(41)
    ]
    truth = {"segments": [{"start_ns": 0, "end_ns": 5_500_000_000, "caption": a}]}
    truth["segments"].append({"start_ns": 5_500_000_000, "end_ns": 10_000_000_000, "caption": b})
    captions = [
        stamped(Caption(text=b, reason=Caption.REASON_CHANGE), 5.75),
        stamped(Caption(text=a, reason=Caption.REASON_FIRST), 0.0),  # arrival order is not stamp order
    ]
    shares = in_effect_shares(truth, captions, embeddings, RetrievalDecoder(bank))
    # Live: stale from 5.5 s to 5.75 s. Uniform 1 Hz: its 6 s tick is the first to see B.
    assert shares["selective_live"] == pytest.approx(9.75 / 10)
    assert shares["uniform_1hz"] == pytest.approx(9.5 / 10)
    assert shares["seconds"] == pytest.approx(10.0)
