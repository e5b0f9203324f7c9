"""Hostile input against the node PROCESSES (issue #18): bombs by header, a real large PNG, thin frames of every
shape, stamps at and past the int32 limits, corrupt payloads between samples, and a flood of camera names on the
decoder. Each process stays alive, its memory stays under a stated bound, a good camera alongside keeps its
outputs, and /diagnostics accounts for every message sent, by reason.

The rig is support/hostile_rig.py (benchmarks/bench_hostile_input.py runs the same and writes the numbers).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from rclpy.serialization import deserialize_message, serialize_message

from vljepa_ros.nodes.ros_conversions import BAD_STAMP, check_stamp
from vljepa_ros.perception.image_conversion import ImageConversionError
from vljepa_ros.perception.thin_frame_crop import MAX_RESIZED_AREA_RATIO, is_thin, thin_frame_crop
from vljepa_ros.runtime.manifest import ClipSpec
from vljepa_ros.runtime.preprocessing import resize_and_crop

from support.hostile_inputs import INT32_MAX, INT32_MIN, real_png
from support.hostile_rig import (
    CLIP_FRAMES,
    DECODER_MAX_STREAMS,
    SAMPLED,
    SUBSAMPLED,
    run_decoder_flood,
    run_perception_fuzz,
)
from support.perception_fixtures import tiny_random_manifest

# Memory bounds over the process's own baseline, from the measured growth (docs/robustness.md) with margin: the
# perception node holds the reliable history of the largest frames (4 MiB each) and one decoded 1000x1000 PNG;
# the decoder holds at most max_streams streams.
PERCEPTION_PEAK_GROWTH_MB = 300
DECODER_PEAK_GROWTH_MB = 100
TINY_CLIP = ClipSpec(
    frames=8,
    frame_rate_hz=4.0,
    tubelet=2,
    patch=8,
    crop_size=64,
    resize_short=73,
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
)


@pytest.fixture(scope="session")
def large_png(tmp_path_factory) -> bytes:
    """A real 20000 x 20000 single-colour PNG (about 0.4 MB), encoded once per session and cached on disk."""
    path = tmp_path_factory.getbasetemp() / "large_20000.png"
    if not path.is_file():
        path.write_bytes(real_png(20_000, 20_000))
    return path.read_bytes()


# ----- the library: a thin frame is cropped without resizing it whole -----------------------------------------


def test_thin_frame_crop_matches_resize_and_crop_within_one_grey_level():
    rng = np.random.default_rng(0)
    for height, width in ((1, 120), (120, 1), (3, 500), (500, 3), (7, 4000), (2, 10_000)):
        frame = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        assert is_thin(height, width, TINY_CLIP), (height, width)
        crop = thin_frame_crop(frame, TINY_CLIP)
        expected = resize_and_crop(frame, TINY_CLIP)
        assert crop.shape == expected.shape == (64, 64, 3) and crop.dtype == np.uint8
        assert int(np.abs(crop.astype(int) - expected.astype(int)).max()) <= 1, (height, width)
        assert crop.base is None or crop.base.nbytes == crop.nbytes  # never a view of something larger


def test_camera_aspect_ratios_keep_the_exact_resize():
    for height, width in ((480, 640), (1080, 1920), (2160, 3840), (1200, 3840), (300, 3000)):
        assert not is_thin(height, width, TINY_CLIP) and not is_thin(width, height, TINY_CLIP), (height, width)
    assert MAX_RESIZED_AREA_RATIO >= 4


def test_a_million_pixel_thin_frame_is_cropped_in_crop_sized_memory():
    frame = np.full((1, 2**20, 3), 77, np.uint8)  # resized whole it would be 73 x 76.5 M pixels (16 GiB)
    crop = thin_frame_crop(frame, TINY_CLIP)
    assert crop.shape == (64, 64, 3) and (crop == 77).all()
    assert (thin_frame_crop(np.ascontiguousarray(frame.transpose(1, 0, 2)), TINY_CLIP) == 77).all()


def test_a_stamp_second_past_int32_never_reaches_a_node_and_is_refused_in_process():
    # builtin_interfaces/Time.sec is an int32 on the wire: rclpy serialises 2^31 and beyond truncated to 32 bits,
    # so a subscriber always sees an in-range sec (2^31 arrives as -2^31) and only nanosec can be out of range
    # there (malformed.bad_stamp, sent by the process fuzz). In-process callers get the sec range checked.
    for sec, arrives in ((INT32_MAX + 1, INT32_MIN), (2**40, 0), (INT32_MIN - 1, INT32_MAX)):
        assert deserialize_message(serialize_message(Time(sec=sec)), Time).sec == arrives
        with pytest.raises(ImageConversionError) as refused:
            check_stamp(Time(sec=sec))
        assert refused.value.reason == BAD_STAMP
    for sec in (INT32_MIN, INT32_MAX):
        check_stamp(Time(sec=sec, nanosec=999_999_999))


# ----- the processes -----------------------------------------------------------------------------------------


def _reported(values: dict[str, str]) -> Counter:
    counts = Counter({k: int(v) for k, v in values.items() if k.startswith("malformed.") and int(v)})
    for key, outcome in (("frames_sampled", SAMPLED), ("frames_subsampled", SUBSAMPLED)):
        if int(values[key]):
            counts[outcome] = int(values[key])
    for key in ("drops.out_of_order", "drops.disabled"):
        if int(values[key]):
            counts[key] = int(values[key])
    return counts


@pytest.mark.ros
def test_perception_process_survives_hostile_frames_and_accounts_for_every_one(
    ros, tmp_path_factory, tmp_path, large_png
):
    manifest = str(tiny_random_manifest(tmp_path_factory))
    result = run_perception_fuzz(manifest, tmp_path / "perception_node.log", large_png)
    assert result["alive_at_end"] and result["returncode"] == 0, (tmp_path / "perception_node.log").read_text()[-3000:]

    for camera, sent in result["sent"].items():
        values = result["counted"][camera]
        # Every message landed in exactly one counter, the one its construction says.
        assert _reported(values) == +sent["by_outcome"], camera
        assert int(values["frames_received"]) == sum(sent["by_category"].values()), camera
        assert int(values["malformed_total"]) == sum(
            n for outcome, n in sent["by_outcome"].items() if outcome.startswith("malformed.")
        ), camera
    assert result["sent"]["raw"]["by_outcome"]["malformed.too_many_pixels"] == 4
    assert result["sent"]["jpeg"]["by_outcome"]["malformed.too_many_pixels"] >= 12

    good = result["counted"]["good"]
    assert int(good["drops_total"]) == 0 and int(good["malformed_total"]) == 0
    assert int(good["clips_published"]) == result["expected_good_clips"]
    by_camera = Counter(e.camera for e in result["embeddings"])
    assert by_camera["good"] >= result["expected_good_clips"]

    # Stamps at the int32 limits are carried field for field.
    stamps = {
        e.camera: ((e.header.stamp.sec, e.header.stamp.nanosec), (e.clip_start.sec, e.clip_start.nanosec))
        for e in result["embeddings"]
        if e.camera.startswith("stamp_")
    }
    last = (CLIP_FRAMES - 1) * 100_000_000
    assert stamps == {
        "stamp_min": ((INT32_MIN, last), (INT32_MIN, 0)),
        "stamp_max": ((INT32_MAX, 999_999_999), (INT32_MAX, 999_999_999 - last)),
    }

    memory = result["memory_mb"]
    assert memory["peak_rss"] < memory["before_rss"] + PERCEPTION_PEAK_GROWTH_MB, memory


@pytest.mark.ros
def test_decoder_process_bounds_a_flood_of_camera_names_and_counts_every_embedding(ros, tmp_path):
    result = run_decoder_flood(tmp_path / "decoder_node.log", names=3000)
    assert result["alive_at_end"] and result["returncode"] == 0, (tmp_path / "decoder_node.log").read_text()[-3000:]
    values = result["counted"]
    sent = result["sent"]
    assert int(values["lost_in_transport"]) == 0 and int(values["dds_message_lost"]) == 0
    assert int(values["embeddings_received"]) == sent["flood"] + sent["good"]
    # Each flood name sent once: refused, or admitted and then expired, or still held.
    held_flood_streams = int(values["cameras"]) - 1
    assert int(values["streams_full"]) + int(values["streams_expired"]) + held_flood_streams == sent["flood"], values
    assert int(values["streams_expired"]) > 0 and int(values["streams_full"]) > 0
    assert result["most_streams_reported"] <= DECODER_MAX_STREAMS
    assert result["most_camera_statuses_in_one_array"] <= DECODER_MAX_STREAMS

    good = result["good_camera"]
    assert int(good["embeddings_seen"]) == sent["good"], good
    assert len(result["good_captions"]) >= 2  # the first caption and at least one change

    memory = result["memory_mb"]
    assert memory["peak_rss"] < memory["before_rss"] + DECODER_PEAK_GROWTH_MB, memory
