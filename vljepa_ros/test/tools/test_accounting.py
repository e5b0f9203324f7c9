"""Accounting: in a replay every input frame is processed or reported with a reason; nothing vanishes.

The bag is built here with known contents (good frames, malformed frames of every kind, late frames), so each
count in the replay summary is compared with a number fixed by construction, and the output bag is checked
against the summary.
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from vljepa_ros.bags import bag_io
from vljepa_ros.nodes.ros_conversions import time_to_ns
from vljepa_ros.tools import replay

from support.perception_fixtures import moving_frame, tiny_random_manifest
from support.reliability_fixtures import (
    BagFrame,
    expected_counts,
    image_corpus,
    jpeg_fields,
    malformed_compressed,
    rgb8_fields,
    write_camera_bag,
)

MS = 1_000_000
RAW = "/acc_raw/image_raw"
JPEG = "/acc_jpeg/image_raw/compressed"
T0 = 5_000 * 1_000 * MS
CLIP_FRAMES = 8  # the tiny model's clip length


def build_bag(path):
    """Two cameras with good, malformed and late frames; returns what was written, by kind, per camera."""
    rng = np.random.default_rng(11)
    frames, bag_time = [], T0
    written = {"acc_raw": Counter(), "acc_jpeg": Counter()}
    good_stamps = {"acc_raw": set(), "acc_jpeg": set()}
    malformed = {"acc_raw": [], "acc_jpeg": []}

    def add(topic, stamp, fields, kind, camera):
        nonlocal bag_time
        bag_time += MS  # arrival order = bag order; header stamps may disagree (late frames)
        frames.append(BagFrame(topic, bag_time, stamp, fields))
        written[camera][kind] += 1

    raw_bad = iter(image_corpus(seed=3, count=40, malformed_fraction=1.0))
    for i in range(180):  # 6 s of a 30 Hz camera
        raw_stamp = T0 + i * 33 * MS
        add(RAW, raw_stamp, rgb8_fields(moving_frame(raw_stamp / 1e9)), "good", "acc_raw")
        good_stamps["acc_raw"].add(raw_stamp)
        if i > 30 and i % 4 == 0:
            bad = next(raw_bad, None)
            if bad is not None:
                add(RAW, raw_stamp + MS, bad, "malformed", "acc_raw")
                malformed["acc_raw"].append(bad)
        if i > 30 and i % 13 == 0:  # a frame that arrives half a second late
            add(RAW, raw_stamp - 500 * MS, rgb8_fields(moving_frame(0.0)), "late", "acc_raw")
    # The compressed camera runs at the model rate (4 Hz); a broken frame arrives 200 ms after some good ones,
    # due for sampling, so its payload is decoded (and rejected) and the next good frame keeps its slot.
    broken_after = set(rng.choice(np.arange(19), 15, replace=False).tolist())
    for i in range(20):
        stamp = T0 + i * 250 * MS
        add(JPEG, stamp, jpeg_fields(moving_frame(stamp / 1e9)), "good", "acc_jpeg")
        good_stamps["acc_jpeg"].add(stamp)
        if i in broken_after:
            bad = malformed_compressed(rng)
            add(JPEG, stamp + 200 * MS, bad, "malformed", "acc_jpeg")
            malformed["acc_jpeg"].append(bad)
    write_camera_bag(path, frames)
    return written, good_stamps, malformed


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    manifest = tiny_random_manifest(tmp_path_factory)
    root = tmp_path_factory.mktemp("accounting")
    written, good_stamps, malformed = build_bag(root / "input")
    code = replay.main(
        [
            str(root / "input"),
            "--out",
            str(root / "out"),
            "--model",
            str(manifest),
            "--topics",
            RAW,
            JPEG,
            "--no-report",
            "--quiet",
        ]
    )
    summary = json.loads((root / "out" / "summary.json").read_text())
    return code, summary, written, good_stamps, malformed, root / "out" / "bag"


def test_every_frame_read_has_exactly_one_fate(replayed):
    code, summary, written, _, _, _ = replayed
    assert code == 0 and summary["all_frames_accounted"]
    for camera, counts in written.items():
        account = summary["cameras"][camera]
        assert account["frames_read"] == sum(counts.values())
        assert sum(account["frames_by_fate"].values()) == account["frames_read"]
        assert account["unaccounted_frames"] == 0 and account["clip_drops"] == {}
    assert summary["frames_read"] == sum(sum(c.values()) for c in written.values())


def test_rejected_frames_are_reported_with_the_reason_they_were_made_with(replayed):
    _, summary, written, _, malformed, _ = replayed
    for camera in written:
        fates = summary["cameras"][camera]["frames_by_fate"]
        reported = Counter({k.split(".", 1)[1]: v for k, v in fates.items() if k.startswith("malformed.")})
        assert reported == expected_counts(malformed[camera]) and sum(reported.values()) == written[camera]["malformed"]
    assert summary["cameras"]["acc_raw"]["frames_by_fate"]["dropped.out_of_order"] == written["acc_raw"]["late"]
    assert "dropped.out_of_order" not in summary["cameras"]["acc_jpeg"]["frames_by_fate"]


def test_good_frames_are_sampled_or_skipped_by_rate_and_clips_match_samples(replayed):
    _, summary, written, _, _, _ = replayed
    raw = summary["cameras"]["acc_raw"]
    fates = raw["frames_by_fate"]
    assert fates["sampled"] + fates["skipped_by_frame_rate"] == written["acc_raw"]["good"]
    assert fates["sampled"] == pytest.approx(6.0 * 4.0, abs=2)  # 6 s at the model's 4 Hz
    jpeg = summary["cameras"]["acc_jpeg"]
    assert jpeg["frames_by_fate"]["sampled"] == written["acc_jpeg"]["good"]  # each in its own slot
    for account in (raw, jpeg):
        # stride 1: every sampled frame after the first full clip closes a clip, and every clip is published
        assert account["clips"] == account["embeddings"] == account["frames_by_fate"]["sampled"] - (CLIP_FRAMES - 1)


def test_output_bag_holds_what_the_summary_counts_stamped_with_good_input_frames(replayed):
    _, summary, _, good_stamps, _, bag = replayed
    store = bag_io.make_typestore()
    embeddings = bag_io.read_messages(bag, replay.TOPIC_EMBEDDING, store)
    per_camera = Counter(msg.camera for _, msg in embeddings)
    assert per_camera == {c: a["embeddings"] for c, a in summary["cameras"].items()}
    assert summary["messages_written"][replay.TOPIC_EMBEDDING] == len(embeddings)
    for _, msg in embeddings:
        assert time_to_ns(msg.header.stamp) in good_stamps[msg.camera]
        assert time_to_ns(msg.clip_start) in good_stamps[msg.camera]
