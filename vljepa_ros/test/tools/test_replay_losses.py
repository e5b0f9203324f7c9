"""replay and a fleet worker when something is lost: a bag cut short (finished, input incomplete: exit 3) and
clips lost to inference (exit 4, said on stderr even with --quiet; a fleet worker marks the bag failed, never
done, so a rerun retries it)."""

import json

import pytest

from vljepa_ros.runtime.vljepa_runtime import VLJepaRuntime
from vljepa_ros.tools import fleet_replay, replay

from support.damaged_bags import cut_copy, world_bag
from support.perception_fixtures import tiny_random_manifest


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_random_manifest(tmp_path_factory)


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    return world_bag(tmp_path_factory.mktemp("world") / "bag")


@pytest.fixture
def failing_second_encode(monkeypatch):
    """The model's encoder raises on its second call, as a GPU out of memory or a bad driver would."""
    calls = []
    encode = VLJepaRuntime.encode

    def flaky(self, clips):
        calls.append(len(clips))
        if len(calls) == 2:
            raise RuntimeError("onnxruntime: CUDA failure 2: out of memory")
        return encode(self, clips)

    monkeypatch.setattr(VLJepaRuntime, "encode", flaky)
    return calls


def _main(bag, out, model, capsys):
    code = replay.main([str(bag), "--out", str(out), "--model", str(model), "--no-report", "--quiet"])
    return code, capsys.readouterr(), json.loads((out / "summary.json").read_text())


def test_a_cut_short_bag_is_replayed_up_to_the_cut_and_says_so(bag, model, tmp_path, capsys):
    code, whole_output, whole = _main(bag, tmp_path / "whole", model, capsys)
    assert code == replay.EXIT_OK and whole["input"]["complete"] and whole_output.err == ""
    cut_bag, _ = cut_copy(bag, tmp_path / "cut", ".mcap", 0.6)
    code, output, summary = _main(cut_bag, tmp_path / "out", model, capsys)
    assert code == replay.EXIT_INPUT_INCOMPLETE
    incoming = summary["input"]
    assert not incoming["complete"] and "ends inside a record" in incoming["problem"]
    assert 0 < incoming["messages_read"] == summary["frames_read"] < whole["frames_read"]
    assert incoming["last_good_stamp_ns"] is not None
    assert "input bag cut short" in output.err and str(incoming["last_good_stamp_ns"]) in output.err
    camera = summary["cameras"]["camera"]
    assert 0 < camera["embeddings"] < whole["cameras"]["camera"]["embeddings"]
    assert summary["all_frames_accounted"]


def test_clips_lost_to_inference_exit_non_zero_and_say_so_under_quiet(
    bag, model, tmp_path, capsys, failing_second_encode
):
    code, output, summary = _main(bag, tmp_path / "out", model, capsys)
    assert len(failing_second_encode) > 2  # replay went on after the failure
    lost = summary["cameras"]["camera"]["clip_drops"]["inference_error"]
    assert code == replay.EXIT_INFERENCE_LOST and summary["clips_lost_to_inference"] == lost > 0
    assert f"{lost} clip(s) lost to inference" in output.err and "out of memory" in output.err
    assert summary["inference_errors"] == [repr(RuntimeError("onnxruntime: CUDA failure 2: out of memory"))]


def test_a_fleet_worker_never_marks_a_bag_with_lost_clips_done(
    bag, model, tmp_path, monkeypatch, failing_second_encode
):
    """The worker Ray runs, in this process so that the encoder can fail: the bag is failed (no done marker,
    nothing indexed); once the encoder works, the same worker replays it and marks it done."""
    args = fleet_replay.build_parser().parse_args(["--out", str(tmp_path), "--no-report", "--model", str(model)])
    worker = fleet_replay.BagWorker(fleet_replay.options_from_args(args), 0)
    outcome = worker.replay_bag(str(bag), "bag")
    assert outcome["status"] == "failed" and "lost to inference" in outcome["reason"]
    assert not (tmp_path / "bags/bag" / fleet_replay.DONE_FILE).exists() and len(worker.index) == 0
    assert json.loads((tmp_path / "bags/bag" / fleet_replay.FAILED_FILE).read_text())["status"] == "failed"
    monkeypatch.undo()  # the encoder works again
    again = worker.replay_bag(str(bag), "bag")
    assert again["status"] == "done" and again["clips"] == len(worker.index) > 0


def test_replay_refuses_a_camera_name_over_the_limit(bag, model, tmp_path, capsys):
    argv = [str(bag), "--out", str(tmp_path / "out"), "--model", str(model), "--camera-names", "c" * 257]
    assert replay.main(argv) == replay.EXIT_REFUSED
    assert "'camera_names': entry 0 gives a camera name of 257 bytes" in capsys.readouterr().err
