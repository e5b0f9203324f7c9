"""/diagnostics statuses for the perception node: one DiagnosticStatus per camera."""

from __future__ import annotations

from dataclasses import dataclass

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue

from vljepa_ros.perception.run_stats import StreamStats


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


def _fmt(value: float | None, scale: float = 1.0) -> str:
    return "n/a" if value is None else f"{value * scale:.2f}"


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
    if health.enabled and health.clip_resets.get("gap") and input_hz > 0 and output_hz == 0:
        problems.append(
            f"frames arrive ({input_hz:.1f} Hz) but clips keep restarting after stamp gaps "
            f"({health.clip_resets['gap']} so far): is the camera slower than half of frame_rate_hz?"
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
        "clips_published": str(stats.output_rate.total),
        "seconds_since_last_frame": _fmt(silent_s),
        "incompatible_qos_events": str(health.incompatible_qos),
        "drops_total": str(sum(stats.drops.values())),
        "malformed_total": str(sum(stats.malformed.values())),
    }
    values.update({f"drops.{reason}": str(n) for reason, n in sorted(stats.drops.items())})
    values.update({f"malformed.{reason}": str(n) for reason, n in sorted(stats.malformed.items())})
    values.update({f"clip_resets.{reason}": str(n) for reason, n in sorted(health.clip_resets.items())})
    if not health.enabled:
        level, message = DiagnosticStatus.OK, "disabled"
    elif problems:
        level, message = DiagnosticStatus.WARN, "; ".join(problems)
    else:
        level, message = DiagnosticStatus.OK, "ok"
    return DiagnosticStatus(
        level=level,
        name=f"{node_name}: camera {health.camera}",
        message=message,
        hardware_id=health.topic,
        values=[KeyValue(key=k, value=v) for k, v in values.items()],
    )
