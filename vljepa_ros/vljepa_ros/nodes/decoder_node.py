"""ROS 2 node `vljepa_decoder`: embedding streams in, text only when a camera's scene meaning changes.

A thin shell around decoding.decoder_core.DecoderCore:
- subscribes to `~/embedding` (vljepa_msgs/Embedding). Remap it to the perception node's output, e.g.
  `--ros-args -r ~/embedding:=/vljepa_perception/embedding` (the launch files and `bringup` do this);
- keeps one change-detection stream per `camera` field and publishes vljepa_msgs/Caption on `~/caption` only
  when a segment is decoded (first decode, change, confirm, heartbeat), stamped with an input stamp inside the segment
  and the camera's frame_id; vljepa_msgs/DecodeStatistics per camera on `~/decode_statistics` every
  `statistics_period_s`; one /diagnostics status per camera plus one for the node;
- decodes with the captions bank of `model_manifest` (the perception node's model; the launch file and
  `bringup` give both nodes the same) unless `bank_path` names one; a bank whose dimension differs from the
  model's is refused at start-up (one line, exit 2) and at runtime;
- the detector parameters, `uniform_rate_hz` and `bank_path` (the candidate captions) change at runtime; an
  invalid value is refused with a reason and the old one kept.

What becomes of each embedding is decided by decoding.decoder_core.DecoderCore, the code replay and
evaluate_selective run too: camera names longer than 256 bytes are refused (`rejected.camera_name_too_long`);
at most `max_streams` streams are kept, an idle one (steady time `stream_expiry_s`) is dropped with its state
and diagnostics (`streams_expired`), and when every stream is active a new camera is refused (`streams_full`);
only KIND_PREDICTED embeddings (and, with `query` set, that query) are decoded, others counted as
`ignored.kind` / `ignored.query`; a change of a camera's model_version or query restarts its stream
(`stream_resets`); malformed vectors, other dimensions and stamps going back are counted as `rejected.<reason>`.
This node keeps the parameters, topics, logs and /diagnostics. DecodeStatistics go out only for streams that
received an embedding during the period; `embeddings_received` counts every embedding taken, whatever became
of it. Embeddings lost before the callback (writer or subscription history overwritten, transport loss) are
counted from the publishers' sequence numbers (`lost_in_transport`; the Embedding message has no sequence number
of its own), next to the DDS SAMPLE_LOST count (`dds_message_lost`).
/diagnostics runs on the steady clock, so it reports before the first /clock and while /clock is paused, and
with use_sim_time it says whether /clock arrives.

Decoding happens in the subscription callback: the retrieval decoder is one (N, E) matrix product, cheap enough
for it; a learned ONNX decoder would need a worker thread like the perception node's.
"""

from __future__ import annotations

import sys

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.event_handler import QoSMessageLostInfo, SubscriptionEventCallbacks
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock as ClockMsg

from vljepa_msgs.msg import Caption, DecodeStatistics, Embedding
from vljepa_ros.decoding.bank_choice import check_bank_fits, choose_bank
from vljepa_ros.decoding.change_detection import ChangeDetectorConfig
from vljepa_ros.decoding.config import (
    DETECTOR_FIELDS,
    StreamLimits,
    detector_config,
    positive_finite,
    trigger_summary,
)
from vljepa_ros.decoding.decoder_core import (
    MAX_CAMERA_NAME_BYTES,
    REJECT_CAMERA_NAME,
    CameraInfo,
    DecoderCore,
    EmbeddingInput,
    FeedOutcome,
)
from vljepa_ros.decoding.decoders import RetrievalDecoder
from vljepa_ros.decoding.input_loss import SequenceGapCounter
from vljepa_ros.decoding.pipeline import DecodingPipeline
from vljepa_ros.nodes.diagnostics import diagnostic_status
from vljepa_ros.nodes.log_text import clipped, shorten
from vljepa_ros.nodes.node_main import run_node
from vljepa_ros.nodes.qos import profile_from_config
from vljepa_ros.nodes.rclpy_compat import MessageInfo, publication_sequence_number, publisher_gid
from vljepa_ros.nodes.ros_conversions import caption_msg, statistics_msg, time_to_ns
from vljepa_ros.perception.config import ConfigError, QosConfig
from vljepa_ros.runtime.text_bank import TextBank

