"""`evaluate_selective`: how many decodes selective decoding saves over uniform decoding, at equal quality.

Long tiny-world streams (ground-truth caption segments and change times) run through the real model with the
perception pipeline (the same clip sampling as the node, ONNX Runtime, no torch); their predicted "describe
the scene" embeddings are decoded by retrieval over the model's caption bank in three ways:
- uniform: one decode every 1/uniform_rate_hz seconds (of the newest embedding, and of the average of the
  embeddings since the previous tick; the better of the two is the quality bar);
- selective (online): the decoding pipeline the decoder node runs, swept over its operating point;
- offline: Ward segmentation with temporal connectivity into N segments, one decode per segment.

Four ways to score the captions against the ground truth, all by exact caption match:
- in effect (primary): the fraction of the time the caption in effect (the latest published, by the stamp it
  was published with) is the true one, i.e. what an online subscriber holds at every moment;
- in effect at annotations (one every `annotation_period_s` from the first embedding, and, separately, one at
  every ground-truth segment's midpoint). The periodic annotations fall on the uniform decoder's own ticks, where
  its caption is never stale, so this one favours uniform decoding; it is reported, labelled, not chosen on;
and, on the same annotations:
- paper rule (VL-JEPA Sec. 4.5): the temporally nearest decode stamp, before or after the annotation;
- segment cover: the decode whose described segment (from its detected change point, or the Ward segment
  start) covers the annotation, crediting a caption for the time before it was published.
Also reported: decoder calls (a CONFIRM decode that only repeats its provisional caption costs a decode
without a caption), event recall (a CHANGE decode within `tolerance_s` after a true caption change; and with
the right text), the latency from a true change until the right caption is in effect (p50, p90; stamp time:
model and detector delay, not compute), and spurious change decodes.

The operating point is chosen on tuning streams on in-effect quality (among the points whose in-effect quality
is at least the better uniform variant's, whose event recall reaches --min-recall and whose reduction factor
reaches --target-reduction: the best in-effect quality; with --target-reduction 0: the highest reduction
factor) and reported on separate held-out streams. Offline Ward segmentation, the paper's offline protocol,
is reported beside it.
Results go to stdout and a JSON file.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from vljepa_ros.decoding.change_detection import ChangeDetectorConfig, DecodeReason
from vljepa_ros.decoding.decoder_core import DecoderCore, EmbeddingInput
from vljepa_ros.decoding.decoders import Decoder, RetrievalDecoder
from vljepa_ros.decoding.pipeline import decode_segments, uniform_decode_count
from vljepa_ros.perception.config import PipelineConfig
from vljepa_ros.perception.pipeline import PerceptionPipeline
from vljepa_ros.runtime.bundled_model import bundled_manifest_path
from vljepa_ros.runtime.manifest import load_manifest
from vljepa_ros.tiny_world.stream import StreamConfig, generate_stream

NS = 1_000_000_000
CAMERA = "tiny_world"


@dataclass(frozen=True)
class Decode:
    """One decoded output of a stream."""

    stamp_ns: int
    text: str
    reason: int
    start_ns: int  # start of the span the decode describes (its segment; a uniform decode: its stamp)


@dataclass(frozen=True)
class Annotation:
    """A ground-truth caption at one moment."""

    stamp_ns: int
    caption: str


@dataclass(frozen=True)
class EvalStream:
    """A stream's embeddings and its ground truth (tiny_world Stream.ground_truth())."""

    seed: int
    stamps_ns: np.ndarray  # (T,) int64
    vectors: np.ndarray  # (T, E) float32
    truth: dict


# ----- ground truth ----------------------------------------------------------------------------------------


def caption_at(truth: dict, stamp_ns: int) -> str:
    """The ground-truth caption in effect at `stamp_ns`."""
    for segment in truth["segments"]:
        if stamp_ns < segment["end_ns"]:
            return segment["caption"]
    return truth["segments"][-1]["caption"]


def dense_annotations(truth: dict, first_ns: int, last_ns: int, period_s: float) -> list[Annotation]:
    """One annotation every `period_s` seconds over [first_ns, last_ns] (the span that has embeddings)."""
    count = int((last_ns - first_ns) / (period_s * NS)) + 1
    stamps = [first_ns + int(round(k * period_s * NS)) for k in range(count)]
    return [Annotation(s, caption_at(truth, s)) for s in stamps]


def midpoint_annotations(truth: dict, first_ns: int, last_ns: int) -> list[Annotation]:
    """One annotation at the midpoint of every ground-truth segment that lies inside [first_ns, last_ns]."""
    out = []
    for segment in truth["segments"]:
        mid = (segment["start_ns"] + segment["end_ns"]) // 2
        if first_ns <= mid <= last_ns:
            out.append(Annotation(mid, segment["caption"]))
    return out


# ----- metrics (pure) --------------------------------------------------------------------------------------


def nearest_accuracy(decodes: Sequence[Decode], annotations: Sequence[Annotation]) -> float:
    """Fraction of annotations whose temporally nearest decode has their caption (ties: the earlier decode)."""
    if not annotations:
        return float("nan")
    if not decodes:
        return 0.0
    stamps = np.asarray([d.stamp_ns for d in decodes], dtype=np.int64)
    hits = 0
    for ann in annotations:
        i = int(np.searchsorted(stamps, ann.stamp_ns))
        candidates = [j for j in (i - 1, i) if 0 <= j < len(decodes)]
        best = min(candidates, key=lambda j: (abs(int(stamps[j]) - ann.stamp_ns), j))
        hits += decodes[best].text == ann.caption
    return hits / len(annotations)


