"""/diagnostics statuses for the perception node: one DiagnosticStatus per camera, one for the ROS clock.

Every counter a log line of the node names is on /diagnostics from the first status on (zero until counted),
so an operator who reads "counted as drops.X" in a log finds drops.X.
"""

from __future__ import annotations

from dataclasses import dataclass

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from vljepa_ros.nodes.dds_transport import PROFILE_VARIABLE
from vljepa_ros.nodes.ros_conversions import BAD_STAMP
from vljepa_ros.perception.image_conversion import REASONS as IMAGE_REASONS
from vljepa_ros.perception.results import DROP_DISABLED, DROP_INFERENCE_ERROR, DROP_OUT_OF_ORDER, DROP_WORKER_BEHIND
from vljepa_ros.perception.run_stats import StampLoss, StreamStats

DROP_PUBLISH_ERROR = "publish_error"  # a result whose message failed to build or publish (the node's own drop)
DROP_REASONS = (DROP_WORKER_BEHIND, DROP_INFERENCE_ERROR, DROP_OUT_OF_ORDER, DROP_DISABLED, DROP_PUBLISH_ERROR)
MALFORMED_REASONS = (*IMAGE_REASONS, BAD_STAMP)
# Gap restarts without a published clip between them before the "clips keep restarting" warning: one follows
# every pause, so only a run of them means the stream cannot fill a clip.
RESTARTS_BEFORE_WARNING = 3
# Share of the publisher's frames (read from the arriving stamps) that never arrived before the status warns.
LOSS_WARN_FRACTION = 0.2
# The shipped transport profile (config/transport.env lists the whole environment); the writer's transport
# decides, so the camera driver needs it as much as this node. The variable is the installed Fast DDS's.
TRANSPORT_FIX = (
    "frames are lost between the publisher and this node: set the transport profile "
    f"{PROFILE_VARIABLE}=<share>/vljepa_ros/config/fastdds_localhost_large_data.xml with "
    "ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST (config/transport.env) in every process on the host, the camera "
    "driver first"
)


@dataclass(frozen=True)
class CameraHealth:
    """Node-level facts about one camera that the stream statistics do not hold."""

    camera: str
    topic: str
    provider: str
    model: str
    enabled: bool
    stall_timeout_s: float
    incompatible_qos: int  # incompatible-QoS events seen on the input subscription
    last_qos_problem: str
    clip_resets: dict[str, int]  # clip buffer restarts by reason (stamp gaps, clock jumps back)
    frames_subsampled: int  # frames skipped on purpose to sample at the model frame rate (not drops)
    gap_restarts_since_output: int = 0  # gap restarts since the camera's last published clip
    frames_sampled: int = 0  # frames taken into clips (with malformed, sub-sampled and dropped: every frame)
    active: bool = True  # False while a lifecycle node is inactive


@dataclass(frozen=True)
class ClockHealth:
    """The ROS clock as the node sees it: with use_sim_time, /clock messages received and when the last came."""

    use_sim_time: bool
    clock_messages: int
    seconds_since_clock: float | None  # steady time since the last /clock; None before the first
    stall_timeout_s: float


def diagnostic_status(
    level: bytes, name: str, message: str, hardware_id: str, values: dict[str, str]
) -> DiagnosticStatus:
    """A DiagnosticStatus whose key-value pairs are `values` (name -> str), in their order."""
    return DiagnosticStatus(
        level=level,
        name=name,
        message=message,
        hardware_id=hardware_id,
        values=[KeyValue(key=k, value=v) for k, v in values.items()],
    )


def _fmt(value: float | None, scale: float = 1.0) -> str:
    return "n/a" if value is None else f"{value * scale:.2f}"


def _counter_values(prefix: str, known: tuple[str, ...], counts) -> dict[str, str]:
    """``prefix.reason`` for every known reason (0 until counted) and every other reason counted."""
    reasons = sorted(set(known) | set(counts))
    return {f"{prefix}.{reason}": str(counts.get(reason, 0)) for reason in reasons}


def _loss_values(loss: StampLoss) -> dict[str, str]:
    return {
        "publisher_rate_hz": _fmt(loss.publisher_rate_hz),
        "stamp_gaps": str(loss.gaps),
        "frames_missing": str(loss.missing),
        "lost_fraction": f"{loss.lost_fraction:.3f}",
    }