NODE_NAME = "vljepa_decoder"
LOG_THROTTLE_S = 5.0
STUCK_DISARMED_S = 60.0  # warn when a camera's detector waits this long (stream time) to re-arm
_DEFAULTS = ChangeDetectorConfig()
_LIMITS = StreamLimits()
_NS_PER_S = 1_000_000_000


def _float_range(low: float, high: float) -> list[FloatingPointRange]:
    return [FloatingPointRange(from_value=low, to_value=high, step=0.0)]


def _diagnostic_value(value) -> str:
    """A detector setting as a diagnostics value: numbers compactly, words as they are."""
    return value if isinstance(value, str) else f"{value:g}"


# name -> (default, description, dynamic, extra descriptor fields)
_PARAMETERS = {
    "model_manifest": (
        "",
        "The perception node's model manifest.yaml (the launch file and bringup give both nodes the same); "
        "empty: the bundled model. Its captions bank is the default bank, and a bank must have its dimension.",
        False,
        {},
    ),
    "bank_path": (
        "",
        "Candidate captions (.npz: texts + Y-encoder embeddings); empty: the captions bank of model_manifest's "
        "model. Its dimension must be the model's. Changeable at runtime.",
        True,
        {},
    ),
    "window": (
        _DEFAULTS.window,
        "Embeddings averaged into the smoothed current embedding.",
        True,
        {"integer_range": [IntegerRange(from_value=1, to_value=1000, step=1)]},
    ),
    "threshold": (
        _DEFAULTS.threshold,
        "Change score (1 - cosine of the smoothed embedding to the segment mean) that declares a change.",
        True,
        {"floating_point_range": _float_range(0.0, 2.0)},
    ),
    "rearm_fraction": (
        _DEFAULTS.rearm_fraction,
        "Hysteresis: after a decode, re-arm once the score is below "
        "threshold * rearm_fraction (1.0: at the threshold).",
        True,
        {"floating_point_range": _float_range(0.0, 1.0)},
    ),
    "settle": (
        _DEFAULTS.settle,
        "Embeddings to wait after a change before decoding the new segment.",
        True,
        {"integer_range": [IntegerRange(from_value=0, to_value=1000, step=1)]},
    ),
    "min_interval_s": (
        _DEFAULTS.min_interval_s,
        "Minimum time between two decodes of a camera (stamp time).",
        True,
        {},
    ),
    "max_interval_s": (
        _DEFAULTS.max_interval_s,
        "Heartbeat: decode the current segment after this long without a decode; 0 disables.",
        True,
        {},
    ),
    "provisional": (
        _DEFAULTS.provisional,
        "Decode a change at once when the score crosses the threshold, then publish the settled decode only "
        "if its text differs (REASON_CONFIRM).",
        True,
        {},
    ),
    "reconfirm_s": (
        _DEFAULTS.reconfirm_s,
        "Decode a segment once more this long (stamp time) after its decode and publish it (REASON_CONFIRM) "
        "only if its text differs; 0 disables.",
        True,
        {},
    ),
    "trigger": (
        _DEFAULTS.trigger,
        "When to decode: 'change' (the change detector: window, threshold, settle, ...) or 'margin' (decode "
        "once the embedding left the last decode's certified radius, where its caption cannot have changed).",
        True,
        {},
    ),
    "drift_floor": (
        _DEFAULTS.drift_floor,
        "Margin trigger: never decode within this distance of the last decoded embedding (trades exactness "
        "for fewer decodes); 0: the certified radius only.",
        True,
        {"floating_point_range": _float_range(0.0, 2.0)},
    ),
    "drift_radius": (
        _DEFAULTS.drift_radius,
        "Margin trigger: decode radius for a decoder that certifies none (a generative one); 0: every embedding.",
        True,
        {"floating_point_range": _float_range(0.0, 2.0)},
    ),
    "still_step": (
        _DEFAULTS.still_step,
        "Margin trigger: the stream is still while consecutive (smoothed) embeddings move less than this "
        "(1 - cosine); once still after a move, the settled embedding is decoded (REASON_CONFIRM, published only "
        "if its text differs). 0: no settle decode.",
        True,
        {"floating_point_range": _float_range(0.0, 2.0)},
    ),
    "still_count": (
        _DEFAULTS.still_count,
        "Margin trigger: still embeddings in a row, after a move, before the settle decode.",
        True,
        {"integer_range": [IntegerRange(from_value=1, to_value=1000, step=1)]},
    ),
    "settle_floor": (
        _DEFAULTS.settle_floor,
        "Margin trigger: no settle decode within this distance of the last decoded embedding (nor within its "
        "certified radius).",
        True,
        {"floating_point_range": _float_range(0.0, 2.0)},
    ),
    "uniform_rate_hz": (1.0, "Uniform decoding rate the decode statistics compare against.", True, {}),
    "num_alternatives": (2, "Runner-up captions reported per decode.", False, {}),
    "query": (
        "",
        "Only use embeddings answering this query; empty: any query (a change restarts the stream).",
        False,
        {},
    ),
    "input_qos": ("DEFAULT", "QoS preset of ~/embedding: SENSOR_DATA|DEFAULT|SYSTEM_DEFAULT.", False, {}),
    "input_qos_depth": (50, "History depth of ~/embedding.", False, {}),
    "output_qos": ("DEFAULT", "QoS preset of ~/caption and ~/decode_statistics.", False, {}),
    "output_qos_depth": (10, "History depth of the outputs.", False, {}),
    "statistics_period_s": (5.0, "Period of ~/decode_statistics messages.", False, {}),
    "diagnostics_period_s": (1.0, "Period of /diagnostics messages.", False, {}),
    "stall_timeout_s": (5.0, "Warn on /diagnostics when no embedding arrived for this long.", False, {}),
    "max_streams": (
        _LIMITS.max_streams,
        "Most camera streams kept; a new camera beyond it is refused (streams_full) unless an idle one expires.",
        False,
        {},
    ),
    "stream_expiry_s": (
        _LIMITS.stream_expiry_s,
        "A camera stream idle (steady time) this long is dropped with its state and diagnostics.",
        False,
        {},
    ),
}