def covering_accuracy(decodes: Sequence[Decode], annotations: Sequence[Annotation]) -> float:
    """Fraction of annotations whose covering decode (latest segment start at or before them; before the first
    segment: the first decode) has their caption."""
    if not annotations:
        return float("nan")
    if not decodes:
        return 0.0
    starts = np.asarray([d.start_ns for d in decodes], dtype=np.int64)
    hits = 0
    for ann in annotations:
        i = max(int(np.searchsorted(starts, ann.stamp_ns, side="right")) - 1, 0)
        hits += decodes[i].text == ann.caption
    return hits / len(annotations)


def in_effect_accuracy(decodes: Sequence[Decode], annotations: Sequence[Annotation]) -> float:
    """Fraction of annotations for which the latest decode at or before them has their caption."""
    if not annotations:
        return float("nan")
    stamps = np.asarray([d.stamp_ns for d in decodes], dtype=np.int64)
    hits = 0
    for ann in annotations:
        i = int(np.searchsorted(stamps, ann.stamp_ns, side="right")) - 1
        hits += i >= 0 and decodes[i].text == ann.caption
    return hits / len(annotations)


def in_effect_time_fraction(decodes: Sequence[Decode], truth: dict, first_ns: int, last_ns: int) -> float:
    """Fraction of the time in [first_ns, last_ns] during which the caption in effect (the latest decode at or
    before that moment; none before the first decode) is the ground-truth caption: what a subscriber holds at
    every moment, whatever the phase of anyone's decode ticks."""
    if last_ns <= first_ns:
        return float("nan")
    stamps = [d.stamp_ns for d in decodes]
    cuts = {first_ns, last_ns}
    cuts.update(s for s in stamps if first_ns < s < last_ns)
    cuts.update(seg["end_ns"] for seg in truth["segments"] if first_ns < seg["end_ns"] < last_ns)
    cuts = sorted(cuts)
    right = 0
    for lo, hi in zip(cuts, cuts[1:]):
        i = bisect.bisect_right(stamps, lo) - 1
        right += (hi - lo) if i >= 0 and decodes[i].text == caption_at(truth, lo) else 0
    return right / (last_ns - first_ns)


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], weights: Sequence[float], resamples: int = 2000, seed: int = 0
) -> dict:
    """Pooled a - b over streams (a[i], b[i]: one stream's accuracies, weights[i]: its annotations or seconds)
    with a 95% interval from resampling whole streams: streams differ more from each other than the strategies do
    on one stream, so the interval says whether a difference of a few points is more than which streams were
    drawn."""
    a, b, w = (np.asarray(x, dtype=np.float64) for x in (a, b, weights))
    if not (a.shape == b.shape == w.shape) or a.ndim != 1 or a.size == 0:
        raise ValueError(
            f"paired_bootstrap: need equal non-empty per-stream lists, got {a.shape}, {b.shape}, {w.shape}"
        )

    def pooled(idx):
        return float(np.sum((a[idx] - b[idx]) * w[idx]) / np.sum(w[idx]))

    rng = np.random.default_rng(seed)
    draws = [pooled(rng.integers(0, a.size, a.size)) for _ in range(resamples)]
    lo, hi = np.percentile(draws, [2.5, 97.5])
    return {
        "difference": pooled(np.arange(a.size)),
        "ci95": [float(lo), float(hi)],
        "resamples": resamples,
        "streams": int(a.size),
    }


def event_metrics(decodes: Sequence[Decode], truth: dict, first_ns: int, tolerance_s: float) -> dict:
    """Recall of true caption changes by CHANGE decodes, their latency, and spurious CHANGE decodes.

    A true change at c (after the first embedding) is detected by the first CHANGE decode in
    (c, min(c + tolerance, next change)]; it is correct if that decode has the new caption. Every other
    CHANGE decode is spurious.
    """
    changes = [c for c in truth["change_stamps_ns"] if c > first_ns]
    after = {s["start_ns"]: s["caption"] for s in truth["segments"]}
    change_decodes = [d for d in decodes if d.reason == DecodeReason.CHANGE]
    used = set()
    detected, correct, latencies = 0, 0, []
    for k, change in enumerate(changes):
        limit = change + int(tolerance_s * NS)
        if k + 1 < len(changes):
            limit = min(limit, changes[k + 1])
        match = next((i for i, d in enumerate(change_decodes) if change < d.stamp_ns <= limit and i not in used), None)
        if match is None:
            continue
        used.add(match)
        detected += 1
        correct += change_decodes[match].text == after.get(change, caption_at(truth, change))
        latencies.append((change_decodes[match].stamp_ns - change) / NS)
    return {
        "changes": len(changes),
        "detected": detected,
        "detected_correct_text": correct,
        "spurious": len(change_decodes) - len(used),
        "latencies_s": latencies,
        "right_caption_latencies_s": right_caption_latencies(decodes, truth, first_ns),
    }


# Where annotations can be put: (name, period_s, offset_s from the first embedding, outside action windows only).
# The first falls on a uniform 1 Hz decoder's ticks; the next three are the same annotations moved off them.
ANNOTATION_PROTOCOLS = (
    ("every 1 s from the first embedding", 1.0, 0.0, False),
    ("every 1 s from the first embedding + 0.25 s", 1.0, 0.25, False),
    ("every 1 s from the first embedding + 0.5 s", 1.0, 0.5, False),
    ("every 1 s from the first embedding + 0.75 s", 1.0, 0.75, False),
    ("every 0.5 s outside the action windows", 0.5, 0.0, True),
    ("every 0.05 s outside the action windows", 0.05, 0.025, True),
)


