"""A picture of what the selective decoder did: one PNG timeline per camera plus an HTML page.

Each timeline shows, against stream time: thumbnails of the frames at the decoded moments with their
captions; the semantic change score (the online change detector's score, recomputed from the embedding
stream with the same core code the decoder node runs) and its threshold; and three lanes of events --
ground-truth scene changes (when known), online decodes, offline (Ward) segment boundaries -- so one can see
at a glance that the decoder speaks at scene changes and stays quiet in between.

Matplotlib with the Agg backend (no display needed); no rclpy. Inputs are plain dataclasses, built either
by the replay tool directly or from an output bag with `timelines_from_bags`.
"""

from __future__ import annotations

import html
import json
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from vljepa_ros.bags import bag_io
from vljepa_ros.decoding.change_detection import ChangeDetector, ChangeDetectorConfig, RejectedEmbedding
from vljepa_ros.perception.config import DEFAULT_FRAME_LIMITS, FrameLimits, camera_name_from_topic
from vljepa_ros.perception.image_conversion import ImageConversionError, compressed_to_rgb, image_to_rgb

NS_PER_S = 1_000_000_000
MAX_THUMBNAILS = 8
REASON_NAMES = {0: "first", 1: "change", 2: "heartbeat", 3: "segment", 4: "confirm"}


@dataclass(frozen=True)
class CaptionMark:
    """One decoded caption on the timeline."""

    stamp_ns: int
    text: str
    reason: int
    score: float = 0.0
    segment_start_ns: int = 0
    segment_end_ns: int = 0


@dataclass(frozen=True)
class TruthChange:
    """A ground-truth moment where the scene's meaning changes, with the caption of the new scene if known."""

    stamp_ns: int
    caption: str = ""


@dataclass
class CameraTimeline:
    """Everything drawn for one camera. Stamps are integer nanoseconds of the input images."""

    camera: str
    embedding_stamps_ns: np.ndarray
    change_scores: np.ndarray
    threshold: float | None = None
    captions: list[CaptionMark] = field(default_factory=list)
    segment_captions: list[CaptionMark] = field(default_factory=list)
    truth: list[TruthChange] = field(default_factory=list)
    thumbnails: dict[int, np.ndarray] = field(default_factory=dict)  # caption stamp_ns -> RGB uint8 frame
    start_ns: int | None = None  # time zero, e.g. the first input frame; None: the first embedding or event

    @property
    def origin_ns(self) -> int:
        """Time zero of the plot: `start_ns`, else the first embedding (or the first known event)."""
        if self.start_ns is not None:
            return int(self.start_ns)
        candidates = [int(s) for s in self.embedding_stamps_ns[:1]]
        candidates += [c.stamp_ns for c in self.captions[:1]] + [t.stamp_ns for t in self.truth[:1]]
        return min(candidates) if candidates else 0


def change_score_curve(
    stamps_ns: Sequence[int], vectors: np.ndarray, config: ChangeDetectorConfig | None = None
) -> np.ndarray:
    """The change detector's score after each embedding (NaN where a vector was rejected); a diagnostic of how
    far the scene moved from its current segment, drawn whatever trigger the decoder node runs."""
    detector = ChangeDetector(config or ChangeDetectorConfig())
    scores = np.full(len(stamps_ns), np.nan)
    for i, (stamp, vector) in enumerate(zip(stamps_ns, vectors)):
        try:
            detector.update(int(stamp), vector)
        except RejectedEmbedding:
            continue
        scores[i] = detector.last_score
    return scores


def decode_latency_bound_s(clip_frames: int, frame_rate_hz: float, config: ChangeDetectorConfig) -> float:
    """Latest a caption for a scene change can be expected, in seconds after the change.

    A clip of `clip_frames` samples must fill with the new state, then the smoothing window must fill, then
    the trigger waits before its last decode of the change (one embedding per sample at stride 1): the change
    detector `settle` embeddings, the margin trigger's settle decode one step to see the stream still and
    `still_count` still ones; a change right after the previous decode also waits out `min_interval_s`.
    """
    settle_decode_wait = config.still_count + 1 if config.still_step > 0 else 0
    wait = settle_decode_wait if config.trigger == "margin" else config.settle
    return (clip_frames - 1 + config.window + wait) / frame_rate_hz + config.min_interval_s


