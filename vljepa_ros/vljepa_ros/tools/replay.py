"""Offline replay: a ROS 2 bag in, the nodes' outputs in a new bag, a summary and a report out.

Runs the same core as the nodes -- PerceptionPipeline for the cameras, DecodingPipeline for the captions --
with the same parameters file, but without DDS or a worker thread: every frame of the bag is offered in bag
order and every clip is processed before the next frame is read, so nothing is dropped for being late and two
runs over the same bag and model give the same output bag. Every input frame is accounted for in the summary:
sampled into clips, skipped on purpose by the model frame rate, or rejected with a reason.

Output folder:
  bag/           messages as the nodes would publish them (header stamps copied from the input; bag time =
                 header stamp), readable by `ros2 bag` on a robot: TOPIC_* below
  summary.json   counts per camera, operating point, timings
  report/        timeline PNG per camera + index.html (see report.py)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from vljepa_ros.bags import bag_io
from vljepa_ros.perception.config import CameraConfig, ConfigError, PipelineConfig, cameras_from_parameters
from vljepa_ros.perception.image_conversion import (
    ImageConversionError,
    check_compressed,
    check_image,
    compressed_to_rgb,
    image_to_rgb,
)
from vljepa_ros.perception.pipeline import DROP_INFERENCE_ERROR, DROP_WORKER_BEHIND, PerceptionPipeline
from vljepa_ros.tools.params_file import node_parameters
from vljepa_ros.tools.report import thumbnail

PERCEPTION_NODE = "vljepa_perception"
DECODER_NODE = "vljepa_decoder"
TOPIC_EMBEDDING = f"/{PERCEPTION_NODE}/embedding"
TOPIC_VISUAL = f"/{PERCEPTION_NODE}/visual_embedding"
TOPIC_TRANSITION = f"/{PERCEPTION_NODE}/world_state_transition"
TOPIC_CAPTION = f"/{DECODER_NODE}/caption"
TOPIC_STATISTICS = f"/{DECODER_NODE}/decode_statistics"
TOPIC_SEGMENT_CAPTION = "/vljepa_replay/segment_caption"
EMBEDDING_TYPE = "vljepa_msgs/msg/Embedding"
TRANSITION_TYPE = "vljepa_msgs/msg/WorldStateTransition"
CAPTION_TYPE = "vljepa_msgs/msg/Caption"
STATISTICS_TYPE = "vljepa_msgs/msg/DecodeStatistics"
# Output topics in the order messages with equal stamps are written (keeps the bag byte-for-byte stable).
OUTPUT_TOPICS = OrderedDict(
    [
        (TOPIC_EMBEDDING, EMBEDDING_TYPE),
        (TOPIC_VISUAL, EMBEDDING_TYPE),
        (TOPIC_TRANSITION, TRANSITION_TYPE),
        (TOPIC_CAPTION, CAPTION_TYPE),
        (TOPIC_SEGMENT_CAPTION, CAPTION_TYPE),
        (TOPIC_STATISTICS, STATISTICS_TYPE),
    ]
)
THUMBNAIL_WIDTH = 192
THUMBNAIL_KEEP = 64  # sampled frames kept per camera for report thumbnails (captions stamp a recent frame)

# Frame fates in the accounting (every frame read ends in exactly one).
FATE_SAMPLED = "sampled"
FATE_SUBSAMPLED = "skipped_by_frame_rate"
CLIP_DROP_REASONS = (DROP_WORKER_BEHIND, DROP_INFERENCE_ERROR)
# Perception pipeline offer_frame verdicts that mean a frame entered a clip buffer.
_SAMPLED_VERDICTS = ("sampled", "queued")


@dataclass(frozen=True)
class ReplayConfig:
    """Everything a replay needs, validated once. Node parameters come from the same YAML as the nodes."""

    bag: Path
    out_dir: Path
    manifest: Path
    pipeline: PipelineConfig
    detector_values: dict
    cameras: tuple[CameraConfig, ...]
    bank_path: str = ""
    num_alternatives: int = 2
    uniform_rate_hz: float = 1.0
    segments: int | None = None  # offline Ward segments; None: as many as online decodes
    segment_distance: float | None = None  # or stop merging above this Ward distance
    storage: str = "mcap"
    providers: tuple[str, ...] = ("cpu",)
    write_report: bool = True

    def __post_init__(self):
        if self.segments is not None and self.segment_distance is not None:
            raise ConfigError("segments", "give --segments or --segment-distance, not both")
        if self.segments is not None and self.segments < 1:
            raise ConfigError("segments", f"must be >= 1, got {self.segments}")
        if self.storage not in bag_io.STORAGE_PLUGINS:
            raise ConfigError("storage", f"must be one of {sorted(bag_io.STORAGE_PLUGINS)}, got {self.storage!r}")


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


def pipeline_config_from_parameters(values: dict) -> PipelineConfig:
    """The perception node's parameter values -> PipelineConfig, with the node's conventions (0 / '' = unset).

    The replay never drops clips for being late, so the queue is made deep enough to hold every clip.
    """
    defaults = PipelineConfig()
    get = values.get
    return PipelineConfig(
        frame_rate_hz=get("frame_rate_hz", 0.0) or None,
        stride=get("stride", defaults.stride),
        queue_depth=1_000_000,
        max_batch=get("max_batch", defaults.max_batch),
        query=get("query", "") or None,
        transition_query=get("transition_query", "") or None,
        transition_horizon_s=float(get("transition_horizon_s", defaults.transition_horizon_s)),
        top_k=get("top_k", defaults.top_k),
        publish_visual_state=get("publish_visual_state", defaults.publish_visual_state),
        action_vocabulary=tuple(get("action_vocabulary", ()) or ()),
    )


def detector_values_from_parameters(values: dict) -> dict:
    """The decoder node's detector parameters with the core defaults filled in."""
    from vljepa_ros.decoding.change_detection import ChangeDetectorConfig

    merged = asdict(ChangeDetectorConfig())
    merged.update({k: v for k, v in values.items() if k in merged})
    return merged


