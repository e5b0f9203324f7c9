"""report: the timeline PNG and HTML page are written from real change-detector scores."""

import json

import matplotlib.image
import numpy as np

from vljepa_ros.decoding.change_detection import ChangeDetector, ChangeDetectorConfig
from vljepa_ros.tools import report

T0 = 1_700_000_000 * 10**9
PERIOD = 250_000_000


def _stream(change_indices=(0, 30, 70), length=100, seed=0):
    rng = np.random.default_rng(seed)
    scenes = rng.normal(size=(len(change_indices), 16))
    scene_of = np.searchsorted(change_indices, np.arange(length), side="right") - 1
    vectors = scenes[scene_of] + 0.1 * rng.normal(size=(length, 16))
    stamps = [T0 + i * PERIOD for i in range(length)]
    return stamps, vectors


def test_change_score_curve_peaks_at_changes_and_matches_the_detector():
    stamps, vectors = _stream()
    config = ChangeDetectorConfig(provisional=False, reconfirm_s=0.0)  # one request per change
    scores = report.change_score_curve(stamps, vectors, config)
    assert scores.shape == (100,)
    above = np.flatnonzero(scores >= config.threshold)
    # The score is above the threshold only just after each true change (while the detector settles).
    assert above.size > 0 and all(any(0 <= i - c <= config.window + config.settle for c in (30, 70)) for i in above)
    assert any(above < 70) and any(above >= 70)
    detector = ChangeDetector(config)
    decoded = [i for i, (s, v) in enumerate(zip(stamps, vectors)) if detector.update(s, v) is not None]
    assert len(decoded) == 3


def test_nearest_truth_error_is_signed():
    truth = [report.TruthChange(T0), report.TruthChange(T0 + 10 * 10**9)]
    assert report.nearest_truth_error_s(T0 + 10 * 10**9 + 500_000_000, truth) == 0.5
    assert report.nearest_truth_error_s(T0 + 9 * 10**9, truth) == -1.0
    assert report.nearest_truth_error_s(T0, []) is None


def test_write_report_png_html_json(tmp_path):
    stamps, vectors = _stream()
    scores = report.change_score_curve(stamps, vectors)
    captions = [report.CaptionMark(stamps[i], f"scene {k} <b>", 1 if k else 0, 0.9) for k, i in enumerate((2, 32, 72))]
    thumbs = {captions[0].stamp_ns: np.full((24, 32, 3), 200, np.uint8)}
    timeline = report.CameraTimeline(
        camera="front/left",
        embedding_stamps_ns=np.array(stamps),
        change_scores=scores,
        threshold=0.2,
        captions=captions,
        segment_captions=[report.CaptionMark(stamps[30], "seg", 3, 0.5, stamps[30], stamps[69])],
        truth=[report.TruthChange(stamps[i], f"truth {i}") for i in (0, 30, 70)],
        thumbnails=thumbs,
    )
    paths = report.write_report([timeline], tmp_path / "rep", summary={"frames_read": 100})
    png = matplotlib.image.imread(paths["front/left"])
    assert paths["front/left"].name == "timeline_front_left.png"
    assert png.shape[0] > 500 and png.shape[1] > 1000
    page = paths["html"].read_text()
    assert "timeline_front_left.png" in page and "scene 1 &lt;b&gt;" in page and "frames_read" in page
    data = json.loads(paths["json"].read_text())
    rows = data["cameras"]["front/left"]["captions"]
    assert [r["from_nearest_truth_s"] for r in rows if r["kind"] == "online"] == [0.5, 0.5, 0.5]
    assert [r["reason"] for r in rows] == ["first", "change", "change", "segment"]


def test_empty_timeline_still_renders(tmp_path):
    timeline = report.CameraTimeline("cam", np.zeros(0, np.int64), np.zeros(0))
    path = report.render_timeline_png(timeline, tmp_path / "t.png")
    assert path.stat().st_size > 0
