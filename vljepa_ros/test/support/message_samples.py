"""Deterministic, fully populated instances of every vljepa_msgs message, shared by both test processes."""

import array

from builtin_interfaces.msg import Time

from vljepa_msgs.msg import Caption, DecodeStatistics, Embedding, WorldStateTransition


def _time(sec: int, nanosec: int) -> Time:
    return Time(sec=sec, nanosec=nanosec)


def sample_messages(seq: int) -> dict:
    """One message of each type; every field depends on `seq` so a stale or mixed-up message is detected."""
    emb = Embedding()
    emb.header.stamp = _time(1700000000 + seq, 123456789)
    emb.header.frame_id = "front_camera_optical_frame"
    emb.kind = Embedding.KIND_PREDICTED
    emb.camera = "front"
    emb.model_id = "vljepa-tinyworld"
    emb.model_version = "0123456789abcdef"
    emb.query = "describe the scene"
    emb.clip_start = _time(1700000000 + seq - 2, 5)
    emb.num_frames = 8
    emb.shape = [4]
    emb.normalized = True
    emb.data = array.array("f", [0.5, -0.5, 0.5, float(seq) / 100.0])

    tr = WorldStateTransition()
    tr.header.stamp = _time(1700000100 + seq, 7)
    tr.header.frame_id = "wrist_camera_optical_frame"
    tr.camera = "wrist"
    tr.model_id = "vljepa-tinyworld"
    tr.model_version = "0123456789abcdef"
    tr.before_stamp = _time(1700000098 + seq, 7)
    tr.after_stamp = _time(1700000100 + seq, 7)
    tr.state_distance = 0.25
    tr.dim = 3
    tr.normalized = False
    tr.transition_embedding = array.array("f", [1.0, 2.0, float(seq)])
    tr.action_labels = ["the red cube falls", "the light turns off"]
    tr.action_scores = array.array("f", [0.75, 0.5])

    cap = Caption()
    cap.header.stamp = _time(1700000200 + seq, 9)
    cap.header.frame_id = "front_camera_optical_frame"
    cap.camera = "front"
    cap.model_id = "vljepa-tinyworld"
    cap.model_version = "0123456789abcdef"
    cap.text = f"a red cube on a grey floor #{seq}"
    cap.score = 0.875
    cap.segment_start = _time(1700000190 + seq, 0)
    cap.segment_end = _time(1700000200 + seq, 9)
    cap.num_embeddings = 40
    cap.reason = Caption.REASON_CHANGE
    cap.change_score = 0.375
    cap.alternatives = ["a blue ball", "an empty room"]
    cap.alternative_scores = array.array("f", [0.5, 0.25])

    stats = DecodeStatistics()
    stats.header.stamp = _time(1700000300 + seq, 11)
    stats.header.frame_id = "front_camera_optical_frame"
    stats.camera = "front"
    stats.embeddings_seen = 1000 + seq
    stats.decodes = 12
    stats.stream_seconds = 120.5
    stats.decodes_per_minute = 5.975
    stats.uniform_rate_hz = 1.0
    stats.uniform_decodes = 120
    stats.reduction_factor = 10.0
    return {"embedding": emb, "transition": tr, "caption": cap, "statistics": stats}
