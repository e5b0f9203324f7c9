"""Write a tiny-world stream as a ROS 2 bag (sensor_msgs/Image rgb8) with its ground truth.

The ground truth goes twice: as `ground_truth.json` inside the bag folder (what evaluation tools read) and as
std_msgs/String messages on `GROUND_TRUTH_TOPIC`, one per caption segment at its start, so a bag viewer shows
the true caption next to the images.
"""

from __future__ import annotations

import json
from pathlib import Path

from rosbags.typesys import Stores, get_typestore

from vljepa_ros.bags.bag_io import IMAGE_TYPE, BagWriter, make_image_message
from vljepa_ros.tiny_world.stream import Stream

IMAGE_TOPIC = "/camera/image_raw"
FRAME_ID = "camera_optical_frame"
GROUND_TRUTH_TOPIC = "/tiny_world/caption"
GROUND_TRUTH_FILE = "ground_truth.json"
STRING_TYPE = "std_msgs/msg/String"


def write_stream_bag(
    stream: Stream, path: Path | str, storage: str = "mcap", topic: str = IMAGE_TOPIC, frame_id: str = FRAME_ID
) -> dict:
    """Write every frame of `stream` to a new bag at `path`; returns the ground truth also saved beside it.

    Bag time equals the header stamp (the recorder received each frame the instant it was taken).
    """
    typestore = get_typestore(Stores.ROS2_KILTED)
    truth = stream.ground_truth()
    truth.update({"image_topic": topic, "frame_id": frame_id, "caption_topic": GROUND_TRUTH_TOPIC})
    string = typestore.types[STRING_TYPE]
    captions = iter(truth["segments"])
    segment = next(captions, None)
    with BagWriter(path, storage=storage, typestore=typestore) as writer:
        writer.add_topic(topic, IMAGE_TYPE)
        writer.add_topic(GROUND_TRUTH_TOPIC, STRING_TYPE)
        for stamp_ns, rgb in stream.frames():
            while segment is not None and segment["start_ns"] <= stamp_ns:
                writer.write(GROUND_TRUTH_TOPIC, STRING_TYPE, stamp_ns, string(data=segment["caption"]))
                segment = next(captions, None)
            writer.write(topic, IMAGE_TYPE, stamp_ns, make_image_message(typestore, rgb, stamp_ns, frame_id))
    (Path(path) / GROUND_TRUTH_FILE).write_text(json.dumps(truth, indent=1))
    return truth


def read_ground_truth(bag_path: Path | str) -> dict:
    """The ground truth written next to a tiny-world bag."""
    file = Path(bag_path) / GROUND_TRUTH_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{file} not found: {bag_path} is not a tiny-world bag written by generate_world")
    return json.loads(file.read_text())
