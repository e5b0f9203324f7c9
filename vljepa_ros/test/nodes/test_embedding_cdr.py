"""Embedding CDR bytes written by hand: rclpy reads them back as the same message, for any field values.

Compared as messages plus length, not byte for byte: rclpy's serialiser leaves the alignment padding bytes
uninitialised (seen here: 0x4d, 0x4f, 0x01 where this module writes zeros).
"""

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message

from vljepa_msgs.msg import Embedding
from vljepa_ros.nodes.embedding_cdr import TEMPLATE_CACHE_SIZE, EmbeddingSerializer
from vljepa_ros.nodes.ros_conversions import embedding_from_msg, predicted_embedding_msg, time_to_ns, visual_state_msg
from vljepa_ros.perception.results import EmbeddingResult


def _text(rng, max_len=9):
    """Strings of every length modulo 4 (each one moves the next field's alignment), some not ASCII."""
    alphabet = list("abcxyz_/ 0") + ["é", "→"]
    return "".join(rng.choice(alphabet) for _ in range(int(rng.integers(0, max_len))))


def _result(rng, dim=None):
    dim = dim or int(rng.integers(1, 40))
    stamp = int(rng.integers(0, 2**31 - 1)) * 1_000_000_000 + int(rng.integers(0, 1_000_000_000))
    return EmbeddingResult(
        camera=_text(rng),
        frame_id=_text(rng),
        stamp_ns=stamp,
        clip_start_ns=stamp - int(rng.integers(0, 3e9)),
        num_frames=int(rng.integers(1, 64)),
        query=_text(rng, 30),
        embedding=rng.standard_normal(dim).astype(np.float32),
        visual_state=rng.standard_normal(int(rng.integers(1, 40))).astype(np.float32),
        model_id=_text(rng),
        model_version=_text(rng),
    )


def _same(raw: bytes, msg: Embedding) -> bool:
    """``raw`` is ``msg``'s CDR: rclpy reads it back as an equal message, and it has the length rclpy writes."""
    return len(raw) == len(serialize_message(msg)) and deserialize_message(raw, Embedding) == msg


@pytest.mark.parametrize("seed", range(25))
def test_rclpy_reads_the_bytes_back_as_the_message_it_would_have_sent(seed):
    rng = np.random.default_rng(seed)
    serializer = EmbeddingSerializer()
    result = _result(rng)
    assert _same(serializer.predicted(result), predicted_embedding_msg(result))
    assert _same(serializer.visual_state(result), visual_state_msg(result))


def test_the_next_clip_patches_stamps_and_vector_and_reads_back():
    rng = np.random.default_rng(7)
    serializer = EmbeddingSerializer()
    first = _result(rng, dim=384)
    serializer.predicted(first)
    later = EmbeddingResult(
        **{
            **first.__dict__,
            "stamp_ns": first.stamp_ns + 250_000_000,
            "clip_start_ns": first.clip_start_ns + 250_000_000,
            "embedding": rng.standard_normal(384).astype(np.float32),
        }
    )
    raw = serializer.predicted(later)
    assert _same(raw, predicted_embedding_msg(later))
    msg = deserialize_message(raw, Embedding)
    assert time_to_ns(msg.header.stamp) == later.stamp_ns and time_to_ns(msg.clip_start) == later.clip_start_ns
    assert (msg.kind, msg.camera, msg.query, msg.normalized, list(msg.shape)) == (
        Embedding.KIND_PREDICTED,
        later.camera,
        later.query,
        True,
        [384],
    )
    np.testing.assert_array_equal(embedding_from_msg(msg), later.embedding)


def test_vectors_of_other_dtypes_or_strides_are_written_as_float32():
    rng = np.random.default_rng(3)
    result = _result(rng, dim=8)
    column = np.asfortranarray(rng.standard_normal((8, 2)))[:, 1]  # float64, strided
    odd = EmbeddingResult(**{**result.__dict__, "embedding": column})
    expected = EmbeddingResult(**{**result.__dict__, "embedding": column.astype(np.float32)})
    assert _same(EmbeddingSerializer().predicted(odd), predicted_embedding_msg(expected))


def test_the_layout_cache_is_bounded_and_stays_correct_after_starting_over():
    rng = np.random.default_rng(11)
    serializer = EmbeddingSerializer()
    results = [_result(rng) for _ in range(TEMPLATE_CACHE_SIZE + 5)]
    for result in results:
        serializer.predicted(result)
    assert len(serializer._layouts) <= TEMPLATE_CACHE_SIZE
    assert _same(serializer.predicted(results[0]), predicted_embedding_msg(results[0]))