def nearest_truth_error_s(stamp_ns: int, truth: Sequence[TruthChange]) -> float | None:
    """Signed seconds from the nearest ground-truth change to `stamp_ns` (positive: caption after it)."""
    if not truth:
        return None
    nearest = min(truth, key=lambda t: abs(stamp_ns - t.stamp_ns))
    return (stamp_ns - nearest.stamp_ns) / NS_PER_S


def _pick_thumbnail_captions(captions: Sequence[CaptionMark], limit: int) -> list[CaptionMark]:
    """At most `limit` captions spread evenly over the list, always keeping the first and the last."""
    if len(captions) <= limit:
        return list(captions)
    picks = np.unique(np.round(np.linspace(0, len(captions) - 1, limit)).astype(int))
    return [captions[i] for i in picks]


def render_timeline_png(timeline: CameraTimeline, path: Path | str) -> Path:
    """Draw one camera's timeline into a PNG and return its path."""
    # matplotlib stays lazy: it is by far the slowest import here and only drawing needs it.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import ConnectionPatch

    path = Path(path)
    t0 = timeline.origin_ns

    def sec(stamp_ns):
        return (np.asarray(stamp_ns, dtype=np.int64) - t0) / NS_PER_S

    times = sec(timeline.embedding_stamps_ns)
    ends = [times[-1] if times.size else 0.0]
    ends += [sec(c.stamp_ns) for c in timeline.captions] + [sec(t.stamp_ns) for t in timeline.truth]
    x_max = max(float(max(ends)), 1.0) * 1.02

    fig = plt.figure(figsize=(15, 8.2), dpi=100)
    grid = fig.add_gridspec(
        3, 1, height_ratios=[2.3, 2.4, 1.25], hspace=0.12, left=0.095, right=0.985, top=0.93, bottom=0.07
    )
    ax_thumbs = fig.add_subplot(grid[0])
    ax_score = fig.add_subplot(grid[1])
    ax_events = fig.add_subplot(grid[2], sharex=ax_score)
    n_online = len(timeline.captions)
    fig.suptitle(
        f"camera '{timeline.camera}': {times.size} embeddings over {x_max / 1.02:.1f} s, "
        f"{n_online} online decodes, {len(timeline.segment_captions)} offline segments"
        + (f", {len(timeline.truth)} ground-truth changes" if timeline.truth else ""),
        fontsize=13,
        x=0.095,
        ha="left",
    )

    # Change score with the threshold and the true change times behind it.
    if times.size:
        ax_score.plot(times, timeline.change_scores, color="#1f77b4", lw=1.6, label="semantic change score")
    if timeline.threshold is not None:
        ax_score.axhline(
            timeline.threshold, color="#d62728", ls=":", lw=1.2, label=f"decode threshold {timeline.threshold:g}"
        )
    for i, change in enumerate(timeline.truth):
        ax_score.axvline(
            sec(change.stamp_ns), color="0.55", ls="--", lw=1.0, label="ground-truth change" if i == 0 else None
        )
    for i, caption in enumerate(timeline.captions):
        ax_score.axvline(
            sec(caption.stamp_ns), color="#d62728", lw=1.4, alpha=0.75, label="online decode" if i == 0 else None
        )
    ax_score.set_xlim(-0.01 * x_max, x_max)
    finite = timeline.change_scores[np.isfinite(timeline.change_scores)] if times.size else np.zeros(0)
    top = max([float(finite.max()) if finite.size else 0.0, timeline.threshold or 0.0, 0.05]) * 1.15
    ax_score.set_ylim(0, top)
    ax_score.set_ylabel("change score\n(1 - cosine)")
    if ax_score.get_legend_handles_labels()[0]:
        ax_score.legend(loc="upper right", fontsize=9, ncol=4, framealpha=0.9)
    ax_score.tick_params(labelbottom=False)
    ax_score.grid(alpha=0.25)

    # Event lanes: what the truth says, what the online decoder said, where offline segmentation split.
    lanes = [
        ("ground truth", [sec(t.stamp_ns) for t in timeline.truth], "0.35", "|"),
        ("online decodes", [sec(c.stamp_ns) for c in timeline.captions], "#d62728", "v"),
        ("offline segments", [sec(c.segment_start_ns) for c in timeline.segment_captions], "#2ca02c", "|"),
    ]
    for row, (_name, xs, colour, marker) in enumerate(lanes):
        y = len(lanes) - 1 - row
        ax_events.axhline(y, color="0.9", lw=6, zorder=0)
        if xs:
            ax_events.scatter(xs, [y] * len(xs), marker=marker, s=160, color=colour, zorder=2, linewidths=2)
    ax_events.set_yticks(range(len(lanes)), [lane[0] for lane in reversed(lanes)])
    ax_events.set_ylim(-0.6, len(lanes) - 0.4)
    ax_events.set_xlabel("stream time (s)")
    ax_events.grid(axis="x", alpha=0.25)

    # Thumbnails of the decoded moments in evenly spaced slots, each tied to its time on the score axis.
    ax_thumbs.set_xlim(0, 1)
    ax_thumbs.set_ylim(0, 1)
    ax_thumbs.axis("off")
    shown = _pick_thumbnail_captions(timeline.captions, MAX_THUMBNAILS)
    if shown:
        slot = 1.0 / max(len(shown), 4)
        offset = (1.0 - slot * len(shown)) / 2
        for i, caption in enumerate(shown):
            centre = offset + slot * (i + 0.5)
            frame = timeline.thumbnails.get(caption.stamp_ns)
            box = [centre - slot * 0.42, 0.40, slot * 0.84, 0.58]
            inset = ax_thumbs.inset_axes(box)
            inset.set_xticks([])
            inset.set_yticks([])
            if frame is not None:
                inset.imshow(frame, aspect="auto", interpolation="bilinear")
            else:
                inset.text(0.5, 0.5, "no frame", ha="center", va="center", fontsize=8, color="0.5")
            for spine in inset.spines.values():
                spine.set_edgecolor("#d62728")
                spine.set_linewidth(1.5)
            words = textwrap.fill(caption.text, width=max(14, int(150 * slot)))
            label = f"{sec(caption.stamp_ns):.1f} s ({REASON_NAMES.get(caption.reason, caption.reason)})\n{words}"
            ax_thumbs.text(centre, 0.37, label, ha="center", va="top", fontsize=8.5)
            fig.add_artist(
                ConnectionPatch(
                    xyA=(centre, 0.40),
                    coordsA=ax_thumbs.transData,
                    xyB=(sec(caption.stamp_ns), top),
                    coordsB=ax_score.transData,
                    color="#d62728",
                    lw=0.8,
                    alpha=0.5,
                )
            )
    else:
        ax_thumbs.text(0.5, 0.5, "no caption was decoded", ha="center", va="center", fontsize=12, color="0.4")

    fig.savefig(path)
    plt.close(fig)
    return path