def load_bank(path_param: str, model_manifest: str) -> tuple[TextBank, str]:
    """Bank for the `bank_path` parameter value ('' = the model's captions bank), checked against the model of
    `model_manifest` ('' = bundled); ConfigError names the parameter (decoding/bank_choice.py decides)."""
    choice = choose_bank(path_param, model_manifest)
    path = choice.path
    try:
        bank = TextBank.load(path)
    except OSError as err:
        raise ConfigError(
            "bank_path", f"cannot load {clipped(str(path))}: {err.strerror or type(err).__name__}"
        ) from None
    except ValueError as err:
        raise ConfigError("bank_path", f"cannot load {clipped(str(path))}: {shorten(str(err), 200)}") from None
    check_bank_fits(choice, bank.dim)
    return bank, str(path)


class DecoderNode(Node):
    """The selective decoding node. ``kwargs`` go to rclpy Node (tests pass ``parameter_overrides``).

    Raises ConfigError from the constructor for an invalid parameter or an unreadable bank; ``main`` turns it
    into one line and exit code 2.
    """

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        for name, (default, description, dynamic, extra) in _PARAMETERS.items():
            self.declare_parameter(
                name, default, ParameterDescriptor(description=description, read_only=not dynamic, **extra)
            )
        p = self._param
        bank, source = load_bank(p("bank_path"), p("model_manifest"))
        num_alternatives = p("num_alternatives")
        if isinstance(num_alternatives, bool) or not isinstance(num_alternatives, int) or num_alternatives < 0:
            raise ConfigError("num_alternatives", f"must be an integer >= 0, got {num_alternatives!r}")
        self._decoder = RetrievalDecoder(bank, num_alternatives=num_alternatives, source=source)
        for name in ("uniform_rate_hz", "statistics_period_s", "diagnostics_period_s", "stall_timeout_s"):
            positive_finite(name, p(name))
        self.core = DecoderCore(
            self._decoder,
            detector_config(self._values()),
            StreamLimits(p("max_streams"), p("stream_expiry_s")),
            query_filter=str(p("query")),
            uniform_rate_hz=p("uniform_rate_hz"),
        )
        self._cameras = self.core.cameras
        self._caption_count = 0
        self._embeddings_received = 0  # every callback: refused, ignored, rejected or fed
        # Receive times, stalls and expiry use steady time: sim time may not have started, pause or jump back.
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._last_receive_ns: int | None = None
        self._input_loss = SequenceGapCounter()
        self._dds_message_lost = 0
        self._reported = {
            "streams_full": 0,
            f"rejected.{REJECT_CAMERA_NAME}": 0,
            "lost_in_transport": 0,
            "dds_message_lost": 0,
        }
        self._use_sim_time = bool(p("use_sim_time"))
        self._clock_messages = 0
        self._last_clock_ns: int | None = None

        in_qos = profile_from_config(QosConfig.parse("input_qos", p("input_qos"), p("input_qos_depth")))
        out_qos = profile_from_config(QosConfig.parse("output_qos", p("output_qos"), p("output_qos_depth")))
        self._caption_pub = self.create_publisher(Caption, "~/caption", out_qos)
        self._statistics_pub = self.create_publisher(DecodeStatistics, "~/decode_statistics", out_qos)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._subscription = self.create_subscription(
            Embedding,
            "~/embedding",
            self._on_embedding,
            in_qos,
            event_callbacks=SubscriptionEventCallbacks(message_lost=self._on_message_lost),
        )
        if self._use_sim_time:
            # Watch /clock next to rclpy's own time source, only to report on it (same QoS as rclpy's).
            self.create_subscription(
                ClockMsg, "/clock", self._on_clock, QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
            )
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.create_timer(p("statistics_period_s"), self._publish_statistics, clock=self._steady)
        self.create_timer(p("diagnostics_period_s"), self._publish_diagnostics, clock=self._steady)
        cfg = self.pipeline.config
        self.get_logger().info(
            f"listening on {self._subscription.topic_name}; bank {source} ({len(bank)} captions, dim {bank.dim}); "
            f"{trigger_summary(cfg)}; at most {p('max_streams')} "
            f"streams, idle ones expire after {p('stream_expiry_s'):g} s"
        )

    @property
    def pipeline(self) -> DecodingPipeline:
        """The core's per-camera detection and decoding (read by tests and diagnostics)."""
        return self.core.pipeline

    # ----- configuration ------------------------------------------------------------------------------

    def _param(self, name: str):
        return self.get_parameter(name).value

    def _values(self, changes: dict | None = None) -> dict:
        values = {name: self._param(name) for name in DETECTOR_FIELDS}
        values.update(changes or {})
        return values

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """Validate the whole change first, then apply it (all-or-nothing)."""
        changes = {param.name: param.value for param in params}
        try:
            config = None
            if set(changes) & set(DETECTOR_FIELDS):
                config = detector_config(self._values(changes))
            rate = changes.get("uniform_rate_hz")
            if rate is not None:
                positive_finite("uniform_rate_hz", rate)
            bank = load_bank(changes["bank_path"], self._param("model_manifest")) if "bank_path" in changes else None
        except ConfigError as err:
            reason = shorten(str(err), 300)
            self.get_logger().warning(f"parameter change refused: {reason}")
            return SetParametersResult(successful=False, reason=reason)
        if config is not None:
            self.pipeline.set_config(config)
        if rate is not None:
            self.pipeline.set_uniform_rate_hz(float(rate))
        if bank is not None:
            new_bank, source = bank
            if new_bank.dim != self._decoder.embedding_dim:
                self._decoder = RetrievalDecoder(new_bank, self._param("num_alternatives"), source)
                self.pipeline.set_decoder(self._decoder)  # streams restart: old vectors do not fit
            else:
                self._decoder.replace_bank(new_bank, source)
            self.get_logger().info(f"caption bank now {clipped(source)} ({len(new_bank)} captions, dim {new_bank.dim})")
        for name, value in changes.items():
            self.get_logger().info(f"{name} set to {clipped(value)}")
        return SetParametersResult(successful=True)

    # ----- input --------------------------------------------------------------------------------------

    def _on_message_lost(self, info: QoSMessageLostInfo) -> None:
        self._dds_message_lost += info.total_count_change
        self.get_logger().warning(
            f"DDS reports {info.total_count_change} embedding(s) lost on {self._subscription.topic_name} "
            f"(dds_message_lost: {self._dds_message_lost})",
            throttle_duration_sec=LOG_THROTTLE_S,
        )

    def _on_clock(self, _msg: ClockMsg) -> None:
        self._clock_messages += 1
        self._last_clock_ns = self._steady.now().nanoseconds

    def _count_lost(self, msg_info: MessageInfo) -> None:
        gap = self._input_loss.observe(publisher_gid(msg_info), publication_sequence_number(msg_info))
        if gap:
            self.get_logger().warning(
                f"{gap} embedding(s) lost before the callback (lost_in_transport: {self._input_loss.lost}): the "
                f"publisher outran input_qos_depth ({self._param('input_qos_depth')}) or the transport dropped them",
                throttle_duration_sec=LOG_THROTTLE_S,
            )

    def _on_embedding(self, msg: Embedding, msg_info: MessageInfo) -> None:
        self._embeddings_received += 1
        self._count_lost(msg_info)
        now_ns = self._steady.now().nanoseconds
        self._last_receive_ns = now_ns
        item = EmbeddingInput(
            camera=msg.camera,
            frame_id=msg.header.frame_id,
            stamp_ns=time_to_ns(msg.header.stamp),
            vector=np.frombuffer(msg.data, dtype=np.float32),
            kind=msg.kind,
            model_id=msg.model_id,
            model_version=msg.model_version,
            query=msg.query,
            shape=tuple(msg.shape),
        )
        outcome = self.core.feed(item, now_ns)
        self._log_outcome(item, outcome)
        if outcome.event is not None:
            self._caption_pub.publish(caption_msg(outcome.event, item.model_id, item.model_version))
            self._caption_count += 1

    def _log_outcome(self, item: EmbeddingInput, outcome: FeedOutcome) -> None:
        """One (throttled) log line for what the core decided about an embedding, when it is worth one."""
        log, camera, topic = self.get_logger(), clipped(item.camera), self._subscription.topic_name
        if outcome.expired:
            log.info(
                f"{len(outcome.expired)} stream(s) idle for {self.core.cameras.limits.stream_expiry_s:g} s expired, "
                f"e.g. camera {clipped(outcome.expired[0])} (streams_expired: {self.core.cameras.expired})",
                throttle_duration_sec=LOG_THROTTLE_S,
            )
        if outcome.reason == REJECT_CAMERA_NAME:
            log.warning(
                f"refused an embedding whose camera name ({shorten(item.camera, 40)}) is longer than "
                f"{MAX_CAMERA_NAME_BYTES} bytes (rejected.{REJECT_CAMERA_NAME}: "
                f"{self.core.refused[REJECT_CAMERA_NAME]}); check who publishes on {topic}",
                throttle_duration_sec=LOG_THROTTLE_S,
            )
        elif outcome.reason == "streams_full":
            limits = self.core.cameras.limits
            log.warning(
                f"camera {camera}: refused, all {limits.max_streams} streams were active within "
                f"{limits.stream_expiry_s:g} s (streams_full: {self.core.cameras.refused_full}); raise max_streams or "
                f"check who publishes on {topic}",
                throttle_duration_sec=LOG_THROTTLE_S,
            )
        elif outcome.status == "ignored" and outcome.reason == "kind":
            log.warning(
                f"camera {camera}: ignoring Embedding of {outcome.detail} (only KIND_PREDICTED is decoded); is "
                f"{topic} remapped to the right topic?",
                throttle_duration_sec=LOG_THROTTLE_S,
            )
        elif outcome.status == "rejected":
            log.warning(
                f"camera {camera}: rejected an embedding (rejected.{outcome.reason}): {shorten(outcome.detail, 200)}",
                throttle_duration_sec=LOG_THROTTLE_S,
            )
        if outcome.reset_from is not None:
            old_version, old_query = outcome.reset_from
            info = self.core.cameras.get(item.camera)
            log.info(
                f"camera {camera}: model {clipped(old_version)} query {clipped(old_query)} -> "
                f"{clipped(item.model_version)} {clipped(item.query)}; restarting its stream (stream_resets: "
                f"{info.stream_resets if info else '?'})"
            )
        event = outcome.event
        if event is not None:
            log.info(
                f"[{shorten(item.camera)}] {clipped(event.text)} ({event.reason.name.lower()}, score "
                f"{event.score:.3f}, change {event.change_score:.3f}, {event.num_embeddings} embeddings)"
            )

    # ----- output -------------------------------------------------------------------------------------

    def _publish_statistics(self) -> None:
        """One DecodeStatistics per stream that received an embedding since the previous ones (unchanged otherwise)."""
        for camera, info in self._cameras.items():
            if info.fed_since_statistics and camera in self.pipeline.cameras:
                info.fed_since_statistics = False
                self._statistics_pub.publish(statistics_msg(self.pipeline.statistics(camera)))

    def _publish_diagnostics(self) -> None:
        now_ns = self._steady.now().nanoseconds
        self.core.expire_idle(now_ns)
        out = DiagnosticArray()
        out.header.stamp = self.get_clock().now().to_msg()
        out.status.append(self._node_status(now_ns))
        for camera, info in self._cameras.items():
            out.status.append(self._camera_status(camera, info, now_ns))
        self._diagnostics_pub.publish(out)

    def _new_since_last_report(self, counts: dict[str, int]) -> dict[str, int]:
        """The counters in `counts` that grew since the previous diagnostics, by how much."""
        grown = {name: n - self._reported[name] for name, n in counts.items() if n > self._reported[name]}
        self._reported.update(counts)
        return grown

    def _sim_time_values(self, now_ns: int) -> tuple[dict[str, str], str | None]:
        """Diagnostics values about /clock, and a problem when use_sim_time is set but /clock is silent."""
        if not self._use_sim_time:
            return {"use_sim_time": "False"}, None
        since = None if self._last_clock_ns is None else (now_ns - self._last_clock_ns) / _NS_PER_S
        values = {
            "use_sim_time": "True",
            "clock_received": str(self._clock_messages > 0),
            "clock_messages": str(self._clock_messages),
            "seconds_since_last_clock": "n/a" if since is None else f"{since:.2f}",
        }
        if since is None:
            return values, "use_sim_time is set but no /clock message arrived yet (sim time stands at 0)"
        if since > self._param("stall_timeout_s"):
            return values, f"no /clock message for {since:.1f} s (sim time paused)"
        return values, None

    def _node_status(self, now_ns: int) -> DiagnosticStatus:
        cfg = self.pipeline.config
        limits = self._cameras.limits
        last = self._last_receive_ns
        silent_s = None if last is None else (now_ns - last) / _NS_PER_S
        stall = self._param("stall_timeout_s")
        counts = {
            "streams_full": self._cameras.refused_full,
            f"rejected.{REJECT_CAMERA_NAME}": self.core.refused[REJECT_CAMERA_NAME],
            "lost_in_transport": self._input_loss.lost,
            "dds_message_lost": self._dds_message_lost,
        }
        sim_values, sim_problem = self._sim_time_values(now_ns)
        values = {
            "input_topic": self._subscription.topic_name,
            "bank": self._decoder.source,
            "bank_size": str(len(self._decoder.bank)),
            "embedding_dim": str(self._decoder.embedding_dim),
            "embeddings_received": str(self._embeddings_received),
            "captions_published": str(self._caption_count),
            "cameras": str(len(self._cameras)),
            "max_streams": str(limits.max_streams),
            "stream_expiry_s": f"{limits.stream_expiry_s:g}",
            "streams_expired": str(self._cameras.expired),
            **{name: str(n) for name, n in counts.items()},
            "embeddings_without_sequence_number": str(self._input_loss.unnumbered),
            **sim_values,
            **{name: _diagnostic_value(getattr(cfg, name)) for name in DETECTOR_FIELDS},
        }
        problems = []
        if silent_s is None or silent_s > stall:
            waited = "no embedding yet" if silent_s is None else f"no embedding for {silent_s:.1f} s"
            problems.append(f"{waited} on {self._subscription.topic_name}")
        grown = self._new_since_last_report(counts)
        if grown:
            problems.append("since the last report: " + ", ".join(f"{name} +{n}" for name, n in grown.items()))
        if sim_problem:
            problems.append(sim_problem)
        level = DiagnosticStatus.WARN if problems else DiagnosticStatus.OK
        message = "; ".join(problems) or "ok"
        return diagnostic_status(level, f"{self.get_name()}: decoder", message, self._subscription.topic_name, values)

    def _camera_status(self, camera: str, info: CameraInfo, now_ns: int) -> DiagnosticStatus:
        values = {
            "model": f"{info.model_id} ({info.model_version})",
            "query": info.query,
            "stream_resets": str(info.stream_resets),
            "last_caption": info.last_caption,
            "seconds_since_last_embedding": f"{(now_ns - info.last_receive_ns) / _NS_PER_S:.2f}",
        }
        values.update({f"ignored.{k}": str(n) for k, n in sorted(info.ignored.items())})
        problems = []
        if camera in self.pipeline.cameras:
            stats = self.pipeline.statistics(camera)
            values.update(
                {
                    "embeddings_seen": str(stats.embeddings_seen),
                    "decodes": str(stats.decodes),
                    "decodes_per_minute": f"{stats.decodes_per_minute:.2f}",
                    "stream_seconds": f"{stats.stream_seconds:.1f}",
                    "uniform_decodes": str(stats.uniform_decodes),
                    "reduction_factor": f"{stats.reduction_factor:.2f}",
                    "transients": str(stats.transients),
                    "clock_restarts": str(stats.clock_restarts),
                    "last_change_score": f"{stats.last_score:.4f}",
                    "disarmed_seconds": f"{stats.disarmed_seconds:.1f}",
                }
            )
            values.update({f"rejected.{k}": str(n) for k, n in sorted(stats.rejected.items())})
            if stats.rejected:
                problems.append(f"rejected embeddings: {dict(stats.rejected)}")
            if stats.disarmed_seconds > STUCK_DISARMED_S:
                cfg = self.pipeline.config
                problems.append(
                    f"change score ({stats.last_score:.3f}) has not fallen below the re-arm level "
                    f"{cfg.threshold * cfg.rearm_fraction:.3f} for {stats.disarmed_seconds:.0f} s: no change can "
                    f"be detected; threshold is probably under this stream's noise, raise it"
                )
        if info.ignored:
            problems.append(f"ignored embeddings: {dict(info.ignored)}")
        level = DiagnosticStatus.WARN if problems else DiagnosticStatus.OK
        return diagnostic_status(
            level, f"{self.get_name()}: camera {camera}", "; ".join(problems) or "ok", camera, values
        )


def main(args=None) -> int:
    """Console script `decoder_node`: spin until shutdown; exit 2 with one line if start-up is refused."""
    return run_node(DecoderNode, NODE_NAME, SingleThreadedExecutor, args)


if __name__ == "__main__":
    sys.exit(main())
