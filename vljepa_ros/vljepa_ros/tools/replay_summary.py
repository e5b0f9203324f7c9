"""The replay's accounting: what happened to every camera frame, what came out, and what it cost (summary.json)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from vljepa_ros.decoding.pipeline import DecodingPipeline
from vljepa_ros.perception.results import DROP_INFERENCE_ERROR, DROP_WORKER_BEHIND
from vljepa_ros.perception.run_stats import StreamStats

# Frame fates in the accounting (every frame read ends in exactly one).
FATE_SAMPLED = "sampled"
FATE_SUBSAMPLED = "skipped_by_frame_rate"
CLIP_DROP_REASONS = (DROP_WORKER_BEHIND, DROP_INFERENCE_ERROR)


@dataclass
class CameraAccount:
    """What happened to one camera's frames and what came out."""

    topic: str
    frames_read: int = 0
    fates: dict = field(default_factory=dict)
    clips: int = 0
    embeddings: int = 0
    transitions: int = 0
    captions: int = 0
    segment_captions: int = 0
    embeddings_rejected_by_decoder: dict = field(default_factory=dict)

    def count(self, fate: str) -> None:
        """Add one frame to `fate`."""
        self.fates[fate] = self.fates.get(fate, 0) + 1

    @property
    def unaccounted(self) -> int:
        """Frames read minus frames with a fate: 0 unless something was lost."""
        return self.frames_read - sum(self.fates.values())


@dataclass(frozen=True)
class ReplayCosts:
    """Where a replay's time went: wall time, bag reading, and every inference call with its batch size."""

    wall_s: float
    bag_s: float  # bag time covered (first to last frame)
    read_s: float
    inference_s: Sequence[float]
    batch_sizes: Sequence[int]


def camera_summary(account: CameraAccount, stats: StreamStats, decoding: DecodingPipeline, name: str) -> dict:
    """One camera's entry of summary.json: its frames by fate, its outputs and the decoder's reduction."""
    # Clips formed but not run (their frames are already counted as sampled).
    clip_drops = {k: stats.drops[k] for k in CLIP_DROP_REASONS if stats.drops.get(k)}
    decoder_stats = decoding.statistics(name) if account.embeddings else None
    return {
        "topic": account.topic,
        "frames_read": account.frames_read,
        "frames_by_fate": dict(sorted(account.fates.items())),
        "unaccounted_frames": account.unaccounted,
        "clip_drops": clip_drops,
        "clips": account.clips,
        "embeddings": account.embeddings,
        "transitions": account.transitions,
        "captions_online": account.captions,
        "captions_offline_segments": account.segment_captions,
        "embeddings_rejected_by_decoder": account.embeddings_rejected_by_decoder,
        "reduction_vs_uniform": None
        if decoder_stats is None
        else {
            "uniform_rate_hz": decoder_stats.uniform_rate_hz,
            "uniform_decodes": decoder_stats.uniform_decodes,
            "selective_decodes": decoder_stats.decodes,
            "reduction_factor": round(decoder_stats.reduction_factor, 3),
        },
    }


def timings_summary(costs: ReplayCosts, clips: int) -> dict:
    """The "timings" entry of summary.json."""
    inference_s, batch_sizes, wall_s = costs.inference_s, costs.batch_sizes, costs.wall_s
    times = np.asarray(inference_s) if inference_s else np.zeros(1)
    return {
        "wall_s": round(wall_s, 3),
        "bag_s": round(costs.bag_s, 3),
        "realtime_factor": round(costs.bag_s / wall_s, 2) if wall_s > 0 else None,
        "bag_read_s": round(costs.read_s, 3),
        "inference_calls": len(inference_s),
        "inference_total_s": round(float(np.sum(inference_s)), 3),
        "inference_ms_p50": round(float(np.percentile(times, 50)) * 1e3, 2),
        "inference_ms_p95": round(float(np.percentile(times, 95)) * 1e3, 2),
        "mean_batch_size": round(float(np.mean(batch_sizes)), 2) if batch_sizes else 0.0,
        "clips_per_s": round(clips / wall_s, 2) if wall_s > 0 else None,
    }


def replay_summary(
    config,
    model: Mapping[str, str],
    accounts: Mapping[str, CameraAccount],
    pipeline_stats: Mapping[str, StreamStats],
    decoding: DecodingPipeline,
    counts: dict[str, int],
    costs: ReplayCosts,
) -> dict:
    """summary.json of a replay run with `config` (a ReplayConfig); `model` holds model_id, model_version and
    provider; `counts` the messages written per output topic."""
    cameras = {name: camera_summary(a, pipeline_stats[name], decoding, name) for name, a in accounts.items()}
    return {
        "input_bag": str(config.bag),
        "output_bag": str(config.out_dir / "bag"),
        "model": {"manifest": str(config.manifest), **model},
        "operating_point": {
            "detector": dict(config.detector_values),
            "uniform_rate_hz": config.uniform_rate_hz,
            "segments": config.segments,
            "segment_distance": config.segment_distance,
            "pipeline": {k: v for k, v in asdict(config.pipeline).items() if k != "queue_depth"},
        },
        "frames_read": sum(a.frames_read for a in accounts.values()),
        "all_frames_accounted": all(a.unaccounted == 0 for a in accounts.values()),
        "clips_lost_to_inference": sum(s.drops.get(DROP_INFERENCE_ERROR, 0) for s in pipeline_stats.values()),
        "cameras": cameras,
        "messages_written": counts,
        "timings": timings_summary(costs, sum(a.clips for a in accounts.values())),
    }