def _caption_rows(timeline: CameraTimeline) -> list[dict]:
    rows = []
    t0 = timeline.origin_ns
    for kind, captions in (("online", timeline.captions), ("offline segment", timeline.segment_captions)):
        for caption in captions:
            error = nearest_truth_error_s(caption.stamp_ns, timeline.truth)
            rows.append(
                {
                    "kind": kind,
                    "time_s": round((caption.stamp_ns - t0) / NS_PER_S, 3),
                    "reason": REASON_NAMES.get(caption.reason, str(caption.reason)),
                    "text": caption.text,
                    "score": round(float(caption.score), 3),
                    "from_nearest_truth_s": None if error is None else round(error, 3),
                }
            )
    return rows


def _signed(value: float | None) -> str:
    return "" if value is None else f"{value:+.2f}"


def write_report(
    timelines: Sequence[CameraTimeline],
    out_dir: Path | str,
    title: str = "vljepa_ros replay",
    summary: Mapping | None = None,
) -> dict[str, Path]:
    """Write one PNG per camera, index.html embedding them with caption tables, and report.json.

    Returns {'html': ..., 'json': ..., '<camera>': png path}.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    sections = []
    data = {"title": title, "summary": dict(summary or {}), "cameras": {}}
    for timeline in timelines:
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in timeline.camera) or "camera"
        png = render_timeline_png(timeline, out / f"timeline_{safe}.png")
        paths[timeline.camera] = png
        rows = _caption_rows(timeline)
        t0 = timeline.origin_ns
        truth = [{"time_s": round((t.stamp_ns - t0) / NS_PER_S, 3), "caption": t.caption} for t in timeline.truth]
        data["cameras"][timeline.camera] = {
            "timeline_png": png.name,
            "captions": rows,
            "truth": truth,
            "embeddings": int(len(timeline.embedding_stamps_ns)),
        }
        table = "".join(
            f"<tr><td>{r['kind']}</td><td>{r['time_s']:.2f}</td><td>{r['reason']}</td>"
            f"<td>{html.escape(r['text'])}</td><td>{r['score']:.3f}</td>"
            f"<td>{_signed(r['from_nearest_truth_s'])}</td></tr>"
            for r in rows
        )
        truth_rows = "".join(f"<tr><td>{t['time_s']:.2f}</td><td>{html.escape(t['caption'])}</td></tr>" for t in truth)
        sections.append(
            f"<h2>camera {html.escape(timeline.camera)}</h2><img src='{png.name}' alt='timeline {safe}'>"
            f"<h3>captions</h3><table><tr><th>kind</th><th>time (s)</th><th>reason</th><th>text</th>"
            f"<th>score</th><th>from nearest true change (s)</th></tr>{table}</table>"
            + (
                f"<h3>ground truth</h3><table><tr><th>time (s)</th><th>caption</th></tr>{truth_rows}</table>"
                if truth
                else ""
            )
        )
    summary_html = ("<pre>" + html.escape(json.dumps(dict(summary), indent=2)) + "</pre>") if summary else ""
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
        "body{font-family:sans-serif;margin:2em;max-width:1600px}img{width:100%;border:1px solid #ccc}"
        "table{border-collapse:collapse;margin-bottom:1em}td,th{border:1px solid #ccc;padding:2px 8px;"
        "text-align:left}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{''.join(sections)}{summary_html}</body></html>"
    )
    paths["html"] = out / "index.html"
    paths["html"].write_text(page)
    paths["json"] = out / "report.json"
    paths["json"].write_text(json.dumps(data, indent=2))
    return paths


def thumbnail(rgb: np.ndarray, width: int = 192) -> np.ndarray:
    """A copy of `rgb` scaled down to `width` pixels wide (never up)."""
    height, full_width = rgb.shape[:2]
    if full_width <= width:
        return np.array(rgb, copy=True)
    return cv2.resize(rgb, (width, max(1, round(height * width / full_width))), interpolation=cv2.INTER_AREA)


def frame_rgb(frame: bag_io.CameraFrame, limits: FrameLimits = DEFAULT_FRAME_LIMITS) -> np.ndarray:
    """The RGB pixels of a bag's camera frame, raw or compressed; raises ImageConversionError if unreadable."""
    message = frame.message
    if frame.is_compressed:
        return compressed_to_rgb(message.format, message.data, limits)
    return image_to_rgb(
        message.encoding,
        message.height,
        message.width,
        message.step,
        bool(message.is_bigendian),
        message.data,
        limits,
    )