def in_effect_by_protocol(streams: Sequence[EvalStream], decodes: Sequence[Sequence[Decode]]) -> dict:
    """In-effect accuracy pooled over `streams` at the annotations of each of ANNOTATION_PROTOCOLS: how much a
    count at annotations depends on where they fall relative to a uniform decoder's ticks (the time fraction
    does not)."""
    out = {}
    for name, period_s, offset_s, outside_actions in ANNOTATION_PROTOCOLS:
        hits = total = 0
        for stream, decs in zip(streams, decodes):
            first = int(stream.stamps_ns[0]) + int(round(offset_s * NS))
            anns = dense_annotations(stream.truth, first, int(stream.stamps_ns[-1]), period_s)
            if outside_actions:
                windows = [(e["start_ns"], e["end_ns"]) for e in stream.truth.get("events", [])]
                anns = [a for a in anns if not any(lo <= a.stamp_ns < hi for lo, hi in windows)]
            hits += in_effect_accuracy(decs, anns) * len(anns) if anns else 0
            total += len(anns)
        out[name] = {"in_effect": hits / total if total else float("nan"), "annotations": total}
    return out


def right_caption_latencies(decodes: Sequence[Decode], truth: dict, first_ns: int) -> list[float]:
    """For each true change after `first_ns` (caption really changing): seconds until the caption in effect
    (latest decode stamp) is the new one, if that happens before the next change; changes never shown right
    within their segment are left out (the recall of this is their count over the changes)."""
    stamps = [d.stamp_ns for d in decodes]
    out = []
    for segment in truth["segments"]:
        start, end = segment["start_ns"], segment["end_ns"]
        if start <= first_ns:
            continue
        k = int(np.searchsorted(stamps, start, side="right")) - 1
        if k >= 0 and decodes[k].text == segment["caption"]:
            out.append(0.0)  # already shown (the previous segment had the same caption or a lucky decode)
            continue
        for d in decodes[k + 1 :]:
            if d.stamp_ns >= end:
                break
            if d.text == segment["caption"]:
                out.append((d.stamp_ns - start) / NS)
                break
    return out


# ----- decoding strategies ---------------------------------------------------------------------------------


def uniform_decodes(stream: EvalStream, decoder: Decoder, rate_hz: float, average: bool) -> list[Decode]:
    """Decode at t0, t0 + 1/rate, ...: the newest embedding, or the average of those since the previous tick."""
    stamps, vectors = stream.stamps_ns, stream.vectors
    span_s = (int(stamps[-1]) - int(stamps[0])) / NS
    out = []
    previous = -1
    for k in range(uniform_decode_count(span_s, rate_hz)):
        tick = int(stamps[0]) + int(round(k * NS / rate_hz))
        newest = int(np.searchsorted(stamps, tick, side="right")) - 1
        lo = previous + 1 if average and newest > previous else newest
        vec = vectors[lo : newest + 1].mean(axis=0)
        text = decoder.decode(vec / np.linalg.norm(vec)).text
        out.append(Decode(tick, text, int(DecodeReason.HEARTBEAT), tick))
        previous = newest
    return out


def selective_decodes(stream: EvalStream, decoder: Decoder, config: ChangeDetectorConfig) -> tuple[list[Decode], int]:
    """The decoder node's online path (DecoderCore) over one stream: its captions and its decoder calls."""
    core = DecoderCore(decoder, config)
    out = []
    for stamp, vec in zip(stream.stamps_ns, stream.vectors):
        event = core.feed(EmbeddingInput(CAMERA, CAMERA, int(stamp), vec), now_ns=0).event
        if event is not None:
            out.append(Decode(event.stamp_ns, event.text, int(event.reason), event.change_ns))
    return out, core.pipeline.statistics(CAMERA).decodes


def ward_decodes(stream: EvalStream, decoder: Decoder, n_segments: int) -> list[Decode]:
    """Offline Ward segmentation into `n_segments`, one decode per segment at its middle."""
    events = decode_segments(CAMERA, CAMERA, stream.stamps_ns, stream.vectors, decoder, n_segments=n_segments)
    return [Decode(e.stamp_ns, e.text, int(e.reason), e.segment_start_ns) for e in events]


def score(
    streams: Sequence[EvalStream],
    decodes: Sequence[Sequence[Decode]],
    annotation_period_s: float,
    tolerance_s: float,
    calls: Sequence[int] | None = None,
) -> dict:
    """Pooled quality and event metrics of one strategy over all streams.

    `calls`: decoder calls per stream when they differ from the captions (CONFIRM decodes that repeated their
    provisional caption); default one per caption.
    """
    sums = dict.fromkeys(("in_effect_dense", "paper_nearest_dense", "cover_dense"), 0.0)
    sums.update(dict.fromkeys(("in_effect_midpoints", "paper_nearest_midpoints", "cover_midpoints"), 0.0))
    n_dense = n_mid = 0
    per_stream, per_stream_n = [], []
    time_right, spans = [], []
    events = {"changes": 0, "detected": 0, "detected_correct_text": 0, "spurious": 0, "latencies_s": []}
    events["right_caption_latencies_s"] = []
    for stream, decs in zip(streams, decodes):
        first, last = int(stream.stamps_ns[0]), int(stream.stamps_ns[-1])
        time_right.append(in_effect_time_fraction(decs, stream.truth, first, last))
        spans.append((last - first) / NS)
        for suffix, anns in (
            ("dense", dense_annotations(stream.truth, first, last, annotation_period_s)),
            ("midpoints", midpoint_annotations(stream.truth, first, last)),
        ):
            if not anns:
                continue
            in_effect = in_effect_accuracy(decs, anns)
            sums[f"in_effect_{suffix}"] += in_effect * len(anns)
            sums[f"paper_nearest_{suffix}"] += nearest_accuracy(decs, anns) * len(anns)
            sums[f"cover_{suffix}"] += covering_accuracy(decs, anns) * len(anns)
            if suffix == "dense":
                per_stream.append(in_effect)
                per_stream_n.append(len(anns))
                n_dense += len(anns)
            else:
                n_mid += len(anns)
        for key, value in event_metrics(decs, stream.truth, first, tolerance_s).items():
            events[key] += value
    lat = np.asarray(events.pop("latencies_s"), dtype=np.float64)
    right = np.asarray(events.pop("right_caption_latencies_s"), dtype=np.float64)
    changes = max(events["changes"], 1)
    result = {name: total / max(n_dense if name.endswith("dense") else n_mid, 1) for name, total in sums.items()}
    result["in_effect_time"] = float(np.dot(time_right, spans) / max(sum(spans), 1e-12))
    result.update(
        {
            "decodes": int(sum(calls) if calls is not None else sum(len(d) for d in decodes)),
            "captions": int(sum(len(d) for d in decodes)),
            "event_recall": events["detected"] / changes,
            "event_recall_correct_text": events["detected_correct_text"] / changes,
            "change_decode_latency_p50_s": float(np.median(lat)) if lat.size else None,
            "latency_p50_s": float(np.median(right)) if right.size else None,
            "latency_p90_s": float(np.percentile(right, 90)) if right.size else None,
            "right_caption_shown": right.size / changes,
            "spurious_change_decodes": events["spurious"],
            "true_changes": events["changes"],
            "in_effect_time_per_stream": time_right,
            "seconds_per_stream": spans,
            "in_effect_dense_per_stream": per_stream,
            "dense_annotations_per_stream": per_stream_n,
        }
    )
    return result