def _validator(frame: bag_io.CameraFrame):
    """The O(1) check the node runs on every frame, so malformed frames the sampler would skip are reported."""
    message = frame.message
    if frame.is_compressed:
        return lambda: check_compressed(message.format, len(message.data))
    return lambda: check_image(
        message.encoding, message.height, message.width, message.step, bool(message.is_bigendian), len(message.data)
    )


def _converter(frame: bag_io.CameraFrame, keep: deque):
    """Image conversion for one bag frame, run only if the sampler keeps it; remembers a thumbnail."""

    def convert() -> np.ndarray:
        message = frame.message
        if frame.is_compressed:
            rgb = compressed_to_rgb(message.format, message.data)
        else:
            rgb = image_to_rgb(
                message.encoding, message.height, message.width, message.step, bool(message.is_bigendian), message.data
            )
        keep.append((frame.stamp_ns, thumbnail(rgb, THUMBNAIL_WIDTH)))
        return rgb

    return convert


class _Outputs:
    """Serialized output messages, written sorted by (stamp, topic order, arrival) at the end.

    Messages are built by the nodes' own conversion functions (rclpy types) so they are what the nodes
    publish. rclpy's CDR leaves alignment padding uninitialised, so each message is re-serialised by the
    rosbags typestore (zero padding, same field values): the same replay gives byte-identical bags.
    """

    def __init__(self):
        from rclpy.serialization import serialize_message

        self._serialize = serialize_message
        self._store = bag_io.make_typestore()
        self._order = {topic: i for i, topic in enumerate(OUTPUT_TOPICS)}
        self.items: list[tuple[int, int, int, str, bytes]] = []

    def add(self, topic: str, stamp_ns: int, message) -> None:
        msgtype = OUTPUT_TOPICS[topic]
        canonical = self._store.serialize_cdr(self._store.deserialize_cdr(self._serialize(message), msgtype), msgtype)
        self.items.append((int(stamp_ns), self._order[topic], len(self.items), topic, bytes(canonical)))

    def write(self, path: Path, storage: str) -> dict[str, int]:
        with bag_io.BagWriter(path, storage=storage, typestore=self._store) as writer:
            for topic, msgtype in OUTPUT_TOPICS.items():
                writer.add_topic(topic, msgtype)
            for stamp_ns, _, _, topic, raw in sorted(self.items):
                writer.write(topic, OUTPUT_TOPICS[topic], stamp_ns, raw=raw)
        return dict(writer.counts)


