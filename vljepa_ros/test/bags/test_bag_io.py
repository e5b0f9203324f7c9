"""bag_io: camera frames and vljepa_msgs round-trip through real mcap and sqlite3 bags."""

import cv2
import numpy as np
import pytest
from rosbags.rosbag2 import Reader

from vljepa_ros.bags import bag_io


def _rgb(value, shape=(6, 8)):
    image = np.zeros((*shape, 3), np.uint8)
    image[..., 0] = value
    image[..., 1] = np.arange(shape[1], dtype=np.uint8)[None, :]
    return image


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_camera_frames_round_trip_in_bag_time_order(tmp_path, storage):
    store = bag_io.make_typestore()
    path = tmp_path / "in"
    # Two cameras interleaved, written out of per-topic order on purpose: the reader must merge by bag time.
    plan = [("/cam_b/image_raw", 300, 3), ("/cam_a/image_raw", 100, 1), ("/cam_a/image_raw", 200, 2)]
    with bag_io.BagWriter(path, storage=storage, typestore=store) as writer:
        for topic, t, value in plan:
            message = bag_io.make_image_message(store, _rgb(value), stamp_ns=5_000_000_000 + t, frame_id=topic[1:6])
            writer.write(topic, bag_io.IMAGE_TYPE, t, message=message)
        jpeg = cv2.imencode(".jpg", _rgb(9))[1].reshape(-1)
        header = store.types["std_msgs/msg/Header"](
            stamp=store.types["builtin_interfaces/msg/Time"](sec=7, nanosec=5), frame_id="cam_c"
        )
        compressed = store.types[bag_io.COMPRESSED_IMAGE_TYPE](header=header, format="jpeg", data=jpeg)
        writer.write("/cam_c/compressed", bag_io.COMPRESSED_IMAGE_TYPE, 250, message=compressed)
        writer.write("/other", "std_msgs/msg/String", 260, message=store.types["std_msgs/msg/String"](data="x"))

    assert bag_io.camera_topics(path) == ["/cam_a/image_raw", "/cam_b/image_raw", "/cam_c/compressed"]
    frames = list(bag_io.read_camera_frames(path))
    assert [f.bag_time_ns for f in frames] == [100, 200, 250, 300]
    assert [f.topic for f in frames] == [
        "/cam_a/image_raw",
        "/cam_a/image_raw",
        "/cam_c/compressed",
        "/cam_b/image_raw",
    ]
    assert frames[0].stamp_ns == 5_000_000_100 and frames[0].frame_id == "cam_a"
    pixels = np.frombuffer(frames[1].message.data, np.uint8).reshape(6, 8, 3)
    np.testing.assert_array_equal(pixels, _rgb(2))
    assert frames[2].is_compressed and frames[2].stamp_ns == 7_000_000_005
    np.testing.assert_array_equal(frames[2].message.data, jpeg)
    # raw is the CDR as stored, so a live replay can publish it unchanged.
    assert store.deserialize_cdr(frames[3].raw, bag_io.IMAGE_TYPE).header.frame_id == "cam_b"

    only_a = list(bag_io.read_camera_frames(path, topics=["/cam_a/image_raw"]))
    assert [f.bag_time_ns for f in only_a] == [100, 200]


def test_vljepa_messages_are_registered_with_full_definitions(tmp_path):
    store = bag_io.make_typestore()
    types = store.types
    path = tmp_path / "out"
    sec, nanosec = bag_io.ns_to_sec_nanosec(12_345_678_901)
    header = types["std_msgs/msg/Header"](
        stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id="cam"
    )
    time0 = types["builtin_interfaces/msg/Time"](sec=12, nanosec=0)
    embedding = types["vljepa_msgs/msg/Embedding"](
        header=header,
        kind=1,
        camera="front",
        model_id="m",
        model_version="v",
        query="describe the scene",
        clip_start=time0,
        num_frames=8,
        shape=np.array([3], np.uint32),
        normalized=True,
        data=np.array([0.6, 0.8, 0.0], np.float32),
    )
    with bag_io.BagWriter(path, typestore=store) as writer:
        writer.add_topic("/vljepa/caption", "vljepa_msgs/msg/Caption")
        writer.write("/vljepa/embedding", "vljepa_msgs/msg/Embedding", 12_345_678_901, message=embedding)
        with pytest.raises(bag_io.BagError, match="already has type"):
            writer.add_topic("/vljepa/embedding", "vljepa_msgs/msg/Caption")
    assert writer.counts == {"/vljepa/caption": 0, "/vljepa/embedding": 1}

    # A reader with a stock typestore learns the custom type from the definition stored in the bag itself,
    # which is what `ros2 bag` on a robot relies on.
    with Reader(path) as reader:
        connection = next(c for c in reader.connections if c.topic == "/vljepa/embedding")
        assert "float32[] data" in connection.msgdef.data
        assert connection.digest.startswith("RIHS01_")
        assert "/vljepa/caption" in reader.topics
    ((bag_time, back),) = bag_io.read_messages(path, "/vljepa/embedding")
    assert bag_time == 12_345_678_901
    assert bag_io.stamp_to_ns(back.header.stamp) == 12_345_678_901
    assert back.camera == "front" and back.query == "describe the scene"
    np.testing.assert_array_equal(back.data, np.array([0.6, 0.8, 0.0], np.float32))


def test_errors_name_the_problem(tmp_path):
    store = bag_io.make_typestore()
    path = tmp_path / "in"
    with bag_io.BagWriter(path, typestore=store) as writer:
        writer.write("/s", "std_msgs/msg/String", 1, message=store.types["std_msgs/msg/String"](data="x"))
    with pytest.raises(bag_io.BagError, match="no sensor_msgs/Image"):
        list(bag_io.read_camera_frames(path))
    with pytest.raises(bag_io.BagError, match="'/cam' not in the bag"):
        list(bag_io.read_camera_frames(path, topics=["/cam"]))
    with pytest.raises(bag_io.BagError, match="not an image"):
        list(bag_io.read_camera_frames(path, topics=["/s"]))
    with pytest.raises(bag_io.BagError, match="already exists"):
        bag_io.BagWriter(path)
    with pytest.raises(bag_io.BagError, match="does not exist"):
        list(bag_io.read_camera_frames(tmp_path / "missing"))
    with pytest.raises(bag_io.BagError, match="storage must be"):
        bag_io.BagWriter(tmp_path / "x", storage="rosbag1")


def test_ns_conversion_handles_negative_and_rollover():
    assert bag_io.ns_to_sec_nanosec(1_999_999_999) == (1, 999_999_999)
    assert bag_io.ns_to_sec_nanosec(-1) == (-1, 999_999_999)


def test_msg_dir_is_found():
    assert (bag_io.find_msg_dir() / "Caption.msg").is_file()
