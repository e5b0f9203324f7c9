"""evaluate_selective: the quality/event metrics on hand-made cases, and the whole sweep on synthetic streams."""

import numpy as np
import pytest

from vljepa_ros.decoding.change_detection import DecodeReason
from vljepa_ros.decoding.decoders import RetrievalDecoder
from vljepa_ros.tools.selective_eval import (
    Annotation,
    Decode,
    EvalStream,
    build_parser,
    choose,
    covering_accuracy,
    dense_annotations,
    evaluate,
    event_metrics,
    in_effect_accuracy,
    in_effect_by_protocol,
    in_effect_time_fraction,
    main,
    midpoint_annotations,
    nearest_accuracy,
    paired_bootstrap,
    uniform_decodes,
)

from support.selective_streams import NS, load_bank, make_stream

FIRST, CHANGE = int(DecodeReason.FIRST), int(DecodeReason.CHANGE)


def truth_for(captions, bounds_s):
    """Ground truth in tiny_world's format: caption segments between `bounds_s` (seconds)."""
    segments = [
        {"start_ns": int(a * NS), "end_ns": int(b * NS), "caption": c}
        for a, b, c in zip(bounds_s[:-1], bounds_s[1:], captions)
    ]
    return {"segments": segments, "change_stamps_ns": [s["start_ns"] for s in segments[1:]]}


def test_nearest_accuracy_takes_the_temporally_nearest_decode():
    decodes = [Decode(0, "A", FIRST, 0), Decode(10 * NS, "B", CHANGE, 10 * NS)]
    annotations = [
        Annotation(2 * NS, "A"),
        Annotation(6 * NS, "B"),
        Annotation(4 * NS, "B"),
        Annotation(5 * NS, "A"),
    ]  # the last is a tie: the earlier decode counts
    assert nearest_accuracy(decodes, annotations) == 0.75
    assert nearest_accuracy([], annotations) == 0.0


def test_in_effect_accuracy_uses_the_latest_decode_before_the_annotation():
    decodes = [Decode(0, "A", FIRST, 0), Decode(10 * NS, "B", CHANGE, 10 * NS)]
    annotations = [Annotation(-NS, "A"), Annotation(2 * NS, "A"), Annotation(9 * NS, "B"), Annotation(12 * NS, "B")]
    assert in_effect_accuracy(decodes, annotations) == 0.5


def test_in_effect_time_fraction_integrates_what_a_subscriber_holds():
    truth = truth_for(["A", "B", "C"], [0, 10, 20, 30])
    # Nothing before 2 s, then A (right to 10 s), B from 12 s (right to 20 s, then C is due), C from 25 s.
    decodes = [
        Decode(2 * NS, "A", FIRST, 0),
        Decode(12 * NS, "B", CHANGE, 10 * NS),
        Decode(25 * NS, "C", CHANGE, 20 * NS),
    ]
    assert in_effect_time_fraction(decodes, truth, 0, 30 * NS) == pytest.approx((8 + 8 + 5) / 30)
    # A decode stamped before the span is in effect from the span's start.
    early = [Decode(-NS, "A", FIRST, -NS)]
    assert in_effect_time_fraction(early, truth, 0, 30 * NS) == pytest.approx(10 / 30)
    assert in_effect_time_fraction([], truth, 0, 30 * NS) == 0.0
    assert np.isnan(in_effect_time_fraction(decodes, truth, 5 * NS, 5 * NS))


def test_annotations_on_uniform_ticks_never_see_it_stale_but_the_time_fraction_does():
    # Uniform 1 Hz decodes of a stream whose caption flips at 10.5 s: at annotations on its own ticks it is
    # right every time; a subscriber holds the old caption from 10.5 s to 11 s (0.5 s of 20 s).
    truth = truth_for(["A", "B"], [0, 10.5, 20])
    ticks = [Decode(k * NS, "A" if k < 10.5 else "B", FIRST, k * NS) for k in range(21)]
    on_ticks = dense_annotations(truth, 0, 20 * NS, 1.0)
    assert in_effect_accuracy(ticks, on_ticks) == 1.0
    assert in_effect_time_fraction(ticks, truth, 0, 20 * NS) == pytest.approx(19.5 / 20)
    # The same decodes at annotations moved off the ticks: the one at 10.5 s or 10.75 s sees the stale caption.
    stream = EvalStream(0, np.arange(21, dtype=np.int64) * NS, np.zeros((21, 2), np.float32), truth)
    protocols = in_effect_by_protocol([stream], [ticks])
    assert protocols["every 1 s from the first embedding"] == {"in_effect": 1.0, "annotations": 21}
    assert protocols["every 1 s from the first embedding + 0.25 s"]["in_effect"] == 1.0
    assert protocols["every 1 s from the first embedding + 0.5 s"]["in_effect"] == pytest.approx(19 / 20)
    assert protocols["every 1 s from the first embedding + 0.75 s"]["in_effect"] == pytest.approx(19 / 20)
    assert protocols["every 0.5 s outside the action windows"] == {"in_effect": 40 / 41, "annotations": 41}
    # An action window leaves its annotations out: 10 s - 11 s holds three of them, one wrong.
    stream.truth["events"] = [{"start_ns": 10 * NS, "end_ns": 11 * NS}]
    outside = in_effect_by_protocol([stream], [ticks])["every 0.5 s outside the action windows"]
    assert outside == {"in_effect": 1.0, "annotations": 39}


