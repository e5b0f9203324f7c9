"""Result -> message conversion: a message filled again for the next clip equals one built fresh."""

import numpy as np

from vljepa_ros.nodes.ros_conversions import embedding_from_msg, predicted_embedding_msg, time_to_ns, visual_state_msg
from vljepa_ros.perception_pipeline import EmbeddingResult


def _result(stamp_ns: int, seed: int, dim: int = 6, **overrides) -> EmbeddingResult:
    rng = np.random.default_rng(seed)
    fields = dict(
        camera="front", frame_id="front_optical", stamp_ns=stamp_ns, clip_start_ns=stamp_ns - 1_750_000_000,
        num_frames=8, query="describe the scene", embedding=rng.standard_normal(dim).astype(np.float32),
        visual_state=rng.standard_normal(dim + 2).astype(np.float32), model_id="m", model_version="v1",
    )
    fields.update(overrides)
    return EmbeddingResult(**fields)


def test_refilled_message_equals_a_fresh_one():
    first, second = _result(5_000_000_001, 0), _result(6_250_000_002, 1, query="what is on the table", frame_id="f2")
    msg = predicted_embedding_msg(first)
    reused = predicted_embedding_msg(second, msg)
    assert reused is msg
    assert reused == predicted_embedding_msg(second)
    assert time_to_ns(reused.header.stamp) == second.stamp_ns and reused.header.frame_id == "f2"
    np.testing.assert_array_equal(embedding_from_msg(reused), second.embedding)


def test_refilling_with_another_width_resizes_data_and_shape():
    msg = visual_state_msg(_result(1, 0, dim=6))
    reused = visual_state_msg(_result(2, 1, dim=10), msg)
    assert list(reused.shape) == [12] and len(reused.data) == 12
    assert reused == visual_state_msg(_result(2, 1, dim=10))
