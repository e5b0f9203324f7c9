"""Offline replay: a ROS 2 bag in, the nodes' outputs in a new bag, a summary and a report out.

Runs the same core as the nodes -- PerceptionPipeline for the cameras, DecodingPipeline for the captions --
with the same parameters file, but without DDS or a worker thread: every frame of the bag is offered in bag
order and every clip is processed before the next frame is read, so nothing is dropped for being late and two
runs over the same bag and model give the same output bag. Every input frame is accounted for in the summary:
sampled into clips, skipped on purpose by the model frame rate, or rejected with a reason.

Output folder:
  bag/           messages as the nodes would publish them (header stamps copied from the input; bag time =
                 header stamp), readable by `ros2 bag` on a robot: TOPIC_* in replay_outputs.py
  summary.json   counts per camera, operating point, timings (see replay_summary.py)
  report/        timeline PNG per camera + index.html (see report.py)

A bag whose recorder died (an MCAP file without its footer, an SQLite file cut short) is read up to the cut;
summary.json's "input" says where it stopped. Exit codes: 0 every frame accounted and every clip run;
1 frames unaccounted; 2 refused (bad arguments, unreadable bag or model); 3 finished, input incomplete (cut
short, or messages lost in the bag); 4 clips lost to inference (said on stderr even with --quiet; worst wins).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vljepa_ros.bags import bag_io
from vljepa_ros.decoding.bank_choice import check_bank_fits, choose_bank
from vljepa_ros.decoding.change_detection import ChangeDetectorConfig
from vljepa_ros.decoding.config import StreamLimits, detector_config, detector_values_from_parameters
from vljepa_ros.decoding.decoder_core import DecoderCore, EmbeddingInput
from vljepa_ros.decoding.decoders import RetrievalDecoder
from vljepa_ros.decoding.pipeline import CaptionEvent, decode_segments
from vljepa_ros.nodes.ros_conversions import (
    caption_msg,
    frame_limits_from_parameters,
    predicted_embedding_msg,
    statistics_msg,
    transition_msg,
    visual_state_msg,
)
from vljepa_ros.perception.config import (
    DEFAULT_FRAME_LIMITS,
    CameraConfig,
    ConfigError,
    FrameLimits,
    PipelineConfig,
    cameras_from_parameters,
)
from vljepa_ros.perception.image_conversion import (
    ImageConversionError,
    check_compressed_header,
    check_image,
)
from vljepa_ros.perception.pipeline import PerceptionPipeline
from vljepa_ros.perception.results import DROP_INFERENCE_ERROR, BatchResult, EmbeddingResult
from vljepa_ros.runtime.bundled_model import bundled_manifest_path
from vljepa_ros.runtime.text_bank import TextBank
from vljepa_ros.runtime.vljepa_runtime import VLJepaRuntime
from vljepa_ros.tools.ground_truth import load_truth, truth_changes
from vljepa_ros.tools.params_file import default_params_file, node_parameters
from vljepa_ros.tools.replay_outputs import (
    DECODER_NODE,
    PERCEPTION_NODE,
    TOPIC_CAPTION,
    TOPIC_EMBEDDING,
    TOPIC_SEGMENT_CAPTION,
    TOPIC_STATISTICS,
    TOPIC_TRANSITION,
    TOPIC_VISUAL,
    OutputMessages,
)
from vljepa_ros.tools.replay_summary import (
    FATE_SAMPLED,
    FATE_SUBSAMPLED,
    CameraAccount,
    ReplayCosts,
    replay_summary,
)
from vljepa_ros.tools.report import (
    CameraTimeline,
    CaptionMark,
    change_score_curve,
    frame_rgb,
    thumbnail,
    write_report,
)

EXIT_OK, EXIT_UNACCOUNTED, EXIT_REFUSED, EXIT_INPUT_INCOMPLETE, EXIT_INFERENCE_LOST = 0, 1, 2, 3, 4
INFERENCE_ERRORS_KEPT = 5  # distinct error texts kept for summary.json (the count covers every failure)
THUMBNAIL_WIDTH = 192
THUMBNAIL_KEEP = 64  # sampled frames kept per camera for report thumbnails (captions stamp a recent frame)
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
    query_filter: str = ""  # the decoder node's `query` parameter
    segments: int | None = None  # offline Ward segments; None: as many as online decodes
    segment_distance: float | None = None  # or stop merging above this Ward distance
    storage: str = "mcap"
    providers: tuple[str, ...] = ("cpu",)
    write_report: bool = True
    frame_limits: FrameLimits = DEFAULT_FRAME_LIMITS  # the node's max_frame_pixels / max_frame_bytes

    def __post_init__(self):
        if self.segments is not None and self.segment_distance is not None:
            raise ConfigError("segments", "give --segments or --segment-distance, not both")
        if self.segments is not None and self.segments < 1:
            raise ConfigError("segments", f"must be >= 1, got {self.segments}")
        if self.storage not in bag_io.STORAGE_PLUGINS:
            raise ConfigError("storage", f"must be one of {sorted(bag_io.STORAGE_PLUGINS)}, got {self.storage!r}")


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
        compute_transitions=get("compute_transitions", defaults.compute_transitions),
        top_k=get("top_k", defaults.top_k),
        publish_visual_state=get("publish_visual_state", defaults.publish_visual_state),
        action_vocabulary=tuple(get("action_vocabulary", ()) or ()),
    )


def _validator(frame: bag_io.CameraFrame, limits: FrameLimits):
    """The check the node runs on every frame (headers only), so malformed frames the sampler would skip are
    reported."""
    message = frame.message
    if frame.is_compressed:
        return lambda: check_compressed_header(message.format, message.data, limits)
    return lambda: check_image(
        message.encoding,
        message.height,
        message.width,
        message.step,
        bool(message.is_bigendian),
        len(message.data),
        limits,
    )


def _converter(frame: bag_io.CameraFrame, keep: deque, limits: FrameLimits):
    """Image conversion for one bag frame, run only if the sampler keeps it; remembers a thumbnail."""

    def convert() -> np.ndarray:
        rgb = frame_rgb(frame, limits)
        keep.append((frame.stamp_ns, thumbnail(rgb, THUMBNAIL_WIDTH)))
        return rgb

    return convert


# Replay is offline: every camera stream is kept for the whole bag (no idle expiry), so one steady "now" serves.
REPLAY_NOW_NS = 0


def replay_decoder_core(
    decoder: RetrievalDecoder, detector_values: dict, cameras: int, query_filter: str = "", uniform_rate_hz: float = 1.0
) -> DecoderCore:
    """The decoder node's core with the decoder node's parameter values; a stream slot for each of `cameras`."""
    return DecoderCore(
        decoder,
        detector_config(detector_values),
        StreamLimits(max_streams=max(1, cameras)),
        query_filter=query_filter,
        uniform_rate_hz=uniform_rate_hz,
    )


def embedding_input(result: EmbeddingResult) -> EmbeddingInput:
    """A perception result as the decoder node receives it in an Embedding message (KIND_PREDICTED)."""
    return EmbeddingInput(
        camera=result.camera,
        frame_id=result.frame_id,
        stamp_ns=result.stamp_ns,
        vector=np.asarray(result.embedding, dtype=np.float32),
        model_id=result.model_id,
        model_version=result.model_version,
        query=result.query,
        shape=(int(np.asarray(result.embedding).size),),
    )


class ReplayRun:
    """One replay in progress: the two pipelines, what every camera's frames became, and the output messages.

    ``offer`` takes the bag's frames in order, ``drain`` runs the clips they complete (``process`` turns each
    batch into messages and online captions); ``decode_offline`` adds the offline segments and the decode
    statistics once the bag is read; ``summary`` and ``write_report`` describe the run. ``runtime``: a model
    already loaded from ``config.manifest`` (a fleet worker replays many bags with one); None loads it.
    """

    def __init__(self, config: ReplayConfig, log: Callable[[str], None], runtime: VLJepaRuntime | None = None):
        self.config = config
        self.log = log
        runtime = runtime or VLJepaRuntime.from_manifest(config.manifest, providers=config.providers)
        self.pipeline = PerceptionPipeline(runtime, config.pipeline)
        # The decoder node's choice (decoding/bank_choice.py): bank_path, else the model's captions bank, and a
        # bank of another dimension than the model's is refused.
        choice = choose_bank(config.bank_path, str(config.manifest))
        bank = TextBank.load(choice.path)
        check_bank_fits(choice, bank.dim)
        self.decoder = RetrievalDecoder(
            bank, num_alternatives=config.num_alternatives, source=config.bank_path or "model captions bank"
        )
        self.decoding = replay_decoder_core(
            self.decoder, config.detector_values, len(config.cameras), config.query_filter, config.uniform_rate_hz
        )
        self.by_topic = {c.topic: c for c in config.cameras}
        names = [c.name for c in config.cameras]
        self.accounts = {c.name: CameraAccount(topic=c.topic) for c in config.cameras}
        self.thumbs_recent = {name: deque(maxlen=THUMBNAIL_KEEP) for name in names}
        self.thumbnails: dict[str, dict[int, np.ndarray]] = {name: {} for name in names}
        self.streams: dict[str, list[tuple[int, np.ndarray]]] = {name: [] for name in names}
        self.captions: dict[str, list[CaptionEvent]] = {name: [] for name in names}
        self.segments: dict[str, list[CaptionEvent]] = {name: [] for name in names}
        self.frame_ids: dict[str, str] = {}
        self.first_stamps: dict[str, int] = {}
        self.outputs = OutputMessages()
        self.inference_s: list[float] = []
        self.batch_sizes: list[int] = []
        self.bag_first_ns: int | None = None
        self.bag_last_ns: int | None = None
        self.input = bag_io.BagReadReport()
        self.inference_errors: list[str] = []

    @property
    def model_id(self) -> str:
        """The model's id, as stamped on every output message."""
        return self.pipeline.model_id

    @property
    def model_version(self) -> str:
        """The model's version, as stamped on every output message."""
        return self.pipeline.model_version

    def offer(self, frame: bag_io.CameraFrame) -> None:
        """Offer one bag frame to the perception pipeline and account for its fate."""
        camera = self.by_topic[frame.topic]
        account = self.accounts[camera.name]
        account.frames_read += 1
        self.frame_ids.setdefault(camera.name, frame.frame_id)
        self.first_stamps.setdefault(camera.name, frame.stamp_ns)
        self.bag_first_ns = frame.bag_time_ns if self.bag_first_ns is None else self.bag_first_ns
        self.bag_last_ns = frame.bag_time_ns
        try:
            verdict = self.pipeline.offer_frame(
                camera.name,
                frame.frame_id,
                frame.stamp_ns,
                _converter(frame, self.thumbs_recent[camera.name], self.config.frame_limits),
                _validator(frame, self.config.frame_limits),
            )
        except ImageConversionError as error:
            account.count(f"malformed.{error.reason}")
            self.log(f"replay: {camera.name}: malformed frame at {frame.stamp_ns} ns: {error}")
            return
        if verdict in _SAMPLED_VERDICTS:
            account.count(FATE_SAMPLED)
        elif verdict == "rate":
            account.count(FATE_SUBSAMPLED)
        else:
            account.count(f"dropped.{verdict}")

    def drain(self, minimum_pending: int) -> None:
        """Run ready clips while at least `minimum_pending` wait; a failed batch is logged and skipped."""
        while self.pipeline.queue.pending() >= minimum_pending:
            try:
                batch = self.pipeline.step(timeout_s=0.0)
            except Exception as error:  # the pipeline counted the clips as drops; keep going
                if repr(error) not in self.inference_errors and len(self.inference_errors) < INFERENCE_ERRORS_KEPT:
                    self.inference_errors.append(repr(error))
                self.log(f"replay: inference failed, clips counted as clip_drops.{DROP_INFERENCE_ERROR}: {error!r}")
                continue
            if batch is None:
                return
            self.process(batch)

    def process(self, batch: BatchResult) -> None:
        """Turn one batch into output messages and feed its embeddings to the online decoder."""
        self.inference_s.append(batch.inference_s)
        self.batch_sizes.append(batch.batch_size)
        for result in batch.embeddings:
            account = self.accounts[result.camera]
            account.clips += 1
            account.embeddings += 1
            self.outputs.add(TOPIC_EMBEDDING, result.stamp_ns, predicted_embedding_msg(result))
            if result.visual_state is not None:
                self.outputs.add(TOPIC_VISUAL, result.stamp_ns, visual_state_msg(result))
            self.streams[result.camera].append((result.stamp_ns, result.embedding))
            outcome = self.decoding.feed(embedding_input(result), REPLAY_NOW_NS)
            if outcome.status in ("rejected", "ignored", "refused"):
                key = outcome.reason if outcome.status == "rejected" else f"{outcome.status}.{outcome.reason}"
                rejected = account.embeddings_rejected_by_decoder
                rejected[key] = rejected.get(key, 0) + 1
            if outcome.event is not None:
                self._on_caption(result.camera, outcome.event)
        for transition in batch.transitions:
            self.accounts[transition.camera].transitions += 1
            self.outputs.add(TOPIC_TRANSITION, transition.stamp_ns, transition_msg(transition))

    def _on_caption(self, camera: str, event: CaptionEvent) -> None:
        self.accounts[camera].captions += 1
        self.captions[camera].append(event)
        self.outputs.add(TOPIC_CAPTION, event.stamp_ns, caption_msg(event, self.model_id, self.model_version))
        thumb = next((t for s, t in reversed(self.thumbs_recent[camera]) if s <= event.stamp_ns), None)
        if thumb is not None:
            self.thumbnails[camera][event.stamp_ns] = thumb
        self.log(
            f"  [{(event.stamp_ns - self.bag_first_ns) / 1e9:7.2f} s] {camera}: {event.text!r} "
            f"({event.reason.name.lower()}, score {event.score:.2f})"
        )

    def decode_offline(self) -> None:
        """Offline Ward segments and the final decode statistics of every camera that produced embeddings."""
        config = self.config
        for camera in config.cameras:
            stream = self.streams[camera.name]
            if not stream:
                continue
            wanted = config.segments
            if wanted is None and config.segment_distance is None:
                wanted = max(1, len(self.captions[camera.name]))
            events = decode_segments(
                camera.name,
                self.frame_ids.get(camera.name, ""),
                [s for s, _ in stream],
                np.stack([v for _, v in stream]),
                self.decoder,
                n_segments=wanted,
                distance_threshold=config.segment_distance,
            )
            self.accounts[camera.name].segment_captions = len(events)
            for event in events:
                message = caption_msg(event, self.model_id, self.model_version)
                self.outputs.add(TOPIC_SEGMENT_CAPTION, event.stamp_ns, message)
            self.segments[camera.name] = events
            stats = self.decoding.pipeline.statistics(camera.name)
            self.outputs.add(TOPIC_STATISTICS, stats.last_stamp_ns, statistics_msg(stats))

    def summary(self, counts: dict[str, int], read_s: float, wall_s: float) -> dict:
        """summary.json for this run, given the messages written per topic and the time spent."""
        bag_s = 0.0 if self.bag_first_ns is None else (self.bag_last_ns - self.bag_first_ns) / 1e9
        model = {
            "model_id": self.model_id,
            "model_version": self.model_version,
            "provider": self.pipeline.runtime.provider,
        }
        pipeline_stats = {c.name: self.pipeline.stats_for(c.name) for c in self.config.cameras}
        costs = ReplayCosts(wall_s, bag_s, read_s, self.inference_s, self.batch_sizes)
        summary = replay_summary(
            self.config, model, self.accounts, pipeline_stats, self.decoding.pipeline, counts, costs
        )
        summary["input"] = self.input.as_dict()
        summary["inference_errors"] = list(self.inference_errors)
        return summary

    def write_report(self, summary: dict) -> dict:
        """Timeline PNGs + index.html under out_dir/report; returns write_report's paths."""
        config = self.config
        truth = load_truth(config.bag)
        detector = ChangeDetectorConfig(**config.detector_values)
        timelines = []
        for camera in config.cameras:
            stream = self.streams[camera.name]
            stamps = np.array([s for s, _ in stream], dtype=np.int64)
            vectors = np.stack([v for _, v in stream]) if stream else np.zeros((0, 1), np.float32)
            timelines.append(
                CameraTimeline(
                    camera=camera.name,
                    embedding_stamps_ns=stamps,
                    change_scores=change_score_curve(stamps, vectors, detector),
                    threshold=detector.threshold,
                    captions=_marks(self.captions[camera.name]),
                    segment_captions=_marks(self.segments[camera.name]),
                    truth=truth_changes(truth, camera.topic),
                    thumbnails=self.thumbnails[camera.name],
                    start_ns=self.first_stamps.get(camera.name),
                )
            )
        return write_report(
            timelines,
            config.out_dir / "report",
            title=f"vljepa_ros replay of {config.bag.name}",
            summary={k: summary[k] for k in ("input_bag", "model", "frames_read", "timings")},
        )