def test_covering_accuracy_scores_each_annotation_by_the_segment_it_falls_in():
    # Decoded at 12 s and 33 s, but describing segments that start at 10 s and 30 s.
    decodes = [
        Decode(2 * NS, "A", FIRST, 0),
        Decode(12 * NS, "B", CHANGE, 10 * NS),
        Decode(33 * NS, "C", CHANGE, 30 * NS),
    ]
    annotations = [
        Annotation(-NS, "A"),
        Annotation(9 * NS, "A"),
        Annotation(11 * NS, "B"),
        Annotation(29 * NS, "B"),
        Annotation(31 * NS, "C"),
        Annotation(20 * NS, "C"),
    ]
    assert covering_accuracy(decodes, annotations) == pytest.approx(5 / 6)
    assert nearest_accuracy(decodes, annotations) == pytest.approx(3 / 6)  # 9 s -> 12 s, 29 s -> 33 s, 20 s


def test_annotations_cover_the_embedded_span():
    truth = truth_for(["A", "B", "C"], [0, 10, 20, 30])
    dense = dense_annotations(truth, 2 * NS, 25 * NS, 1.0)
    assert [a.stamp_ns for a in dense] == [k * NS for k in range(2, 26)]
    assert [a.caption for a in dense][7:10] == ["A", "B", "B"]
    assert midpoint_annotations(truth, 2 * NS, 24 * NS) == [Annotation(5 * NS, "A"), Annotation(15 * NS, "B")]


def test_event_metrics_match_each_change_once():
    truth = truth_for(["A", "B", "C", "D"], [0, 10, 30, 40, 60])
    decodes = [
        Decode(k * NS, text, reason, 0)
        for k, text, reason in [
            (1, "A", FIRST),
            (12, "B", CHANGE),
            (13, "B", CHANGE),
            (31, "X", CHANGE),
            (50, "D", CHANGE),
        ]
    ]
    m = event_metrics(decodes, truth, first_ns=0, tolerance_s=5.0)
    # 10 s: detected (2 s, right text); 30 s: detected, wrong text; 40 s: the decode at 50 s is too late.
    assert m == {
        "changes": 3,
        "detected": 2,
        "detected_correct_text": 1,
        "spurious": 2,
        "latencies_s": [2.0, 1.0],
        "right_caption_latencies_s": [2.0, 10.0],  # C is never shown; D at 50 s
    }


def test_uniform_decodes_newest_and_window_average():
    bank = load_bank()
    a, b = bank.embeddings[0], bank.embeddings[40]
    stamps = np.arange(0, 41) * NS // 4  # 4 Hz over 10 s
    vectors = np.stack([a if s < 5 * NS else b for s in stamps]).astype(np.float32)
    vectors[19] = b  # a single outlier at 4.75 s: the newest-embedding decoder at 5 s does not see it
    stream = EvalStream(0, stamps, vectors, truth_for([bank.texts[0], bank.texts[40]], [0, 5, 10]))
    decoder = RetrievalDecoder(bank)
    newest = uniform_decodes(stream, decoder, 1.0, average=False)
    assert [d.stamp_ns for d in newest] == [k * NS for k in range(11)]
    assert [d.text for d in newest] == [bank.texts[0]] * 5 + [bank.texts[40]] * 6
    vectors[16:20] = b  # now (4, 5] is all b, so only the averaged decode at 5 s changes
    vectors[20] = a
    newest = uniform_decodes(stream, decoder, 1.0, average=False)
    averaged = uniform_decodes(stream, decoder, 1.0, average=True)
    assert newest[5].text == bank.texts[0] and averaged[5].text == bank.texts[40]
    assert len(uniform_decodes(stream, decoder, 0.5, average=True)) == 6


def _synthetic(bank, seed, captions, lengths):
    s = make_stream(bank, captions, lengths, noise=0.2, seed=seed, start_ns=0)
    bounds = [0.0] + [c / NS for c in s.change_ns] + [s.stamps_ns[-1] / NS + 1.0]
    return EvalStream(seed, s.stamps_ns, s.vectors, truth_for([bank.texts[c] for c in captions], bounds))


