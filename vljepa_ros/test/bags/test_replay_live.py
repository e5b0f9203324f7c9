"""live_replay + recorder over real DDS: every frame arrives byte-identical, in order, with the bag's /clock."""

import threading
import time

import numpy as np
import pytest

from vljepa_ros.bags import bag_io
from vljepa_ros.bags.live_replay import LiveReplayConfig, LiveReplayer, build_parser, config_from_args
from vljepa_ros.bags.recorder import TopicRecorder

pytestmark = pytest.mark.ros


def _write_bag(path, count=12, period_ns=50_000_000, t0=1_700_000_000_000_000_000):
    store = bag_io.make_typestore()
    with bag_io.BagWriter(path, typestore=store) as writer:
        for i in range(count):
            rgb = np.full((4, 6, 3), i, np.uint8)
            t = t0 + i * period_ns
            writer.write(
                "/cam/image_raw", bag_io.IMAGE_TYPE, t, message=bag_io.make_image_message(store, rgb, t, "cam")
            )
    return [f for f in bag_io.read_camera_frames(path)]


def test_frames_and_clock_arrive_in_order(tmp_path):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    frames = _write_bag(tmp_path / "in")
    rclpy.init()
    try:
        recorder = TopicRecorder(
            tmp_path / "rec", [("/test/image", bag_io.IMAGE_TYPE), ("/clock", "rosgraph_msgs/msg/Clock")]
        )
        executor = SingleThreadedExecutor()
        executor.add_node(recorder.node)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        config = LiveReplayConfig(
            bag=tmp_path / "in", remap=(("/cam/image_raw", "/test/image"),), rate=4.0, wait_for_subscribers_s=10.0
        )
        replayer = LiveReplayer(config)
        stats = replayer.run()
        deadline = time.monotonic() + 10
        while recorder.counts["/test/image"] < len(frames) and time.monotonic() < deadline:
            time.sleep(0.05)
        executor.shutdown()
        spinner.join(timeout=5)
        counts = recorder.close()
        replayer.destroy()
    finally:
        rclpy.try_shutdown()

    assert stats.published == {"/test/image": len(frames)}
    assert stats.subscribers_at_start == {"/test/image": 1}
    assert stats.bag_seconds == pytest.approx(0.55)
    assert counts["/test/image"] == len(frames)
    recorded = bag_io.read_messages(tmp_path / "rec", "/test/image")
    assert [bag_io.stamp_to_ns(m.header.stamp) for _, m in recorded] == [f.stamp_ns for f in frames]
    assert [bytes(m.data[:1]) for _, m in recorded] == [bytes([i]) for i in range(len(frames))]
    clock = [bag_io.stamp_to_ns(m.clock) for _, m in bag_io.read_messages(tmp_path / "rec", "/clock")]
    assert min(clock) >= frames[0].bag_time_ns
    assert max(clock) == frames[-1].bag_time_ns
    assert all(b >= a for a, b in zip(clock, clock[1:]))


def test_config_errors_name_the_option(tmp_path):
    with pytest.raises(ValueError, match="rate"):
        LiveReplayConfig(bag=tmp_path, rate=0)
    with pytest.raises(ValueError, match="absolute topic names"):
        LiveReplayConfig(bag=tmp_path, remap=(("cam", "/b"),))
    args = build_parser().parse_args([str(tmp_path), "--remap", "/a", "/b", "--remap", "/c", "/d", "--rate", "2"])
    assert config_from_args(args).remap == (("/a", "/b"), ("/c", "/d"))