def frames_at(input_bag: Path | str, topic: str, stamps_ns: set[int]) -> dict[int, np.ndarray]:
    """Thumbnails of the frames of `topic` whose header stamps are in `stamps_ns` (unreadable frames skipped)."""
    found = {}
    for frame in bag_io.read_camera_frames(input_bag, [topic]):
        if frame.stamp_ns not in stamps_ns or frame.stamp_ns in found:
            continue
        try:
            rgb = frame_rgb(frame)
        except ImageConversionError:
            continue
        found[frame.stamp_ns] = thumbnail(rgb)
    return found


def timelines_from_bags(
    output_bag: Path | str,
    input_bag: Path | str | None = None,
    camera_topics: Mapping[str, str] | None = None,
    truth: Mapping[str, Sequence[TruthChange]] | None = None,
    detector: ChangeDetectorConfig | None = None,
    embedding_topic: str = "/vljepa_perception/embedding",
    caption_topic: str = "/vljepa_decoder/caption",
    segment_topic: str | None = "/vljepa_replay/segment_caption",
    extra_segments: Mapping[str, Sequence[CaptionMark]] | None = None,
    start_ns: int | None = None,
) -> list[CameraTimeline]:
    """Timelines from a bag of the nodes' outputs (recorded live or written by replay).

    `camera_topics` maps camera names to their input topics for thumbnails (default: derived from the input
    bag's image topics with the perception node's naming rule). `truth` maps camera names to ground truth.
    `start_ns` is time zero of the plots (default: each camera's first embedding).
    """
    detector = detector or ChangeDetectorConfig()
    topics = {t.name for t in bag_io.list_topics(output_bag)}
    embeddings: dict[str, list[tuple[int, np.ndarray]]] = {}
    for _, message in bag_io.read_messages(output_bag, embedding_topic) if embedding_topic in topics else []:
        if message.kind == 1:  # KIND_PREDICTED: what the decoder consumes
            embeddings.setdefault(message.camera, []).append(
                (bag_io.stamp_to_ns(message.header.stamp), np.asarray(message.data, np.float32))
            )

    def marks(topic):
        found: dict[str, list[CaptionMark]] = {}
        if topic is None or topic not in topics:
            return found
        for _, m in bag_io.read_messages(output_bag, topic):
            found.setdefault(m.camera, []).append(
                CaptionMark(
                    bag_io.stamp_to_ns(m.header.stamp),
                    m.text,
                    int(m.reason),
                    float(m.score),
                    bag_io.stamp_to_ns(m.segment_start),
                    bag_io.stamp_to_ns(m.segment_end),
                )
            )
        return {camera: sorted(items, key=lambda c: c.stamp_ns) for camera, items in found.items()}

    captions, segments = marks(caption_topic), marks(segment_topic)
    for camera, extra in (extra_segments or {}).items():
        segments[camera] = sorted([*segments.get(camera, []), *extra], key=lambda c: c.stamp_ns)
    if camera_topics is None and input_bag is not None:
        camera_topics = {camera_name_from_topic(t): t for t in bag_io.camera_topics(input_bag)}
    timelines = []
    for camera in sorted(set(embeddings) | set(captions)):
        stream = sorted(embeddings.get(camera, []), key=lambda item: item[0])
        stamps = np.array([s for s, _ in stream], dtype=np.int64)
        vectors = np.stack([v for _, v in stream]) if stream else np.zeros((0, 1), np.float32)
        camera_captions = captions.get(camera, [])
        thumbnails = {}
        if input_bag is not None and camera_topics and camera in camera_topics:
            thumbnails = frames_at(input_bag, camera_topics[camera], {c.stamp_ns for c in camera_captions})
        timelines.append(
            CameraTimeline(
                camera=camera,
                embedding_stamps_ns=stamps,
                change_scores=change_score_curve(stamps, vectors, detector),
                threshold=detector.threshold,
                captions=camera_captions,
                segment_captions=segments.get(camera, []),
                truth=list((truth or {}).get(camera, [])),
                thumbnails=thumbnails,
                start_ns=start_ns,
            )
        )
    return timelines
