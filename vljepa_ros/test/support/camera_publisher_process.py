"""A camera driver stand-in, run as its own process: best-effort (SENSOR_DATA) rgb8 frames at a fixed rate with
live stamps, a bounded number of them; prints one JSON line (frames sent, their stamps) when done.

    python camera_publisher_process.py --topic /cam/image_raw --frames 150 --rate 30 --width 640 --height 480
"""

import argparse
import json
import sys
import time

import numpy as np
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topic", required=True)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--match-timeout", type=float, default=30.0, help="wait for a subscriber, s")
    args = parser.parse_args()

    rclpy.init()
    node = rclpy.create_node("vljepa_test_camera")
    publisher = node.create_publisher(Image, args.topic, qos_profile_sensor_data)
    pixels = np.random.default_rng(0).integers(0, 256, (args.height, args.width, 3), dtype=np.uint8)
    msg = Image(height=args.height, width=args.width, encoding="rgb8", step=args.width * 3, data=pixels.tobytes())
    msg.header.frame_id = "camera"
    deadline = time.monotonic() + args.match_timeout
    while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    matched = publisher.get_subscription_count() > 0
    time.sleep(1.0)  # the reader side matches this writer a moment after the writer matched the reader
    stamps = []
    period = 1.0 / args.rate
    start = due = time.monotonic()
    for _ in range(args.frames):
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        captured = time.monotonic()
        stamp_ns = time.time_ns()  # a live camera stamps at capture
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        publisher.publish(msg)
        stamps.append(stamp_ns)
        # A camera that fell behind (a starved process) does not catch up in a burst: captures stay at least one
        # period apart, so the stamps span the time the tests count clips over.
        due = max(due + period, captured + period)
    elapsed = time.monotonic() - start
    print(json.dumps({"matched": matched, "sent": len(stamps), "publish_hz": len(stamps) / elapsed, "stamps": stamps}))
    sys.stdout.flush()
    time.sleep(1.0)  # let the last best-effort samples leave before the participant goes away
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