def run_replay(config: ReplayConfig, log=print) -> dict:
    """Replay `config.bag` through the core; write the output bag, summary.json and the report.

    Returns the summary (also written to out_dir/summary.json).
    """
    from vljepa_ros.decoding.change_detection import RejectedEmbedding
    from vljepa_ros.decoding.decoders import RetrievalDecoder
    from vljepa_ros.decoding.pipeline import DecodingPipeline, decode_segments
    from vljepa_ros.nodes.decoder_node import caption_msg, detector_config, statistics_msg
    from vljepa_ros.nodes.ros_conversions import predicted_embedding_msg, transition_msg, visual_state_msg
    from vljepa_ros.runtime.text_bank import TextBank

    wall_start = time.perf_counter()
    out_dir = config.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    bag_out = out_dir / "bag"
    if bag_out.exists():
        raise bag_io.BagError(f"{bag_out} already exists; choose another --out or remove it")

    pipeline = PerceptionPipeline.from_manifest(config.manifest, config.pipeline, providers=config.providers)
    bank = TextBank.load(config.bank_path) if config.bank_path else pipeline.runtime.load_bank("captions")
    decoder = RetrievalDecoder(
        bank, num_alternatives=config.num_alternatives, source=config.bank_path or "model captions bank"
    )
    decoding = DecodingPipeline(decoder, detector_config(config.detector_values), config.uniform_rate_hz)
    model_id, model_version = pipeline.model_id, pipeline.model_version
    log(
        f"replay: model {model_id} ({model_version}) on {pipeline.runtime.provider}; "
        f"{len(config.cameras)} camera(s): " + ", ".join(f"{c.name} <- {c.topic}" for c in config.cameras)
    )

    by_topic = {c.topic: c for c in config.cameras}
    accounts = {c.name: CameraAccount(topic=c.topic) for c in config.cameras}
    thumbs_recent = {c.name: deque(maxlen=THUMBNAIL_KEEP) for c in config.cameras}
    thumbnails: dict[str, dict[int, np.ndarray]] = {c.name: {} for c in config.cameras}
    streams: dict[str, list[tuple[int, np.ndarray]]] = {c.name: [] for c in config.cameras}
    frame_ids: dict[str, str] = {}
    first_stamps: dict[str, int] = {}
    captions_by_camera: dict[str, list] = {c.name: [] for c in config.cameras}
    segments_by_camera: dict[str, list] = {c.name: [] for c in config.cameras}
    outputs = _Outputs()
    inference_s: list[float] = []
    batch_sizes: list[int] = []
    bag_first_ns = bag_last_ns = None

    def process(batch) -> None:
        inference_s.append(batch.inference_s)
        batch_sizes.append(batch.batch_size)
        for result in batch.embeddings:
            account = accounts[result.camera]
            account.clips += 1
            account.embeddings += 1
            outputs.add(TOPIC_EMBEDDING, result.stamp_ns, predicted_embedding_msg(result))
            if result.visual_state is not None:
                outputs.add(TOPIC_VISUAL, result.stamp_ns, visual_state_msg(result))
            streams[result.camera].append((result.stamp_ns, result.embedding))
            try:
                event = decoding.feed(result.camera, result.frame_id, result.stamp_ns, result.embedding)
            except RejectedEmbedding as error:
                rejected = account.embeddings_rejected_by_decoder
                rejected[error.reason] = rejected.get(error.reason, 0) + 1
                continue
            if event is not None:
                account.captions += 1
                captions_by_camera[result.camera].append(event)
                outputs.add(TOPIC_CAPTION, event.stamp_ns, caption_msg(event, model_id, model_version))
                thumb = next((t for s, t in reversed(thumbs_recent[result.camera]) if s <= event.stamp_ns), None)
                if thumb is not None:
                    thumbnails[result.camera][event.stamp_ns] = thumb
                log(
                    f"  [{(event.stamp_ns - bag_first_ns) / 1e9:7.2f} s] {result.camera}: {event.text!r} "
                    f"({event.reason.name.lower()}, score {event.score:.2f})"
                )
        for transition in batch.transitions:
            accounts[transition.camera].transitions += 1
            outputs.add(TOPIC_TRANSITION, transition.stamp_ns, transition_msg(transition))

    def drain(minimum_pending: int) -> None:
        while pipeline.queue.pending() >= minimum_pending:
            try:
                batch = pipeline.step(timeout_s=0.0)
            except Exception as error:  # the pipeline counted the clips as drops; keep going
                log(f"replay: inference failed, clips counted as clip_drops.{DROP_INFERENCE_ERROR}: {error!r}")
                continue
            if batch is None:
                return
            process(batch)

    read_s = 0.0
    read_start = time.perf_counter()
    for frame in bag_io.read_camera_frames(config.bag, list(by_topic)):
        read_s += time.perf_counter() - read_start
        camera = by_topic[frame.topic]
        account = accounts[camera.name]
        account.frames_read += 1
        frame_ids.setdefault(camera.name, frame.frame_id)
        first_stamps.setdefault(camera.name, frame.stamp_ns)
        bag_first_ns = frame.bag_time_ns if bag_first_ns is None else bag_first_ns
        bag_last_ns = frame.bag_time_ns
        try:
            verdict = pipeline.offer_frame(
                camera.name,
                frame.frame_id,
                frame.stamp_ns,
                _converter(frame, thumbs_recent[camera.name]),
                _validator(frame),
            )
        except ImageConversionError as error:
            account.count(f"malformed.{error.reason}")
            log(f"replay: {camera.name}: malformed frame at {frame.stamp_ns} ns: {error}")
        else:
            if verdict in _SAMPLED_VERDICTS:
                account.count(FATE_SAMPLED)
            elif verdict == "rate":
                account.count(FATE_SUBSAMPLED)
            else:
                account.count(f"dropped.{verdict}")
        # One clip per camera makes a full batch; single-camera bags run every clip at once.
        drain(len(config.cameras))
        read_start = time.perf_counter()
    drain(1)

    for camera in config.cameras:
        stream = streams[camera.name]
        if not stream:
            continue
        wanted = config.segments
        if wanted is None and config.segment_distance is None:
            wanted = max(1, len(captions_by_camera[camera.name]))
        events = decode_segments(
            camera.name,
            frame_ids.get(camera.name, ""),
            [s for s, _ in stream],
            np.stack([v for _, v in stream]),
            decoder,
            n_segments=wanted,
            distance_threshold=config.segment_distance,
        )
        accounts[camera.name].segment_captions = len(events)
        for event in events:
            outputs.add(TOPIC_SEGMENT_CAPTION, event.stamp_ns, caption_msg(event, model_id, model_version))
        segments_by_camera[camera.name] = events
        stats = decoding.statistics(camera.name)
        outputs.add(TOPIC_STATISTICS, stats.last_stamp_ns, statistics_msg(stats))

    counts = outputs.write(bag_out, config.storage)
    pipeline_stats = {c.name: pipeline.stats_for(c.name) for c in config.cameras}
    wall_s = time.perf_counter() - wall_start
    bag_seconds = 0.0 if bag_first_ns is None else (bag_last_ns - bag_first_ns) / 1e9
    summary = _summary(
        config,
        accounts,
        pipeline_stats,
        decoding,
        counts,
        model_id,
        model_version,
        pipeline.runtime.provider,
        inference_s,
        batch_sizes,
        read_s,
        wall_s,
        bag_seconds,
    )
    if config.write_report:
        report = _write_report(
            config, streams, captions_by_camera, segments_by_camera, thumbnails, first_stamps, summary
        )
        summary["report"] = str(report["html"])
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _summary(
    config,
    accounts,
    pipeline_stats,
    decoding,
    counts,
    model_id,
    model_version,
    provider,
    inference_s,
    batch_sizes,
    read_s,
    wall_s,
    bag_seconds,
) -> dict:
    cameras = {}
    for name, account in accounts.items():
        stats = pipeline_stats[name]
        # Clips formed but not run (their frames are already counted as sampled).
        clip_drops = {k: stats.drops[k] for k in CLIP_DROP_REASONS if stats.drops.get(k)}
        decoder_stats = decoding.statistics(name) if account.embeddings else None
        cameras[name] = {
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
    times = np.asarray(inference_s) if inference_s else np.zeros(1)
    frames = sum(a.frames_read for a in accounts.values())
    clips = sum(a.clips for a in accounts.values())
    return {
        "input_bag": str(config.bag),
        "output_bag": str(config.out_dir / "bag"),
        "model": {
            "manifest": str(config.manifest),
            "model_id": model_id,
            "model_version": model_version,
            "provider": provider,
        },
        "operating_point": {
            "detector": dict(config.detector_values),
            "uniform_rate_hz": config.uniform_rate_hz,
            "segments": config.segments,
            "segment_distance": config.segment_distance,
            "pipeline": {k: v for k, v in asdict(config.pipeline).items() if k != "queue_depth"},
        },
        "frames_read": frames,
        "all_frames_accounted": all(a.unaccounted == 0 for a in accounts.values()),
        "cameras": cameras,
        "messages_written": counts,
        "timings": {
            "wall_s": round(wall_s, 3),
            "bag_s": round(bag_seconds, 3),
            "realtime_factor": round(bag_seconds / wall_s, 2) if wall_s > 0 else None,
            "bag_read_s": round(read_s, 3),
            "inference_calls": len(inference_s),
            "inference_total_s": round(float(np.sum(inference_s)), 3),
            "inference_ms_p50": round(float(np.percentile(times, 50)) * 1e3, 2),
            "inference_ms_p95": round(float(np.percentile(times, 95)) * 1e3, 2),
            "mean_batch_size": round(float(np.mean(batch_sizes)), 2) if batch_sizes else 0.0,
            "clips_per_s": round(clips / wall_s, 2) if wall_s > 0 else None,
        },
    }


def load_truth(bag: Path) -> dict | None:
    """The tiny-world ground truth stored beside a generated bag, or None for other bags."""
    from vljepa_ros.tiny_world.bag_writer import GROUND_TRUTH_FILE

    file = Path(bag) / GROUND_TRUTH_FILE
    return json.loads(file.read_text()) if file.is_file() else None


def truth_changes(truth: dict | None, camera_topic: str):
    """Report TruthChange list (one per caption segment after the first) for the camera on `camera_topic`."""
    from vljepa_ros.tools.report import TruthChange

    if not truth or truth.get("image_topic") != camera_topic:
        return []
    return [TruthChange(int(s["start_ns"]), s["caption"]) for s in truth["segments"][1:]]


def _write_report(config, streams, captions_by_camera, segments_by_camera, thumbnails, first_stamps, summary) -> dict:
    from vljepa_ros.decoding.change_detection import ChangeDetectorConfig
    from vljepa_ros.tools.report import CameraTimeline, CaptionMark, change_score_curve, write_report

    truth = load_truth(config.bag)
    detector = ChangeDetectorConfig(**config.detector_values)

    def marks(events):
        return [
            CaptionMark(e.stamp_ns, e.text, int(e.reason), float(e.score), e.segment_start_ns, e.segment_end_ns)
            for e in events
        ]

    timelines = []
    for camera in config.cameras:
        stream = streams[camera.name]
        stamps = np.array([s for s, _ in stream], dtype=np.int64)
        vectors = np.stack([v for _, v in stream]) if stream else np.zeros((0, 1), np.float32)
        timelines.append(
            CameraTimeline(
                camera=camera.name,
                embedding_stamps_ns=stamps,
                change_scores=change_score_curve(stamps, vectors, detector),
                threshold=detector.threshold,
                captions=marks(captions_by_camera[camera.name]),
                segment_captions=marks(segments_by_camera[camera.name]),
                truth=truth_changes(truth, camera.topic),
                thumbnails=thumbnails[camera.name],
                start_ns=first_stamps.get(camera.name),
            )
        )
    return write_report(
        timelines,
        config.out_dir / "report",
        title=f"vljepa_ros replay of {config.bag.name}",
        summary={k: summary[k] for k in ("input_bag", "model", "frames_read", "timings")},
    )


def default_params_file() -> Path:
    """The package's config/vljepa.yaml (installed share/ copy first, else the source tree's)."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            installed = Path(get_package_share_directory("vljepa_ros")) / "config" / "vljepa.yaml"
            if installed.is_file():
                return installed
        except (PackageNotFoundError, OSError):  # OSError: AMENT_PREFIX_PATH unset
            pass
    except ImportError:
        pass
    return Path(__file__).resolve().parents[2] / "config" / "vljepa.yaml"


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of `replay`."""
    parser = argparse.ArgumentParser(
        prog="replay",
        description="Run the perception and selective-decoding core over a ROS 2 bag, offline and "
        "deterministically; write an output bag, summary.json and a report.",
    )
    parser.add_argument("bag", type=Path, help="input bag folder (mcap or sqlite3)")
    parser.add_argument("--out", type=Path, help="output folder (default: <bag>_vljepa next to the bag)")
    parser.add_argument("--params-file", type=Path, help="node parameters YAML (default: config/vljepa.yaml)")
    parser.add_argument("--model", type=Path, help="model manifest (default: the params file's, else bundled)")
    parser.add_argument("--topics", nargs="+", default=[], help="camera topics (default: every image topic)")
    parser.add_argument("--camera-names", nargs="+", default=[], help="names for --topics (default: from topics)")
    parser.add_argument("--segments", type=int, help="offline Ward segments per camera (default: online decodes)")
    parser.add_argument("--segment-distance", type=float, help="offline: stop merging above this Ward distance")
    parser.add_argument("--storage", choices=sorted(bag_io.STORAGE_PLUGINS), default="mcap")
    parser.add_argument("--providers", nargs="+", default=["cpu"], help="ONNX Runtime providers (default: cpu)")
    parser.add_argument("--no-report", action="store_true", help="skip the PNG/HTML report")
    parser.add_argument("--quiet", action="store_true", help="print only the summary path")
    return parser


def config_from_args(args: argparse.Namespace) -> ReplayConfig:
    """Parsed arguments + parameters file -> ReplayConfig; ConfigError names the parameter at fault."""
    from vljepa_ros.runtime.bundled_model import bundled_manifest_path

    params_file = args.params_file or default_params_file()
    perception = node_parameters(params_file, PERCEPTION_NODE) if params_file.is_file() else {}
    decoder = node_parameters(params_file, DECODER_NODE) if params_file.is_file() else {}
    if args.params_file and not args.params_file.is_file():
        raise ConfigError("params_file", f"no file at {args.params_file}")
    manifest = args.model or Path(perception.get("model_manifest") or bundled_manifest_path())
    if not manifest.is_file():
        raise ConfigError("model", f"no model manifest at {manifest}")
    topics = list(args.topics) or bag_io.camera_topics(args.bag)
    if not topics:
        raise ConfigError("topics", f"{args.bag} has no sensor_msgs/Image or CompressedImage topic")
    return ReplayConfig(
        bag=args.bag,
        out_dir=args.out or args.bag.with_name(args.bag.name + "_vljepa"),
        manifest=manifest,
        pipeline=pipeline_config_from_parameters(perception),
        detector_values=detector_values_from_parameters(decoder),
        cameras=cameras_from_parameters(topics, (), args.camera_names),
        bank_path=str(decoder.get("bank_path", "")),
        num_alternatives=int(decoder.get("num_alternatives", 2)),
        uniform_rate_hz=float(decoder.get("uniform_rate_hz", 1.0)),
        segments=args.segments,
        segment_distance=args.segment_distance,
        storage=args.storage,
        providers=tuple(args.providers),
        write_report=not args.no_report,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Console script `replay`."""
    args = build_parser().parse_args(argv)
    log = (lambda *_: None) if args.quiet else print
    try:
        config = config_from_args(args)
        summary = run_replay(config, log=log)
    # RuntimeError: onnx_session found no provider able to load a graph (e.g. a corrupt .onnx file).
    except (ConfigError, bag_io.BagError, ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"replay: {error}", file=sys.stderr)
        return 2
    if not args.quiet:
        for name, camera in summary["cameras"].items():
            print(
                f"replay: {name}: {camera['frames_read']} frames -> {camera['embeddings']} embeddings, "
                f"{camera['captions_online']} captions online, {camera['captions_offline_segments']} offline "
                f"segments; frames by fate {camera['frames_by_fate']}"
            )
        timing = summary["timings"]
        print(
            f"replay: {timing['wall_s']} s wall for {timing['bag_s']} s of bag "
            f"({timing['realtime_factor']}x real time); inference p50 {timing['inference_ms_p50']} ms"
        )
        if "report" in summary:
            print(f"replay: report {summary['report']}")
        print(f"replay: output bag {summary['output_bag']}")
    print(f"replay: summary {config.out_dir / 'summary.json'}")
    return 0 if summary["all_frames_accounted"] else 1


if __name__ == "__main__":
    sys.exit(main())