def camera_status(node_name: str, health: CameraHealth, stats: StreamStats, now_ns: int) -> DiagnosticStatus:
    """The status of one camera: WARN when no frame arrived for ``stall_timeout_s``, the QoS is incompatible,
    or frames arrive but never fill a clip (stamp gaps).

    Latencies: ``latency`` from the input stamp (needs synchronised clocks), ``processing`` from the frame's
    arrival in the node, ``inference`` the model time of the batch: processing - inference is the node's own cost.
    """
    silent_s = stats.seconds_since_input(now_ns)
    problems = []
    if health.enabled and (silent_s is None or silent_s > health.stall_timeout_s):
        waited = "no frame yet" if silent_s is None else f"no frame for {silent_s:.1f} s"
        problems.append(f"{waited} on {health.topic} (check the topic name and QoS)")
    input_hz, output_hz = stats.input_rate.rate_hz(now_ns), stats.output_rate.rate_hz(now_ns)
    if health.enabled and health.gap_restarts_since_output >= RESTARTS_BEFORE_WARNING and input_hz > 0:
        problems.append(
            f"frames arrive ({input_hz:.1f} Hz) but clips keep restarting after stamp gaps "
            f"({health.gap_restarts_since_output} since the last clip): is the camera slower than half of "
            "frame_rate_hz?"
        )
    loss = stats.stamp_loss.loss()
    if health.enabled and loss.publisher_rate_hz is not None and loss.lost_fraction >= LOSS_WARN_FRACTION:
        problems.append(
            f"{loss.lost_fraction:.0%} of the frames on {health.topic} are missing (its stamps say "
            f"{loss.publisher_rate_hz:.1f} Hz, {input_hz:.1f} Hz arrive): {TRANSPORT_FIX}"
        )
    if health.incompatible_qos:
        problems.append(f"incompatible QoS with a publisher on {health.topic}: {health.last_qos_problem}")
    values = {
        "topic": health.topic,
        "enabled": str(health.enabled),
        "execution_provider": health.provider,
        "model": health.model,
        "input_rate_hz": _fmt(input_hz),
        "output_rate_hz": _fmt(output_hz),
        "latency_p50_ms": _fmt(stats.latency.percentile(50), 1e3),
        "latency_p95_ms": _fmt(stats.latency.percentile(95), 1e3),
        "processing_p50_ms": _fmt(stats.processing.percentile(50), 1e3),
        "processing_p95_ms": _fmt(stats.processing.percentile(95), 1e3),
        "inference_p50_ms": _fmt(stats.inference.percentile(50), 1e3),
        "frames_received": str(stats.input_rate.total),
        "frames_subsampled": str(health.frames_subsampled),
        "frames_sampled": str(health.frames_sampled),
        "clips_published": str(stats.output_rate.total),
        "seconds_since_last_frame": _fmt(silent_s),
        "incompatible_qos_events": str(health.incompatible_qos),
        **_loss_values(loss),
        "drops_total": str(sum(stats.drops.values())),
        "malformed_total": str(sum(stats.malformed.values())),
    }
    values.update(_counter_values("drops", DROP_REASONS, stats.drops))
    values.update(_counter_values("malformed", MALFORMED_REASONS, stats.malformed))
    values.update({f"clip_resets.{reason}": str(n) for reason, n in sorted(health.clip_resets.items())})
    if not health.active:
        level, message = DiagnosticStatus.OK, "inactive"
    elif not health.enabled:
        level, message = DiagnosticStatus.OK, "disabled"
    elif problems:
        level, message = DiagnosticStatus.WARN, "; ".join(problems)
    else:
        level, message = DiagnosticStatus.OK, "ok"
    return diagnostic_status(level, f"{node_name}: camera {health.camera}", message, health.topic, values)


def clock_status(node_name: str, clock: ClockHealth) -> DiagnosticStatus:
    """The ROS clock's status: WARN with use_sim_time before the first /clock or when /clock has been silent
    for ``stall_timeout_s`` (the node's ROS-time stamps and timers stand still then; /diagnostics runs on
    steady time so that this is still reported)."""
    values = {
        "use_sim_time": str(clock.use_sim_time),
        "clock_messages": str(clock.clock_messages),
        "seconds_since_last_clock": _fmt(clock.seconds_since_clock),
    }
    if not clock.use_sim_time:
        level, message = DiagnosticStatus.OK, "system time"
    elif clock.seconds_since_clock is None:
        level, message = DiagnosticStatus.WARN, "use_sim_time is set but no /clock message arrived yet"
    elif clock.seconds_since_clock > clock.stall_timeout_s:
        level = DiagnosticStatus.WARN
        message = f"/clock paused: no message for {clock.seconds_since_clock:.1f} s (use_sim_time is set)"
    else:
        level, message = DiagnosticStatus.OK, "sim time from /clock"
    return diagnostic_status(level, f"{node_name}: clock", message, "/clock", values)