def _marks(events: Sequence[CaptionEvent]) -> list[CaptionMark]:
    return [
        CaptionMark(e.stamp_ns, e.text, int(e.reason), float(e.score), e.segment_start_ns, e.segment_end_ns)
        for e in events
    ]


def _timed(frames: Iterator[bag_io.CameraFrame], spent: list[float]) -> Iterator[bag_io.CameraFrame]:
    """`frames`, adding the time spent producing each one (reading the bag) to ``spent[0]``."""
    while True:
        start = time.perf_counter()
        frame = next(frames, None)
        spent[0] += time.perf_counter() - start
        if frame is None:
            return
        yield frame


def run_replay(config: ReplayConfig, log=print, runtime: VLJepaRuntime | None = None) -> dict:
    """Replay `config.bag` through the core; write the output bag, summary.json and the report.

    ``runtime``: a model already loaded from ``config.manifest`` to reuse (None: load it for this bag).
    Returns the summary (also written to out_dir/summary.json).
    """
    wall_start = time.perf_counter()
    config.out_dir.mkdir(parents=True, exist_ok=True)
    bag_out = config.out_dir / "bag"
    if bag_out.exists():
        raise bag_io.BagError(f"{bag_out} already exists; choose another --out or remove it")
    run = ReplayRun(config, log, runtime)
    pipeline = run.pipeline
    log(
        f"replay: model {run.model_id} ({run.model_version}) on {pipeline.runtime.provider}; "
        f"{len(config.cameras)} camera(s): " + ", ".join(f"{c.name} <- {c.topic}" for c in config.cameras)
    )
    read_s = [0.0]
    frames = bag_io.read_camera_frames(config.bag, list(run.by_topic), report=run.input)
    for frame in _timed(iter(frames), read_s):
        run.offer(frame)
        # One clip per camera makes a full batch; single-camera bags run every clip at once.
        run.drain(len(config.cameras))
    run.drain(1)
    run.decode_offline()
    counts = run.outputs.write(bag_out, config.storage)
    summary = run.summary(counts, read_s[0], time.perf_counter() - wall_start)
    if config.write_report:
        summary["report"] = str(run.write_report(summary)["html"])
    (config.out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def exit_code(summary: dict) -> int:
    """The replay's exit code for its summary (module docstring): the worst of what happened wins."""
    if summary["clips_lost_to_inference"]:
        return EXIT_INFERENCE_LOST
    if not summary["input"]["complete"] or summary["input"]["messages_lost"]:
        return EXIT_INPUT_INCOMPLETE
    return EXIT_OK if summary["all_frames_accounted"] else EXIT_UNACCOUNTED


def losses(summary: dict) -> list[str]:
    """One line per thing the run could not do in full: clips lost to inference, an incomplete input bag."""
    lines = []
    if summary["clips_lost_to_inference"]:
        errors = "; ".join(summary["inference_errors"])
        lines.append(f"{summary['clips_lost_to_inference']} clip(s) lost to inference: {errors}")
    incoming = summary["input"]
    if not incoming["complete"]:
        lines.append(
            f"input bag cut short: {incoming['problem']}; read {incoming['messages_read']} camera message(s), "
            f"last good stamp {incoming['last_good_stamp_ns']} ns"
        )
    if incoming["messages_lost"]:
        lines.append(f"messages lost in the input bag, by reason: {incoming['messages_lost']}")
    return lines


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
        frame_limits=frame_limits_from_parameters(perception),
        detector_values=detector_values_from_parameters(decoder),
        cameras=cameras_from_parameters(topics, (), args.camera_names),
        bank_path=str(decoder.get("bank_path", "")),
        num_alternatives=int(decoder.get("num_alternatives", 2)),
        uniform_rate_hz=float(decoder.get("uniform_rate_hz", 1.0)),
        query_filter=str(decoder.get("query", "")),
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
        return EXIT_REFUSED
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
    for line in losses(summary):  # on stderr even with --quiet: nothing is lost without a word
        print(f"replay: {line}", file=sys.stderr)
    return exit_code(summary)


if __name__ == "__main__":
    sys.exit(main())