# ----- embeddings from the real model ----------------------------------------------------------------------


def compute_embeddings(
    manifest: Path, seeds: Sequence[int], duration_s: float, fps: float, stride: int, cache_dir: Path | None, log=print
) -> list[EvalStream]:
    """Run tiny-world streams through the perception pipeline (all streams as cameras of one batch)."""
    config = PipelineConfig(
        stride=stride, queue_depth=1, max_batch=max(1, len(seeds)), transition_horizon_s=0.0, publish_visual_state=False
    )
    pipeline = PerceptionPipeline.from_manifest(manifest, config, providers=("cpu",))
    streams = {seed: generate_stream(StreamConfig(seed=seed, duration_s=duration_s, fps=fps)) for seed in seeds}
    key = f"{pipeline.model_version}_d{duration_s:g}_f{fps:g}_s{stride}"
    cached, todo = {}, []
    for seed in seeds:
        path = None if cache_dir is None else cache_dir / f"{key}_seed{seed}.npz"
        if path is not None and path.is_file():
            with np.load(path) as data:
                cached[seed] = (data["stamps_ns"], data["vectors"])
        else:
            todo.append(seed)
    if todo:
        log(f"embedding {len(todo)} stream(s) of {duration_s:g} s with {manifest} ({pipeline.runtime.provider}) ...")
        start = time.perf_counter()
        stamps = {seed: [] for seed in todo}
        vectors = {seed: [] for seed in todo}
        for index in range(streams[todo[0]].config.frame_count):
            queued = False
            for seed in todo:
                stream = streams[seed]
                verdict = pipeline.offer_frame(
                    str(seed), CAMERA, stream.stamp_ns(index), lambda s=stream, i=index: s.frame(i)
                )
                queued |= verdict == "queued"
            while queued:
                batch = pipeline.step(0.0)
                if batch is None:
                    break
                for result in batch.embeddings:
                    stamps[int(result.camera)].append(result.stamp_ns)
                    vectors[int(result.camera)].append(result.embedding)
        for seed in todo:
            drops = dict(pipeline.stats_for(str(seed)).drops)
            if drops:
                raise RuntimeError(f"stream {seed}: clips dropped during evaluation: {drops}")
            cached[seed] = (np.asarray(stamps[seed], np.int64), np.asarray(vectors[seed], np.float32))
            if cache_dir is not None:
                cache_dir.mkdir(parents=True, exist_ok=True)
                np.savez(cache_dir / f"{key}_seed{seed}.npz", stamps_ns=cached[seed][0], vectors=cached[seed][1])
        log(f"  {sum(len(stamps[s]) for s in todo)} embeddings in {time.perf_counter() - start:.1f} s")
    pipeline.close()
    return [EvalStream(seed, *cached[seed], streams[seed].ground_truth()) for seed in seeds]


# ----- picture of one stream -------------------------------------------------------------------------------


