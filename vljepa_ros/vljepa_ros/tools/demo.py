"""The default demo: a tiny-world bag played in real time into the real nodes; captions only at scene changes.

1. Generates a tiny-world stream as a ROS 2 bag with its ground truth (cached under the output folder).
2. Starts the perception and selective-decoding nodes (`bringup`, a separate process) with the package's
   config/vljepa.yaml and the bundled model, following the bag's /clock.
3. Plays the bag over DDS at 1x (`live_replay`), records the nodes' outputs into a bag, and prints every
   caption as the decoder publishes it, next to the ground-truth scene change it answers.
4. Prints the decodes against the true changes and uniform 1 Hz decoding, writes the report (timeline PNG +
   HTML) and says where the output bag and the report are.

Both processes use the transport of config/transport.env where the environment does not set it (large
images through shared memory; DDS discovery kept on this host, ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST) and
the demo uses its own ROS_DOMAIN_ID unless one is set, so nothing leaves the machine and concurrent runs do
not interfere.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.serialization import deserialize_message

from vljepa_msgs.msg import Caption
from vljepa_ros.bags import bag_io
from vljepa_ros.bags.live_replay import LiveReplayConfig, LiveReplayer
from vljepa_ros.bags.recorder import TopicRecorder
from vljepa_ros.decoding.bank_choice import choose_bank
from vljepa_ros.decoding.config import detector_config, detector_values_from_parameters
from vljepa_ros.decoding.decoders import RetrievalDecoder
from vljepa_ros.decoding.pipeline import decode_segments, uniform_decode_count
from vljepa_ros.nodes.dds_transport import apply_transport_defaults
from vljepa_ros.runtime.bundled_model import bundled_manifest_path
from vljepa_ros.runtime.manifest import load_manifest
from vljepa_ros.runtime.text_bank import TextBank
from vljepa_ros.tiny_world.bag_writer import write_stream_bag
from vljepa_ros.tiny_world.stream import StreamConfig, generate_stream
from vljepa_ros.tools import report
from vljepa_ros.tools.ground_truth import load_truth, truth_changes
from vljepa_ros.tools.node_process import stop_process
from vljepa_ros.tools.params_file import default_params_file, node_parameters
from vljepa_ros.tools.selective_eval import Decode, EvalStream, in_effect_time_fraction, uniform_decodes

CAMERA_TOPIC = "/camera/image_raw"
CAMERA = "camera"
EMBEDDING_TOPIC = "/vljepa_perception/embedding"
TRANSITION_TOPIC = "/vljepa_perception/world_state_transition"
CAPTION_TOPIC = "/vljepa_decoder/caption"
STATISTICS_TOPIC = "/vljepa_decoder/decode_statistics"
RECORDED = (
    (EMBEDDING_TOPIC, "vljepa_msgs/msg/Embedding"),
    (TRANSITION_TOPIC, "vljepa_msgs/msg/WorldStateTransition"),
    (CAPTION_TOPIC, "vljepa_msgs/msg/Caption"),
    (STATISTICS_TOPIC, "vljepa_msgs/msg/DecodeStatistics"),
)
REASONS = {0: "first", 1: "change", 2: "heartbeat", 3: "segment", 4: "confirm"}
NODES_START_TIMEOUT_S = 90.0
DRAIN_QUIET_S = 2.0


@dataclass(frozen=True)
class DemoOptions:
    """What the demo runs; validated on construction."""

    out_dir: Path
    seed: int = 0
    duration_s: float = 45.0
    rate: float = 1.0
    model: Path | None = None
    bag: Path | None = None
    params_file: Path | None = None

    def __post_init__(self):
        if not 5.0 <= self.duration_s <= 600.0:
            raise ValueError(f"duration must be between 5 and 600 s, got {self.duration_s}")
        if not self.rate > 0:
            raise ValueError(f"rate must be > 0, got {self.rate}")
        if self.model is not None and not self.model.is_file():
            raise ValueError(f"model: no manifest at {self.model}")
        if self.bag is not None and not self.bag.is_dir():
            raise ValueError(f"bag: no bag folder at {self.bag}")


def _say(text: str = "") -> None:
    print(text, flush=True)


def _rel_s(stamp_ns: int, start_ns: int) -> float:
    return (stamp_ns - start_ns) / 1e9


def prepare_bag(options: DemoOptions) -> tuple[Path, dict | None]:
    """The input bag and its ground truth: the given bag, or a tiny-world stream generated once and cached."""
    if options.bag is not None:
        return options.bag, load_truth(options.bag)
    bag = options.out_dir / f"tiny_world_seed{options.seed}_{options.duration_s:g}s"
    truth = load_truth(bag) if (bag / "metadata.yaml").is_file() else None
    if truth is None:
        shutil.rmtree(bag, ignore_errors=True)
        _say(f"[demo] generating a {options.duration_s:g} s tiny-world stream (seed {options.seed}) -> {bag}")
        started = time.monotonic()
        truth = write_stream_bag(generate_stream(StreamConfig(seed=options.seed, duration_s=options.duration_s)), bag)
        _say(
            f"[demo]   {truth['frame_count']} frames {truth['width']}x{truth['height']} at {truth['fps']:g} Hz "
            f"in {time.monotonic() - started:.1f} s"
        )
    else:
        _say(f"[demo] using the cached tiny-world bag {bag}")
    return bag, truth


def print_truth(truth: dict | None) -> None:
    """The scene segments the decoder should find."""
    if not truth:
        _say("[demo] no ground truth for this bag")
        return
    _say(
        f"[demo] ground truth: {len(truth['segments'])} scenes, {len(truth['change_times_s'])} changes of meaning "
        f"(other events move things without changing the caption)"
    )
    for segment in truth["segments"]:
        _say(f"         {segment['start_s']:6.2f} - {segment['end_s']:6.2f} s  {segment['caption']}")
    silent = [e for e in truth["events"] if not e["changes_caption"]]
    if silent:
        _say("[demo] events that do not change the scene's meaning (the decoder should stay quiet):")
        for event in silent:
            _say(f"         {event['start_s']:6.2f} - {event['end_s']:6.2f} s  {event['action']}")


def start_nodes(options: DemoOptions, log_path: Path) -> subprocess.Popen:
    """`bringup` in its own process (its log goes to `log_path`), following /clock."""
    command = [sys.executable, "-m", "vljepa_ros.tools.bringup", "--use-sim-time", "--camera-topics", CAMERA_TOPIC]
    if options.model is not None:
        command += ["--model", str(options.model)]
    if options.params_file is not None:
        command += ["--params-file", str(options.params_file)]
    log = log_path.open("w")
    return subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy(), start_new_session=True
    )


class CaptionPrinter:
    """Prints each caption as it arrives with the true change it answers (decoder's stamp vs truth)."""

    def __init__(self, truth: dict | None, start_ns: int):
        self._deserialize = lambda raw: deserialize_message(raw, Caption)
        self._changes = [(int(s["start_ns"]), s["caption"]) for s in (truth or {}).get("segments", [])[1:]]
        self._start_ns = start_ns
        self.captions: list = []
        self.embeddings = 0
        self.last_output_monotonic = time.monotonic()
        self._lock = threading.Lock()

    def on_message(self, topic: str, raw: bytes) -> None:
        """Recorder callback (executor thread)."""
        with self._lock:
            self.last_output_monotonic = time.monotonic()
            if topic == EMBEDDING_TOPIC:
                self.embeddings += 1
                return
            if topic != CAPTION_TOPIC:
                return
            message = self._deserialize(raw)
            self.captions.append(message)
        stamp = bag_io.stamp_to_ns(message.header.stamp)
        line = (
            f'[caption] t={_rel_s(stamp, self._start_ns):6.2f} s  {message.camera}: "{message.text}"  '
            f"({REASONS.get(message.reason, message.reason)}, score {message.score:.2f})"
        )
        if message.reason == 0:
            line += "  <- first view of the scene"
        elif self._changes:
            before = [c for c in self._changes if c[0] <= stamp]
            if before:
                change_ns, caption = before[-1]
                line += (
                    f"  <- true change at {_rel_s(change_ns, self._start_ns):6.2f} s "
                    f"(+{_rel_s(stamp, change_ns):.2f} s)"
                )
                if caption != message.text:
                    line += f', truth says "{caption}"'
        _say(line)


def wait_for_nodes(node, process: subprocess.Popen, timeout_s: float) -> bool:
    """True once the decoder's caption publisher and the perception node's camera subscriber are visible."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if (
            node.count_publishers(CAPTION_TOPIC)
            and node.count_publishers(EMBEDDING_TOPIC)
            and node.count_subscribers(CAMERA_TOPIC)
        ):
            return True
        time.sleep(0.1)
    return False


def answer_window_s(options: DemoOptions) -> float:
    """How long after a true change its caption may come: clip fill + smoothing window + the trigger's settle
    wait + minimum interval of the model and decoder parameters the nodes run with
    (report.decode_latency_bound_s)."""
    params_file = options.params_file or default_params_file()
    detector = detector_config(detector_values_from_parameters(node_parameters(params_file, "vljepa_decoder")))
    perception = node_parameters(params_file, "vljepa_perception")
    clip = load_manifest(options.model or bundled_manifest_path(), check_files=False).clip
    return report.decode_latency_bound_s(clip.frames, perception.get("frame_rate_hz") or clip.frame_rate_hz, detector)


def match_changes(truth: dict | None, captions: Sequence, window_s: float) -> list[dict]:
    """For each true change: the caption in effect once the decoder has had `window_s` to answer it (the last
    non-FIRST caption within `window_s` after it: a provisional caption and the CONFIRM that corrected it
    answer together), its time and correctness; `first_s` is the first caption within the window."""
    rows = []
    if not truth:
        return rows
    stamps = [(bag_io.stamp_to_ns(c.header.stamp), c) for c in captions if c.reason != 0]
    for segment in truth["segments"][1:]:
        change_ns = int(segment["start_ns"])
        within = [(s, c) for s, c in stamps if 0 <= s - change_ns <= window_s * 1e9]
        answer = within[-1] if within else None
        rows.append(
            {
                "change_s": segment["start_s"],
                "truth": segment["caption"],
                "caption_s": None if answer is None else segment["start_s"] + (answer[0] - change_ns) / 1e9,
                "first_s": None if answer is None else segment["start_s"] + (within[0][0] - change_ns) / 1e9,
                "captions_in_window": len(within),
                "text": None if answer is None else answer[1].text,
                "correct": answer is not None and answer[1].text == segment["caption"],
            }
        )
    return rows


def silent_events_quiet(truth: dict | None, captions: Sequence, window_s: float) -> dict[str, bool]:
    """For each event that keeps the caption: True when no caption came from its start to `window_s` after its
    end (unless that caption answers a true change inside the same span)."""
    if not truth:
        return {}
    changes = [int(s["start_ns"]) for s in truth["segments"][1:]]
    result = {}
    for event in truth["events"]:
        if event["changes_caption"]:
            continue
        low, high = int(event["start_ns"]), int(event["end_ns"] + window_s * 1e9)
        spoke = [
            c
            for c in captions
            if low <= bag_io.stamp_to_ns(c.header.stamp) <= high
            and c.reason != 0
            and not any(0 <= bag_io.stamp_to_ns(c.header.stamp) - t <= window_s * 1e9 for t in changes)
        ]
        result[f"{event['action']} at {event['start_s']:.1f} s"] = not spoke
    return result


def node_decoder(options: DemoOptions) -> RetrievalDecoder:
    """The retrieval decoder over the caption bank the decoder node runs with."""
    params = node_parameters(options.params_file or default_params_file(), "vljepa_decoder")
    return RetrievalDecoder(TextBank.load(choose_bank(params.get("bank_path", ""), str(options.model or "")).path))


def described_embeddings(recorded: Path) -> list:
    """The recorded "describe the scene" embeddings (kind 1), the ones the decoder captions."""
    return [m for _, m in bag_io.read_messages(recorded, EMBEDDING_TOPIC) if m.kind == 1]


def in_effect_shares(truth: dict, captions: Sequence, embeddings: Sequence, decoder: RetrievalDecoder) -> dict:
    """Fraction of the time, over the span with embeddings, that the caption in effect is the true one: the
    captions as the subscriber held them (by their stamps) and uniform 1 Hz decoding of the same embeddings."""
    stamps = np.asarray([bag_io.stamp_to_ns(m.header.stamp) for m in embeddings], dtype=np.int64)
    vectors = np.stack([np.asarray(m.data, np.float32) for m in embeddings])
    first, last = int(stamps[0]), int(stamps[-1])
    live = sorted(
        (Decode(bag_io.stamp_to_ns(c.header.stamp), c.text, int(c.reason), 0) for c in captions),
        key=lambda d: d.stamp_ns,
    )
    uniform = uniform_decodes(EvalStream(0, stamps, vectors, truth), decoder, 1.0, average=False)
    return {
        "selective_live": in_effect_time_fraction(live, truth, first, last),
        "uniform_1hz": in_effect_time_fraction(uniform, truth, first, last),
        "seconds": (last - first) / 1e9,
    }


def write_demo_report(
    out_dir: Path,
    recorded: Path,
    bag: Path,
    truth: dict | None,
    options: DemoOptions,
    summary: dict,
    embeddings: Sequence,
    decoder: RetrievalDecoder,
) -> Path:
    """Timeline PNG + HTML from the recorded outputs (`embeddings`: their described embeddings, decoded by
    `decoder` into offline Ward segments for comparison)."""
    params = node_parameters(options.params_file or default_params_file(), "vljepa_decoder")
    detector = detector_config(detector_values_from_parameters(params))
    online = len(bag_io.read_messages(recorded, CAPTION_TOPIC))
    segments = {}
    if embeddings:
        events = decode_segments(
            CAMERA,
            embeddings[0].header.frame_id,
            [bag_io.stamp_to_ns(m.header.stamp) for m in embeddings],
            np.stack([np.asarray(m.data, np.float32) for m in embeddings]),
            decoder,
            n_segments=max(1, online),
        )
        segments[CAMERA] = [
            report.CaptionMark(e.stamp_ns, e.text, int(e.reason), e.score, e.segment_start_ns, e.segment_end_ns)
            for e in events
        ]
    timelines = report.timelines_from_bags(
        recorded,
        bag,
        camera_topics={CAMERA: CAMERA_TOPIC},
        truth={CAMERA: truth_changes(truth, CAMERA_TOPIC)},
        detector=detector,
        segment_topic=None,
        extra_segments=segments,
        start_ns=int(truth["start_ns"]) if truth else first_stamp(bag),
    )
    title = "vljepa_ros demo: live nodes on a tiny-world bag"
    return report.write_report(timelines, out_dir / "report", title=title, summary=summary)["html"]


def run_demo(options: DemoOptions) -> int:
    """The whole demo; returns the exit code."""
    options.out_dir.mkdir(parents=True, exist_ok=True)
    bag, truth = prepare_bag(options)
    print_truth(truth)
    run_dir = options.out_dir / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    recorded = run_dir / "outputs_bag"
    log_path = run_dir / "nodes.log"

    _say(f"[demo] starting the nodes (bringup: vljepa_perception + vljepa_decoder, use_sim_time), log {log_path}")
    process = start_nodes(options, log_path)
    rclpy.init(args=["demo", "--ros-args", "-p", "use_sim_time:=true"])
    recorder = replayer = executor = None
    spinner = None
    try:
        start_ns = int(truth["start_ns"]) if truth else first_stamp(bag)
        printer = CaptionPrinter(truth, start_ns)
        recorder = TopicRecorder(recorded, RECORDED, on_message=printer.on_message, node_name="vljepa_demo_recorder")
        executor = SingleThreadedExecutor()
        executor.add_node(recorder.node)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        started = time.monotonic()
        if not wait_for_nodes(recorder.node, process, NODES_START_TIMEOUT_S):
            _say(f"[demo] the nodes did not come up (exit code {process.poll()}); last lines of {log_path}:")
            _say("\n".join(log_path.read_text().splitlines()[-15:]))
            return 1
        _say(f"[demo] nodes up in {time.monotonic() - started:.1f} s:")
        for line in log_path.read_text().splitlines():
            if "]: model " in line or "listening on" in line or "debug images on" in line:
                _say("         " + line.split("]: ", 1)[-1])
        replayer = LiveReplayer(LiveReplayConfig(bag=bag, topics=(CAMERA_TOPIC,), rate=options.rate))
        bag_s = truth["duration_s"] if truth else 0
        _say(
            f"[demo] playing {bag.name} at {options.rate:g}x ({bag_s:g} s) into {CAMERA_TOPIC}; captions as published:"
        )
        stats = replayer.run()
        # Let the nodes finish the last clips: wait until their outputs go quiet.
        deadline = time.monotonic() + 20
        while time.monotonic() - printer.last_output_monotonic < DRAIN_QUIET_S and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        code = stop_process(process)
        if executor is not None:
            executor.shutdown()  # no recorder callback may run once the bag is closed
            spinner.join(timeout=5)
        counts = recorder.close() if recorder is not None else {}
        if replayer is not None:
            replayer.destroy()
        rclpy.try_shutdown()
    _say(
        f"[demo] published {sum(stats.published.values())} frames in {stats.wall_seconds:.1f} s "
        f"(max lateness {stats.max_lateness_s * 1e3:.0f} ms); nodes exited with code {code}"
    )
    return summarize(options, bag, truth, recorded, counts, printer, run_dir)


def first_stamp(bag: Path) -> int:
    """Header stamp of the bag's first camera frame (time zero of the printed times)."""
    return next((frame.stamp_ns for frame in bag_io.read_camera_frames(bag, [CAMERA_TOPIC])), 0)


def summarize(options, bag, truth, recorded, counts, printer, run_dir) -> int:
    """Print the outcome and where everything is; 0 when the nodes produced embeddings and captions."""
    captions = printer.captions
    frames = truth["frame_count"] if truth else None
    _say("")
    _say(
        f"[demo] recorded {counts.get(EMBEDDING_TOPIC, 0)} embeddings, {counts.get(TRANSITION_TOPIC, 0)} "
        f"transitions, {counts.get(CAPTION_TOPIC, 0)} captions" + (f" from {frames} frames" if frames else "")
    )
    window_s = answer_window_s(options)
    embeddings, decoder = described_embeddings(recorded), node_decoder(options)  # read once: shares and report
    rows = match_changes(truth, captions, window_s)
    outcome = {"recorded": counts, "answer_window_s": round(window_s, 3), "changes": rows}
    if rows:
        _say(
            f"[demo] true changes vs captions (a caption answers a change if it comes within {window_s:.2f} s, "
            "the clip + smoothing + settle wait + min interval; the caption in effect at the end of that time "
            "answers it):"
        )
        _say("         true change   caption    text")
        for row in rows:
            if row["caption_s"] is None:
                _say(f'         {row["change_s"]:8.2f} s     missed     (truth: "{row["truth"]}")')
            else:
                mark = "ok" if row["correct"] else f'wrong, truth: "{row["truth"]}"'
                _say(f'         {row["change_s"]:8.2f} s  {row["caption_s"]:8.2f} s  "{row["text"]}" ({mark})')
        quiet = silent_events_quiet(truth, captions, window_s)
        outcome["quiet_during_caption_preserving_events"] = quiet
        if quiet:
            _say(
                f"[demo] no caption during {sum(quiet.values())}/{len(quiet)} caption-preserving events: "
                + ", ".join(f"{name} ({'quiet' if ok else 'spoke'})" for name, ok in quiet.items())
            )
        found = sum(r["caption_s"] is not None for r in rows)
        correct = sum(r["correct"] for r in rows)
        extra = sum(1 for c in captions if c.reason != 0) - sum(r.get("captions_in_window", 0) for r in rows)
        _say(
            f"[demo] {found}/{len(rows)} changes answered by a caption, {correct}/{len(rows)} with the true caption; "
            f"{max(0, extra)} caption(s) away from any true change"
        )
    if truth:
        uniform = uniform_decode_count(truth["duration_s"], 1.0)
        # Decoder calls: a CONFIRM that agreed with its provisional caption was decoded but not published.
        reported = [m.decodes for _, m in bag_io.read_messages(recorded, STATISTICS_TOPIC)]
        decodes = max([len(captions), *reported])
        outcome["decodes"] = {"selective": decodes, "captions": len(captions), "uniform_1hz": uniform}
        _say(
            f"[demo] decodes: {decodes} selective vs {uniform} for uniform 1 Hz decoding "
            f"({uniform / max(1, decodes):.1f}x fewer; {len(captions)} captions published)"
        )
        if embeddings:
            shares = in_effect_shares(truth, captions, embeddings, decoder)
            outcome["in_effect_time"] = shares
            _say(
                f"[demo] the caption in effect was right {shares['selective_live']:.0%} of the "
                f"{shares['seconds']:.0f} s with embeddings; uniform 1 Hz decoding of the same embeddings: "
                f"{shares['uniform_1hz']:.0%}"
            )
    report_path = write_demo_report(run_dir, recorded, bag, truth, options, outcome, embeddings, decoder)
    _say(f"[demo] output bag: {recorded}  (ros2 bag info {recorded})")
    _say(f"[demo] report:     {report_path}")
    _say(f"[demo] timeline:   {report_path.parent / ('timeline_' + CAMERA + '.png')}")
    _say(f"[demo] node log:   {run_dir / 'nodes.log'}")
    ok = counts.get(EMBEDDING_TOPIC, 0) > 0 and counts.get(CAPTION_TOPIC, 0) > 0
    if not ok:
        _say("[demo] FAILED: the nodes produced no embeddings or no captions; see the node log")
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of `demo`."""
    parser = argparse.ArgumentParser(prog="demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out") / "demo", help="output folder (default out/demo)")
    parser.add_argument("--seed", type=int, default=0, help="tiny-world stream seed")
    parser.add_argument("--duration", type=float, default=45.0, help="stream length in seconds (5-600)")
    parser.add_argument("--rate", type=float, default=1.0, help="playback rate (1.0: real time)")
    parser.add_argument("--model", type=Path, help="model manifest (default: the bundled tiny-world model)")
    parser.add_argument("--bag", type=Path, help=f"play this bag instead (camera on {CAMERA_TOPIC})")
    parser.add_argument("--params-file", type=Path, help="node parameters (default: config/vljepa.yaml)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console script `demo`."""
    args = build_parser().parse_args(argv)
    apply_transport_defaults()  # this process publishes the camera frames; the nodes' process inherits it
    os.environ.setdefault("ROS_DOMAIN_ID", str(os.getpid() % 102))  # 0-101: safe on Linux
    try:
        options = DemoOptions(
            out_dir=args.out.resolve(),
            seed=args.seed,
            duration_s=args.duration,
            rate=args.rate,
            model=args.model,
            bag=args.bag,
            params_file=args.params_file,
        )
    except ValueError as error:
        print(f"demo: {error}", file=sys.stderr)
        return 2
    try:
        return run_demo(options)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
