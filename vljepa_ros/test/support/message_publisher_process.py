"""Publishes the sample messages from a separate process until killed (the other end of test_messages)."""

import sys
import time

import rclpy
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy

from support.message_samples import sample_messages


def main() -> None:
    rclpy.init()
    node = rclpy.create_node("vljepa_msgs_sample_publisher")
    qos = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE, durability=QoSDurabilityPolicy.VOLATILE)
    first = sample_messages(0)
    publishers = {key: node.create_publisher(type(msg), f"/vljepa_test/{key}", qos) for key, msg in first.items()}
    print("publisher ready", flush=True)
    seq = 0
    while rclpy.ok():
        for key, msg in sample_messages(seq).items():
            publishers[key].publish(msg)
        seq += 1
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
