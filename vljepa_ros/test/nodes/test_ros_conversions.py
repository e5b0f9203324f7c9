"""Result -> message conversion: stamps, kinds, queries and vectors land in their fields."""

import numpy as np

from vljepa_ros.nodes.ros_conversions import embedding_from_msg, predicted_embedding_msg, time_to_ns, visual_state_msg
from vljepa_ros.perception.results import EmbeddingResult


def _result(stamp_ns: int, seed: int, dim: int = 6, **overrides) -> EmbeddingResult:
    rng = np.random.default_rng(seed)
    fields = dict(
        camera="front",
        frame_id="front_optical",
        stamp_ns=stamp_ns,
        clip_start_ns=stamp_ns - 1_750_000_000,
        num_frames=8,
        query="describe the scene",
        embedding=rng.standard_normal(dim).astype(np.float32),
        visual_state=rng.standard_normal(dim + 2).astype(np.float32),
        model_id="m",
        model_version="v1",
    )
    fields.update(overrides)
    return EmbeddingResult(**fields)


def test_embedding_messages_carry_the_result_and_its_input_stamps():
    result = _result(6_250_000_002, 1, query="what is on the table", frame_id="f2")
    msg = predicted_embedding_msg(result)
    assert time_to_ns(msg.header.stamp) == result.stamp_ns and msg.header.frame_id == "f2"
    assert time_to_ns(msg.clip_start) == result.clip_start_ns and msg.num_frames == 8
    assert (msg.kind, msg.query, msg.normalized, list(msg.shape)) == (1, "what is on the table", True, [6])
    np.testing.assert_array_equal(embedding_from_msg(msg), result.embedding)
    state = visual_state_msg(result)
    assert (state.kind, state.query, list(state.shape)) == (0, "", [8])
    np.testing.assert_array_equal(embedding_from_msg(state), result.visual_state)