def _caption_color(caption: str, captions: list[str]) -> tuple[int, int, int]:
    """A distinct BGR colour per caption (golden-angle hues)."""
    hue = int((captions.index(caption) * 0.618034 % 1.0) * 179)
    hsv = np.uint8([[[hue, 150, 230]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def timeline_png(stream: EvalStream, rows: dict[str, Sequence[Decode]], path: Path, width: int = 900) -> None:
    """Truth and each strategy's caption in effect over one stream, one colour per caption; a black tick under
    a strategy's row where its caption in effect is wrong."""
    first, last = int(stream.stamps_ns[0]), int(stream.stamps_ns[-1])
    captions = sorted({s["caption"] for s in stream.truth["segments"]} | {d.text for r in rows.values() for d in r})
    label_w, row_h, gap = 150, 26, 14
    height = gap + (1 + len(rows)) * (row_h + gap) + 20
    image = np.full((height, label_w + width + 10, 3), 255, np.uint8)
    xs = np.arange(width)
    stamps = first + (xs * (last - first) / (width - 1)).astype(np.int64)
    truth = [caption_at(stream.truth, int(t)) for t in stamps]

    def draw(y: int, label: str, texts: list[str | None]) -> None:
        cv2.putText(image, label, (6, y + row_h - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
        for x, text in enumerate(texts):
            if text is not None and text in captions:
                image[y : y + row_h, label_w + x] = _caption_color(text, captions)
            if text != truth[x]:
                image[y + row_h + 2 : y + row_h + 6, label_w + x] = 0

    draw(gap, "truth", truth)
    for k, (label, decodes) in enumerate(rows.items(), start=1):
        decode_stamps = np.asarray([d.stamp_ns for d in decodes], np.int64)
        index = np.searchsorted(decode_stamps, stamps, side="right") - 1
        draw(gap + k * (row_h + gap), label, [decodes[i].text if i >= 0 else None for i in index])
    for t in range(0, int((last - first) / NS) + 1, 30):
        x = label_w + int(t * NS / (last - first) * (width - 1))
        cv2.putText(image, f"{t} s", (x, height - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (60, 60, 60), 1, cv2.LINE_AA)
    cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_COMPRESSION, 9])


# ----- sweep and report ------------------------------------------------------------------------------------


PRIMARY = "in_effect_time"


def _rank_key(
    result: dict,
    bar: float,
    metric: str = PRIMARY,
    min_recall: float = 0.0,
    target_reduction: float | None = None,
) -> tuple:
    """Meeting the quality bar and the event recall floor first, then fewer decodes, then quality, then recall.

    The recall floor keeps out points that decode late. With `target_reduction`, points that also reach that
    reduction rank first and among them the better `metric` wins (then fewer decodes): the point with the most
    reduction that only just meets the bar on the tuning streams sits on the edge of the bar and tends to fall
    under it on other streams.
    """
    recall_ok = result["event_recall"] >= min_recall - 1e-12
    meets = recall_ok and result[metric] >= bar - 1e-12
    reduction = result["reduction_factor"]
    if target_reduction is not None:
        enough = reduction >= target_reduction - 1e-12
        return (
            meets and enough,
            recall_ok and enough,  # when nothing meets the bar: the best quality that keeps the target
            meets,
            recall_ok,
            result[metric] if enough else (reduction if meets else result[metric]),
            reduction,
            result["event_recall_correct_text"],
        )
    return (
        meets,
        recall_ok,
        reduction if meets else result[metric],
        result[metric],
        result["event_recall_correct_text"],
    )


def choose(
    results: list[dict],
    bar: float,
    metric: str = PRIMARY,
    min_recall: float = 0.0,
    target_reduction: float | None = None,
) -> dict:
    """Highest reduction with `metric` >= bar and event recall >= min_recall (ties: better quality, then
    recall); else the best quality among those with enough recall; else the best quality. With
    `target_reduction`: first the best `metric` among the points that meet bar and recall floor with at least
    that reduction."""
    return max(results, key=lambda r: _rank_key(r, bar, metric, min_recall, target_reduction))


def evaluate(
    tune: list[EvalStream],
    test: list[EvalStream],
    decoder: Decoder,
    args,
    log=print,
    shipped: ChangeDetectorConfig | None = None,
) -> dict:
    """Sweep on `tune`, pick the operating point on in-effect quality, report everything side by side on `test`
    (with `shipped`, the node's defaults, beside the chosen point)."""

    def run(streams, strategy):
        pairs = [strategy(s) for s in streams]
        return score(streams, [p[0] for p in pairs], args.annotation_period, args.tolerance, [p[1] for p in pairs])

    def points(strategy):
        """A strategy returning decodes only, as (decodes, calls)."""
        return lambda s: (lambda d: (d, len(d)))(strategy(s))

    def uniform_pair(streams, rate):
        single = run(streams, points(lambda s: uniform_decodes(s, decoder, rate, average=False)))
        averaged = run(streams, points(lambda s: uniform_decodes(s, decoder, rate, average=True)))
        return single, averaged

    tune_single, tune_avg = uniform_pair(tune, args.uniform_rate)
    bar = max(tune_single[PRIMARY], tune_avg[PRIMARY])
    uniform_tune_n = tune_avg["decodes"]
    sweep, seen = [], set()

    def try_configs(configs):
        for cfg in configs:
            if cfg in seen:
                continue
            seen.add(cfg)
            result = run(tune, lambda s, cfg=cfg: selective_decodes(s, decoder, cfg))
            result["reduction_factor"] = uniform_tune_n / max(result["decodes"], 1)
            result["config"] = asdict(cfg)
            sweep.append(result)

    # Coarse: smoothing, threshold, settle and provisional decoding at a fixed interval policy; fine: interval
    # policy and hysteresis around the best coarse points.
    coarse = [
        ChangeDetectorConfig(
            trigger="change",
            window=w,
            threshold=t,
            settle=s,
            provisional=bool(prov),
            reconfirm_s=r,
            min_interval_s=args.min_intervals[0],
            max_interval_s=args.max_intervals[0],
            rearm_fraction=args.rearm_fractions[0],
        )
        for w, t, s, prov, r in itertools.product(
            args.windows, args.thresholds, args.settles, args.provisional, args.reconfirms
        )
        if "change" in args.triggers
    ]
    # The settle decode's count and floor matter only when it is on (still_step > 0).
    settle_options = [{"still_step": 0.0}] + [
        {"still_step": e, "still_count": c, "settle_floor": f}
        for e, c, f in itertools.product(args.still_steps, args.still_counts, args.settle_floors)
        if e > 0
    ]
    margin = [
        ChangeDetectorConfig(trigger="margin", window=w, drift_floor=f, min_interval_s=m, **settle)
        for w, f, m, settle in itertools.product(
            args.margin_windows, args.drift_floors, args.margin_min_intervals, settle_options
        )
        if "margin" in args.triggers
    ]
    log(
        f"sweeping {len(coarse)} change-detector and {len(margin)} margin-trigger operating points on {len(tune)} "
        f"tuning stream(s); uniform in-effect bar {bar:.3f}"
    )
    try_configs(coarse)
    try_configs(margin)
    target = args.target_reduction or None
    best = sorted(
        (r for r in sweep if r["config"]["trigger"] == "change"),
        key=lambda r: _rank_key(r, bar, min_recall=args.min_recall, target_reduction=target),
        reverse=True,
    )[: args.refine_top]
    fine = [
        ChangeDetectorConfig(**dict(r["config"], min_interval_s=m, max_interval_s=h, rearm_fraction=a))
        for r in best
        for m, h, a in itertools.product(args.min_intervals, args.max_intervals, args.rearm_fractions)
        if h == 0 or h >= m
    ]
    log(f"refining {len(fine)} operating points around the best {len(best)}")
    try_configs(fine)
    chosen = choose(sweep, bar, PRIMARY, args.min_recall, target)
    chosen_cfg = ChangeDetectorConfig(**chosen["config"])
    # The best point of each trigger on the tuning streams, reported side by side on the held-out ones.
    best_of = {
        trigger: choose([r for r in sweep if r["config"]["trigger"] == trigger], bar, PRIMARY, args.min_recall, target)
        for trigger in ("change", "margin")
        if any(r["config"]["trigger"] == trigger for r in sweep)
    }

    test_single, test_avg = uniform_pair(test, args.uniform_rate)
    uniform_n = test_avg["decodes"]

    def against_uniform(result):
        """`result` with its reduction factor: uniform decodes on the test streams per decoder call."""
        result["reduction_factor"] = uniform_n / max(result["decodes"], 1)
        return result

    def ward_with(segment_counts):
        """Ward segmentation of each test stream into its count of segments, scored."""
        decodes = [ward_decodes(s, decoder, n) for s, n in zip(test, segment_counts)]
        return against_uniform(score(test, decodes, args.annotation_period, args.tolerance, [len(d) for d in decodes]))

    test_results: dict[ChangeDetectorConfig, dict] = {}
    test_decodes: dict[ChangeDetectorConfig, list[list[Decode]]] = {}

    def on_test(cfg: ChangeDetectorConfig) -> dict:
        """The selective decoder at `cfg` on the test streams, scored (its captions kept in test_decodes); a point
        chosen twice (the chosen one is usually its trigger's best and the shipped defaults too) is run once."""
        if cfg not in test_results:
            pairs = [selective_decodes(s, decoder, cfg) for s in test]
            test_decodes[cfg] = [p[0] for p in pairs]
            result = score(test, test_decodes[cfg], args.annotation_period, args.tolerance, [p[1] for p in pairs])
            test_results[cfg] = against_uniform(result)
        return test_results[cfg]

    selective = on_test(chosen_cfg)
    per_trigger = {}
    for trigger, best_point in best_of.items():
        cfg = ChangeDetectorConfig(**best_point["config"])
        per_trigger[trigger] = {"config": asdict(cfg), "tuning": best_point, "test": on_test(cfg)}
    # The exact certificate (no floor, no interval): its captions are those of decoding every embedding.
    margin_exact = on_test(ChangeDetectorConfig(trigger="margin", min_interval_s=0.0, drift_floor=0.0, still_step=0.0))
    shipped_result = None if shipped is None else on_test(shipped)
    # The verdict's bar is the better uniform variant; each selective result gets its difference to it with an
    # interval over the held-out streams.
    uniform_bar = max(test_single, test_avg, key=lambda r: r[PRIMARY])
    for result in filter(None, (selective, shipped_result)):
        result["in_effect_vs_uniform"] = paired_bootstrap(
            result["in_effect_time_per_stream"],
            uniform_bar["in_effect_time_per_stream"],
            uniform_bar["seconds_per_stream"],
        )
        # The same on annotations at uniform's own ticks (uniform is never stale there): labelled, not the goal.
        result["in_effect_at_uniform_ticks_vs_uniform"] = paired_bootstrap(
            result["in_effect_dense_per_stream"],
            uniform_bar["in_effect_dense_per_stream"],
            uniform_bar["dense_annotations_per_stream"],
        )
    uniform_newest_decodes = [uniform_decodes(s, decoder, args.uniform_rate, average=False) for s in test]
    protocols = {f"uniform {args.uniform_rate:g} Hz, newest": in_effect_by_protocol(test, uniform_newest_decodes)}
    for name, cfg in (("selective (chosen)", chosen_cfg), ("selective (shipped defaults)", shipped)):
        if cfg is not None:
            protocols[name] = in_effect_by_protocol(test, test_decodes[cfg])
    equal_budget_rate = args.uniform_rate * selective["decodes"] / uniform_n
    budget_single, budget_avg = uniform_pair(test, equal_budget_rate)
    ward = {}
    for factor in args.ward_reductions:
        per_stream = [max(1, round(len(uniform_decodes(s, decoder, args.uniform_rate, False)) / factor)) for s in test]
        ward[f"{factor:g}x"] = ward_with(per_stream)
    ward_oracle = ward_with([len(s.truth["segments"]) for s in test])
    return {
        "uniform_rate_hz": args.uniform_rate,
        "primary_metric": PRIMARY,
        "annotation_period_s": args.annotation_period,
        "tuning": {
            "seeds": [s.seed for s in tune],
            "uniform_newest": tune_single,
            "uniform_average": tune_avg,
            "in_effect_bar": bar,
            "target_reduction": target,
            "min_recall": args.min_recall,
            "sweep": sweep,
            "chosen": chosen,
        },
        "test": {
            "seeds": [s.seed for s in test],
            "stream_seconds": float(sum((s.stamps_ns[-1] - s.stamps_ns[0]) / NS for s in test)),
            "embeddings": int(sum(len(s.stamps_ns) for s in test)),
            "uniform_newest": test_single,
            "uniform_average": test_avg,
            "selective": selective,
            "selective_config": asdict(chosen_cfg),
            "best_per_trigger": per_trigger,
            "margin_exact": margin_exact,
            "in_effect_by_annotation_protocol": protocols,
            "shipped_defaults": shipped_result,
            "shipped_config": None if shipped is None else asdict(shipped),
            "uniform_equal_budget": {"rate_hz": equal_budget_rate, "newest": budget_single, "average": budget_avg},
            "ward": ward,
            "ward_ground_truth_segment_count": ward_oracle,
        },
    }


def _opt(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _row(name: str, r: dict) -> str:
    red = f"{r['reduction_factor']:5.2f}x" if "reduction_factor" in r else "  1.00x"
    return (
        f"{name:<46} {r['decodes']:>7} {red:>8} {r['in_effect_time']:>7.3f} {r['in_effect_dense']:>7.3f} "
        f"{r['paper_nearest_dense']:>7.3f} "
        f"{r['cover_dense']:>7.3f} {r['event_recall']:>7.3f} {_opt(r['latency_p50_s'], '.2f'):>7} "
        f"{_opt(r['latency_p90_s'], '.2f'):>7} {r['spurious_change_decodes']:>6}"
    )


def print_report(report: dict, out=print) -> None:
    """The side-by-side table of the held-out streams."""
    t = report["test"]
    out(
        f"\nheld-out streams {t['seeds']}: {t['stream_seconds']:.0f} s, {t['embeddings']} embeddings, "
        f"{t['selective']['true_changes']} caption changes"
    )
    out(
        "in_eff: fraction of the time the caption in effect is right; at_tick: in effect at annotations every "
        f"{report['annotation_period_s']:g} s from the first embedding (uniform's own ticks, where it is never "
        "stale); paper: nearest decode; cover: decode whose segment covers the annotation"
    )
    out(
        f"{'strategy':<46} {'decodes':>7} {'reduce':>8} {'in_eff':>7} {'at_tick':>7} {'paper':>7} {'cover':>7} "
        f"{'recall':>7} {'lat_p50':>7} {'lat_p90':>7} {'spur':>6}"
    )
    rate = report["uniform_rate_hz"]
    out(_row(f"uniform {rate:g} Hz, newest", t["uniform_newest"]))
    out(_row(f"uniform {rate:g} Hz, window average", t["uniform_average"]))
    out(_row("selective (chosen on in-effect)", t["selective"]))
    for trigger, best in t.get("best_per_trigger", {}).items():
        out(_row(f"selective, best {trigger}-trigger point", best["test"]))
    if t.get("margin_exact"):
        out(_row("margin trigger, exact (= every embedding)", t["margin_exact"]))
    if t.get("shipped_defaults"):
        out(_row("selective (node's shipped defaults)", t["shipped_defaults"]))
    eq = t["uniform_equal_budget"]
    out(_row(f"uniform {eq['rate_hz']:.3f} Hz, newest (same budget)", eq["newest"]))
    out(_row(f"uniform {eq['rate_hz']:.3f} Hz, average (same budget)", eq["average"]))
    for name, r in t["ward"].items():
        out(_row(f"offline Ward (paper's protocol), {name} fewer", r))
    out(_row("offline Ward, true segment count", t["ward_ground_truth_segment_count"]))
    protocols = t.get("in_effect_by_annotation_protocol") or {}
    if protocols:
        out("\nin effect at annotations placed differently (held out):")
        names = list(protocols)
        out(f"{'annotations':<46} " + " ".join(f"{n[:30]:>30}" for n in names))
        for label in next(iter(protocols.values())):
            out(f"{label:<46} " + " ".join(f"{protocols[n][label]['in_effect']:>30.3f}" for n in names))
    bar = max(t["uniform_newest"][PRIMARY], t["uniform_average"][PRIMARY])
    for key, label in (
        ("selective", f"chosen on the tuning streams {report['tuning']['seeds']}"),
        ("shipped_defaults", "the node's shipped defaults"),
    ):
        r = t.get(key)
        if not r:
            continue
        cfg = t["selective_config"] if key == "selective" else t["shipped_config"]
        verdict = "meets" if r[PRIMARY] >= bar - 1e-12 else "does NOT meet"
        out(f"\n{label}: " + ", ".join(f"{k}={v}" if isinstance(v, str) else f"{k}={v:g}" for k, v in cfg.items()))
        out(
            f"  held out: {r['reduction_factor']:.2f}x fewer decodes than uniform at {rate:g} Hz; in-effect "
            f"{r[PRIMARY]:.3f} {verdict} the uniform {bar:.3f}; event recall {r['event_recall']:.3f} "
            "(goal: >= 3x, recall >= 0.9)"
        )
        for key, what in (("in_effect_vs_uniform", "in effect"), ("in_effect_at_uniform_ticks_vs_uniform", "at ticks")):
            gap = r.get(key)
            if gap:
                lo, hi = gap["ci95"]
                out(
                    f"  {what} minus uniform: {gap['difference']:+.3f} (95% interval over the {gap['streams']} "
                    f"held-out streams, resampled: {lo:+.3f} .. {hi:+.3f})"
                )


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of evaluate_selective."""
    p = argparse.ArgumentParser(prog="evaluate_selective", description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, help="manifest.yaml (default: the bundled tinyworld model)")
    p.add_argument("--bank", type=Path, help="caption bank .npz (default: the model's captions bank)")
    p.add_argument("--tune-seeds", type=_ints, default=list(range(1001, 1025)), help="streams to choose the point on")
    p.add_argument("--test-seeds", type=_ints, default=list(range(2001, 2025)), help="held-out streams reported")
    p.add_argument("--duration", type=float, default=180.0, help="seconds per stream")
    p.add_argument("--fps", type=float, default=10.0, help="camera frame rate of the generated streams")
    p.add_argument("--stride", type=int, default=1, help="perception stride (one clip every N sampled frames)")
    p.add_argument("--uniform-rate", type=float, default=1.0, help="uniform decoding rate compared against (Hz)")
    p.add_argument("--windows", type=_ints, default=[1, 2, 4, 6])
    p.add_argument("--thresholds", type=_floats, default=[0.03, 0.05, 0.07, 0.1, 0.15])
    p.add_argument("--settles", type=_ints, default=[4, 6, 8])
    p.add_argument(
        "--provisional", type=_ints, default=[0, 1], help="provisional decoding off (0) / on (1), both swept"
    )
    p.add_argument("--reconfirms", type=_floats, default=[0.0, 2.0, 4.0], help="reconfirm_s values (0: none)")
    p.add_argument(
        "--triggers",
        type=lambda text: [x.strip() for x in text.split(",") if x.strip()],
        default=["change", "margin"],
        help="decode triggers swept: change (the change detector), margin (the margin-certified drift trigger)",
    )
    p.add_argument("--margin-windows", type=_ints, default=[1], help="margin trigger: smoothing windows swept")
    p.add_argument(
        "--drift-floors",
        type=_floats,
        default=[0.0, 0.45, 0.5, 0.55, 0.6, 0.63, 0.7, 0.77],
        help="margin trigger: drift_floor values swept (0: exact certificate)",
    )
    p.add_argument(
        "--margin-min-intervals",
        type=_floats,
        default=[0.0, 0.5, 1.0],
        help="margin trigger: min_interval_s values swept",
    )
    p.add_argument(
        "--still-steps",
        type=_floats,
        default=[0.0, 0.002, 0.005, 0.01],
        help="margin trigger: still_step values swept (0: no settle decode)",
    )
    p.add_argument("--still-counts", type=_ints, default=[1, 2, 3], help="margin trigger: still_count values swept")
    p.add_argument(
        "--settle-floors", type=_floats, default=[0.2, 0.3, 0.4], help="margin trigger: settle_floor values swept"
    )
    p.add_argument(
        "--min-intervals",
        type=_floats,
        default=[1.0, 0.0, 2.0, 3.0],
        help="the first is used in the coarse sweep, all in the refinement",
    )
    p.add_argument(
        "--max-intervals",
        type=_floats,
        default=[0.0],
        help="heartbeat periods (0: none); the first is used in the coarse sweep. Default: none, since "
        "the decoder's contract is text only on changes; e.g. 0,3,5,10 to sweep heartbeats too",
    )
    p.add_argument(
        "--rearm-fractions",
        type=_floats,
        default=[1.0, 0.75, 0.5],
        help="hysteresis; the first is used in the coarse sweep",
    )
    p.add_argument("--refine-top", type=int, default=5, help="coarse points refined")
    p.add_argument("--ward-reductions", type=_floats, default=[2.0, 3.0, 4.0, 6.0])
    p.add_argument("--annotation-period", type=float, default=1.0, help="seconds between dense annotations")
    p.add_argument("--tolerance", type=float, default=5.0, help="seconds after a change a decode counts as its event")
    p.add_argument(
        "--min-recall",
        type=float,
        default=0.9,
        help="event recall (changes decoded within --tolerance) an operating point must reach",
    )
    p.add_argument(
        "--target-reduction",
        type=float,
        default=3.0,
        help="choose the best quality among points with at least this reduction that meet the bar "
        "(0: the most reduction that meets the bar)",
    )
    p.add_argument(
        "--cache",
        type=Path,
        default=Path.home() / ".cache" / "vljepa_ros" / "selective_eval",
        help="embedding cache folder ('' disables)",
    )
    p.add_argument("--out", type=Path, default=Path("selective_eval.json"), help="JSON report")
    p.add_argument(
        "--figure", type=Path, help="PNG of the first held-out stream: truth, uniform and selective in effect"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `evaluate_selective` console script."""
    args = build_parser().parse_args(argv)
    manifest = args.model or bundled_manifest_path()
    if not Path(manifest).is_file():
        print(f"evaluate_selective: no model manifest at {manifest} (use --model)", file=sys.stderr)
        return 2
    bank_path = args.bank or load_manifest(manifest, check_files=False).banks.get("captions")
    if bank_path is None:
        print(f"evaluate_selective: {manifest} has no captions bank (use --bank)", file=sys.stderr)
        return 2
    decoder = RetrievalDecoder.from_file(bank_path, num_alternatives=0)
    cache = args.cache if str(args.cache) else None
    streams = compute_embeddings(
        Path(manifest), args.tune_seeds + args.test_seeds, args.duration, args.fps, args.stride, cache
    )
    tune, test = streams[: len(args.tune_seeds)], streams[len(args.tune_seeds) :]
    start = time.perf_counter()
    report = evaluate(tune, test, decoder, args, shipped=ChangeDetectorConfig())
    report.update(
        {
            "model": str(manifest),
            "bank": str(bank_path),
            "duration_s": args.duration,
            "fps": args.fps,
            "stride": args.stride,
            "embedding_rate_hz": float(
                (len(test[0].stamps_ns) - 1) / ((test[0].stamps_ns[-1] - test[0].stamps_ns[0]) / NS)
            ),
            "tolerance_s": args.tolerance,
            "sweep_seconds": time.perf_counter() - start,
        }
    )
    print_report(report)
    if args.figure:
        stream = test[0]
        rows = {
            f"uniform {args.uniform_rate:g} Hz": uniform_decodes(stream, decoder, args.uniform_rate, average=False),
            "selective (defaults)": selective_decodes(stream, decoder, ChangeDetectorConfig())[0],
        }
        for trigger, best in report["test"]["best_per_trigger"].items():
            if best["config"] != asdict(ChangeDetectorConfig()):
                rows[f"best {trigger} trigger"] = selective_decodes(
                    stream, decoder, ChangeDetectorConfig(**best["config"])
                )[0]
        timeline_png(stream, rows, args.figure)
        print(f"wrote {args.figure}")
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
