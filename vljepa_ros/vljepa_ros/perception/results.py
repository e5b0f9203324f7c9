"""What the perception pipeline reports: per-clip embeddings, world-state transitions, and why frames were dropped.

Plain frozen dataclasses and reason strings, shared by the pipeline that produces them and by everything that
reads them (the nodes' message builders, the replay tool, the benchmarks), which need none of the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Drop reasons (counted per camera in StreamStats.drops; offer_frame returns the last two as its verdict).
# Frames skipped to reach the model frame rate are intended sub-sampling and counted separately
# (``frames_subsampled``), not as drops.
DROP_WORKER_BEHIND = "worker_behind"  # a waiting clip was replaced by a newer one
DROP_INFERENCE_ERROR = "inference_error"  # the runtime raised on a batch containing the clip
DROP_OUT_OF_ORDER = "out_of_order"  # stamp not newer than the last sampled frame
DROP_DISABLED = "disabled"  # frame arrived while the pipeline was disabled


@dataclass(frozen=True)
class EmbeddingResult:
    """The predicted embedding for ``query`` (and the pooled visual state) of one clip of one camera."""

    camera: str
    frame_id: str
    stamp_ns: int  # newest frame of the clip
    clip_start_ns: int  # oldest frame of the clip
    num_frames: int
    query: str
    embedding: np.ndarray  # (E,) float32, L2-normalised
    visual_state: np.ndarray | None  # (D,) float32, L2-normalised; None unless publish_visual_state
    model_id: str
    model_version: str
    received_ns: int = 0  # when the newest frame reached the pipeline (pipeline.clock_ns)
    inference_s: float = 0.0  # model time of the batch this result came from


@dataclass(frozen=True)
class TransitionResult:
    """What changed between the clip ending at ``before_stamp_ns`` and the clip ending at ``stamp_ns``."""

    camera: str
    frame_id: str
    stamp_ns: int  # newest frame of the "after" clip
    before_stamp_ns: int  # newest frame of the "before" clip
    state_distance: float  # 1 - cos(visual state before, visual state after), in [0, 2]
    query: str
    transition_embedding: np.ndarray  # (E,) float32, L2-normalised
    action_labels: tuple[str, ...]  # top-k of the action vocabulary, best first
    action_scores: tuple[float, ...]
    model_id: str
    model_version: str


@dataclass(frozen=True)
class BatchResult:
    """Everything one inference step produced, plus what it cost."""

    embeddings: tuple[EmbeddingResult, ...]
    transitions: tuple[TransitionResult, ...]
    batch_size: int  # clips the encoder saw in its one call (cameras + transition and look-back clips)
    inference_s: float  # wall time of the runtime calls