def test_the_exact_margin_trigger_scores_like_decoding_every_embedding():
    bank = load_bank()
    walk = [bank.texts.index(t) for t in ("an empty floor", "a blue cube on the floor", "an empty floor in the dark")]
    tune = [_synthetic(bank, 1, walk, [14.0, 9.0, 12.0])]
    test = [_synthetic(bank, 3, walk[::-1], [10.0, 13.0, 9.0])]
    args = build_parser().parse_args(
        ["--triggers", "margin", "--drift-floors", "0,0.5", "--margin-min-intervals", "0", "--ward-reductions", "3"]
    )
    decoder = RetrievalDecoder(bank, num_alternatives=0)
    report = evaluate(tune, test, decoder, args, log=lambda _: None)
    assert {r["config"]["trigger"] for r in report["tuning"]["sweep"]} == {"margin"}
    every = [Decode(int(t), decoder.decode(v).text, CHANGE, int(t)) for t, v in zip(test[0].stamps_ns, test[0].vectors)]
    stream = test[0]
    anns = dense_annotations(stream.truth, int(stream.stamps_ns[0]), int(stream.stamps_ns[-1]), 1.0)
    exact = report["test"]["margin_exact"]
    assert exact["in_effect_dense"] == pytest.approx(in_effect_accuracy(every, anns))
    assert exact["decodes"] < len(every)  # the certificate skips decodes whose caption cannot have changed
    assert set(report["test"]["best_per_trigger"]) == {"margin"}


def test_sweep_picks_a_point_that_matches_uniform_quality_with_fewer_decodes():
    bank = load_bank()
    walk = [
        bank.texts.index(t)
        for t in (
            "an empty floor",
            "a blue cube on the floor",
            "a blue cube on the floor in the dark",
            "an empty floor in the dark",
        )
    ]
    tune = [_synthetic(bank, 1, walk, [14.0, 9.0, 12.0, 10.0]), _synthetic(bank, 2, walk[::-1], [8, 15, 11, 9])]
    test = [_synthetic(bank, 3, walk[1:] + walk[:1], [10.0, 13.0, 9.0, 12.0])]
    args = build_parser().parse_args(
        [
            "--windows",
            "2,3",
            "--thresholds",
            "0.01,0.03,0.3",
            "--settles",
            "1,2",
            "--min-intervals",
            "1",
            "--max-intervals",
            "0",
            "--rearm-fractions",
            "1",
            "--ward-reductions",
            "3",
            "--refine-top",
            "2",
            "--reconfirms",
            "0,2",
            "--triggers",
            "change",
        ]
    )
    report = evaluate(tune, test, RetrievalDecoder(bank), args, log=lambda _: None)
    t = report["test"]
    # No model lag here (the embeddings change at the change), so uniform 1 Hz shows each change within a second
    # and no selective point reaches its in-effect 0.98: the chosen one is the best in effect with enough recall.
    sweep, chosen = report["tuning"]["sweep"], report["tuning"]["chosen"]
    eligible = [r for r in sweep if r["event_recall"] >= 0.9 and r["reduction_factor"] >= 3.0]
    assert chosen["in_effect_time"] == max(r["in_effect_time"] for r in eligible)
    assert t["selective"]["in_effect_dense"] >= 0.9 and t["selective"]["cover_dense"] >= 0.95
    assert t["uniform_newest"]["latency_p50_s"] <= t["selective"]["latency_p50_s"] <= 1.5
    assert t["selective"]["reduction_factor"] >= 3.0
    assert t["selective"]["event_recall_correct_text"] == 1.0 and t["selective"]["spurious_change_decodes"] == 0
    # Chosen on the time in effect: a provisional decode at each change and its confirmation, one caption each.
    assert t["selective"]["captions"] == 4 and t["selective"]["decodes"] == 7
    assert report["tuning"]["chosen"]["config"]["provisional"] is True
    assert t["uniform_average"]["decodes"] == int((test[0].stamps_ns[-1] - test[0].stamps_ns[0]) // NS) + 1
    assert t["ward_ground_truth_segment_count"]["decodes"] == 4
    assert report["tuning"]["chosen"]["config"]["threshold"] == 0.03  # 0.01 is under the noise, 0.3 over the changes
    assert len(report["tuning"]["sweep"]) == 48  # provisional decoding off and on, reconfirm_s 0 and 2


def test_paired_bootstrap_pools_by_annotations_and_brackets_the_difference():
    weights = [10, 30, 20, 40]
    same = paired_bootstrap([0.5, 0.7, 0.6, 0.9], [0.5, 0.7, 0.6, 0.9], weights, resamples=200)
    assert same["difference"] == 0.0 and same["ci95"] == [0.0, 0.0] and same["streams"] == 4
    # a is 0.1 better on every stream: pooled +0.1 whichever streams are drawn.
    better = paired_bootstrap([0.6, 0.8, 0.7, 1.0], [0.5, 0.7, 0.6, 0.9], weights, resamples=200)
    assert better["difference"] == pytest.approx(0.1) and better["ci95"] == pytest.approx([0.1, 0.1])
    # Mixed signs: the pooled difference weights streams by their annotations, and the interval holds it.
    mixed = paired_bootstrap([0.6, 0.6, 0.7, 0.9], [0.5, 0.7, 0.6, 0.95], weights, resamples=500)
    assert mixed["difference"] == pytest.approx((10 * 0.1 - 30 * 0.1 + 20 * 0.1 - 40 * 0.05) / 100)
    lo, hi = mixed["ci95"]
    assert lo < 0.0 < hi and lo <= mixed["difference"] <= hi
    with pytest.raises(ValueError, match="per-stream"):
        paired_bootstrap([0.5], [0.5, 0.6], [1, 1])


def test_main_refuses_a_missing_model(tmp_path, capsys):
    assert main(["--model", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "r.json")]) == 2
    assert "manifest" in capsys.readouterr().err


