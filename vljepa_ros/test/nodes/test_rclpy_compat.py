"""The rclpy seam (nodes/rclpy_compat.py) against the rclpy it runs on: a real two-argument subscription callback gets
the message info the seam describes, on Jazzy (no publisher GID) and on Kilted (with it)."""

import pytest
from rclpy.executors import SingleThreadedExecutor
from std_msgs.msg import String

from vljepa_ros.nodes.rclpy_compat import (
    MESSAGE_INFO_HAS_PUBLISHER_GID,
    MessageInfo,
    publication_sequence_number,
    publisher_gid,
)

from support.rig_fixtures import spin_executor_until

pytestmark = pytest.mark.ros


def test_gid_and_sequence_number_from_an_info_dict_or_none():
    info = {"publisher_gid": {"implementation_identifier": "x", "data": [1, 2, 3]}, "publication_sequence_number": 7}
    assert publisher_gid(info) == b"\x01\x02\x03" and publication_sequence_number(info) == 7
    assert publisher_gid({}) is None and publication_sequence_number({}) is None


def test_a_two_argument_callback_gets_the_info_the_seam_describes(ros):
    import rclpy

    node = rclpy.create_node("vljepa_rclpy_compat_test")
    received: list[tuple[str, MessageInfo]] = []
    node.create_subscription(String, "~/probe", lambda msg, info: received.append((msg.data, info)), 10)
    publisher = node.create_publisher(String, "~/probe", 10)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        spin_executor_until(executor, lambda: publisher.get_subscription_count() == 1, 30.0, "the match")
        for text in ("first", "second"):
            publisher.publish(String(data=text))
        spin_executor_until(executor, lambda: len(received) == 2, 30.0, "both messages")
    finally:
        executor.shutdown()
        node.destroy_node()
    (_, first), (_, second) = received
    assert [text for text, _ in received] == ["first", "second"]
    assert publication_sequence_number(second) == publication_sequence_number(first) + 1
    gids = {publisher_gid(first), publisher_gid(second)}
    if MESSAGE_INFO_HAS_PUBLISHER_GID:
        assert len(gids) == 1 and None not in gids and len(gids.pop()) > 0
    else:
        assert gids == {None} and "publisher_gid" not in first
