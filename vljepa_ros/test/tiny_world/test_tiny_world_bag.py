"""Tiny-world streams written as ROS 2 bags read back with rosbags (mcap and sqlite3) and by the CLI."""

import json

import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from vljepa_ros.bags.bag_io import read_camera_frames
from vljepa_ros.tiny_world import cli
from vljepa_ros.tiny_world.bag_writer import (
    GROUND_TRUTH_TOPIC,
    IMAGE_TOPIC,
    read_ground_truth,
    write_stream_bag,
)
from vljepa_ros.tiny_world.stream import StreamConfig, generate_stream


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_round_trip_keeps_frames_stamps_and_ground_truth(tmp_path, storage):
    stream = generate_stream(StreamConfig(seed=1, duration_s=20.0, fps=2.0, width=64, height=48))
    bag = tmp_path / "world"
    truth = write_stream_bag(stream, bag, storage=storage)

    typestore = get_typestore(Stores.ROS2_KILTED)
    images, captions = [], []
    with Reader(bag) as reader:
        assert reader.topics[IMAGE_TOPIC].msgtype == "sensor_msgs/msg/Image"
        for connection, bag_time_ns, raw in reader.messages():
            message = typestore.deserialize_cdr(raw, connection.msgtype)
            if connection.topic == IMAGE_TOPIC:
                images.append((bag_time_ns, message))
            else:
                assert connection.topic == GROUND_TRUTH_TOPIC
                captions.append((bag_time_ns, message.data))

    assert len(images) == stream.config.frame_count == 40
    for index, (bag_time_ns, message) in enumerate(images):
        stamp_ns = message.header.stamp.sec * 1_000_000_000 + message.header.stamp.nanosec
        assert stamp_ns == bag_time_ns == stream.stamp_ns(index)
        assert message.encoding == "rgb8" and (message.height, message.width) == (48, 64)
        assert message.step == 64 * 3
        pixels = np.frombuffer(bytes(message.data), np.uint8).reshape(48, 64, 3)
        assert np.array_equal(pixels, stream.frame(index))

    assert [text for _, text in captions] == [s["caption"] for s in truth["segments"]][: len(captions)]
    assert len(captions) >= 2
    assert read_ground_truth(bag) == json.loads(json.dumps(truth))
    assert read_ground_truth(bag)["image_topic"] == IMAGE_TOPIC


def test_bag_is_readable_by_the_projects_bag_reader(tmp_path):
    stream = generate_stream(StreamConfig(seed=2, duration_s=3.0, fps=2.0, width=64, height=48))
    write_stream_bag(stream, tmp_path / "world")
    frames = list(read_camera_frames(tmp_path / "world"))
    assert [f.stamp_ns for f in frames] == [stream.stamp_ns(i) for i in range(6)]
    assert {f.topic for f in frames} == {IMAGE_TOPIC}


def test_cli_writes_a_bag_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "cli_bag"
    args = [
        "--out",
        str(out),
        "--seed",
        "3",
        "--duration",
        "12",
        "--fps",
        "2",
        "--width",
        "64",
        "--height",
        "48",
        "--storage",
        "sqlite3",
    ]
    assert cli.main(args) == 0
    assert read_ground_truth(out)["frame_count"] == 24
    assert cli.main(args) == 2
    assert "already exists" in capsys.readouterr().err


def test_cli_lists_the_closed_vocabulary(capsys):
    assert cli.main(["--list", "actions"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "the lights turn off" in lines and len(lines) == len(set(lines)) > 100