def test_choose_needs_quality_and_recall_then_prefers_fewer_decodes():
    def point(quality, recall, reduction):
        return {
            "in_effect_time": quality,
            "event_recall": recall,
            "reduction_factor": reduction,
            "event_recall_correct_text": recall,
        }

    late = point(0.70, 0.40, 12.0)  # good captions, but most arrive after the tolerance
    good = point(0.62, 0.95, 9.0)
    better = point(0.61, 0.92, 9.5)
    poor = point(0.50, 0.99, 20.0)
    assert choose([late, good, better, poor], bar=0.60, min_recall=0.9) is better
    assert choose([late, good, better, poor], bar=0.60, min_recall=0.0) is late
    assert choose([late, poor], bar=0.60, min_recall=0.9) is poor  # nothing meets: best quality with recall


def test_choose_with_a_target_reduction_prefers_quality_among_points_that_reach_it():
    def point(quality, recall, reduction):
        return {
            "in_effect_time": quality,
            "event_recall": recall,
            "reduction_factor": reduction,
            "event_recall_correct_text": recall,
        }

    edge = point(0.61, 0.95, 10.0)  # the most reduction, only just over the bar
    margin = point(0.75, 0.95, 8.0)
    cheap = point(0.80, 0.95, 2.0)  # best quality, but under the target reduction
    late = point(0.90, 0.50, 9.0)
    points = [edge, margin, cheap, late]
    assert choose(points, bar=0.60, min_recall=0.9, target_reduction=3.0) is margin
    assert choose(points, bar=0.60, min_recall=0.9) is edge
    assert choose(points, bar=0.60, min_recall=0.9, target_reduction=12.0) is edge  # none reaches it: most reduction
    assert choose([cheap, late], bar=0.85, min_recall=0.9, target_reduction=3.0) is cheap  # none meets the bar


def test_command_runs_the_bundled_model_end_to_end(tmp_path):
    import json

    from vljepa_ros.runtime.bundled_model import bundled_manifest_path

    if not bundled_manifest_path().is_file():
        pytest.skip("no bundled model")
    out = tmp_path / "r.json"
    assert (
        main(
            [
                "--tune-seeds",
                "11",
                "--test-seeds",
                "12",
                "--duration",
                "60",
                "--windows",
                "2",
                "--thresholds",
                "0.12",
                "--settles",
                "8",
                "--min-intervals",
                "1",
                "--max-intervals",
                "0",
                "--rearm-fractions",
                "1",
                "--cache",
                str(tmp_path / "cache"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    t = report["test"]
    assert t["embeddings"] > 200 and 3.5 < report["embedding_rate_hz"] < 4.5  # 4 Hz clips over ~60 s
    assert t["uniform_average"]["decodes"] == int(t["stream_seconds"]) + 1
    assert 1 <= t["selective"]["decodes"] < t["uniform_average"]["decodes"]
    assert t["selective"]["true_changes"] > 0
    gap = t["selective"]["in_effect_vs_uniform"]  # one held-out stream: the interval is the difference itself
    assert gap["streams"] == 1 and gap["ci95"] == pytest.approx([gap["difference"]] * 2)
    bar = max(t["uniform_newest"]["in_effect_time"], t["uniform_average"]["in_effect_time"])
    assert gap["difference"] == pytest.approx(t["selective"]["in_effect_time"] - bar)
    ticks = t["selective"]["in_effect_at_uniform_ticks_vs_uniform"]  # labelled beside it, on the same uniform
    uniform = max((t["uniform_newest"], t["uniform_average"]), key=lambda r: r["in_effect_time"])
    assert ticks["difference"] == pytest.approx(t["selective"]["in_effect_dense"] - uniform["in_effect_dense"])
    assert list((tmp_path / "cache").glob("*.npz"))  # embeddings cached for the next sweep
