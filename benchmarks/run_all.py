"""The benchmark suite: every benchmark in one run, one JSON file, one markdown table.

Runs, one after another (never in parallel: they would measure each other), each as its own process with
its own JSON output:
  bench_encoder                  ONNX Runtime vs PyTorch eager, fused vs unfused preprocessing
  bench_precision                fp32 vs fp16 ONNX encoder
  bench_perception               end-to-end latency per clip and the node's overhead over bare inference
  bench_peak_rate                peak input rate with <5% drops for 1, 2, 4 cameras (real node over DDS)
  bench_cameras                  camera-driver processes -> node: frames and clips through, shipped vs default transport
  evaluate_selective / bench_selective   selective vs uniform decoding
  bench_soak                     RSS over a 10,000-frame run
and writes OUT/results.json (every benchmark's JSON, the command, its wall time and exit code) and
OUT/results.md (the table). A benchmark that fails is reported as failed; the others still run.

Ratios are taken inside one benchmark's run (alternated measurements), so machine load cancels; absolute
times depend on the machine and its load (recorded).

Usage: .venv/bin/python benchmarks/run_all.py [--quick] [--out out/bench] [--manifest M]
  --quick: ~3 minutes (fewer repetitions, shorter steps, 2,000-frame soak); default: ~15 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vljepa_ros.nodes.dds_transport import apply_transport_defaults

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def benchmark_plan(quick: bool, manifest: Path, bundled: bool, out: Path) -> list[dict]:
    """(name, command, JSON path, time limit) of every benchmark, in run order."""
    py = sys.executable

    def job(name, script, args, limit_s):
        json_path = out / f"{name}.json"
        target = ["-m", script] if isinstance(script, str) else [str(script)]
        return {
            "name": name,
            "command": [py, *target, *map(str, args), "--out", str(json_path)],
            "json": json_path,
            "limit_s": limit_s,
        }

    iters = ["--iters", "6", "--block", "3"] if quick else ["--iters", "30", "--block", "10"]
    plan = [
        job("encoder_fp32", HERE / "bench_encoder.py", iters, 300),
        job("precision", HERE / "bench_precision.py", ["--iters", "10" if quick else "30"], 300),
        job(
            "perception",
            HERE / "bench_perception.py",
            ["--manifest", manifest]
            + (["--seconds", "4", "--reps", "8"] if quick else ["--seconds", "20", "--reps", "30"]),
            300 if quick else 420,
        ),
        job(
            "peak_rate",
            HERE / "bench_peak_rate.py",
            ["--manifest", manifest] + (["--quick"] if quick else []),
            300 if quick else 600,
        ),
        job(
            "cameras",
            HERE / "bench_cameras.py",
            ["--manifest", manifest] + (["--quick", "--seconds", "3"] if quick else []),
            240 if quick else 600,
        ),
        job(
            "soak",
            HERE / "bench_soak.py",
            ["--manifest", manifest, "--frames", 2000 if quick else 10_000],
            180 if quick else 420,
        ),
        job(
            "selective_synthetic",
            HERE / "bench_selective.py",
            ["--minutes", 3 if quick else 10, "--repeats", 1 if quick else 3],
            120,
        ),
    ]
    if bundled and not quick:
        # The full evaluation the decoder's defaults come from (benchmarks/results/selective_eval.json): held-out
        # tiny-world streams, in-effect quality against uniform decoding.
        plan.append(job("selective_equal_quality", "vljepa_ros.tools.selective_eval", ["--model", manifest], 900))
    return plan


def run_benchmark(job: dict, log_dir: Path, log=print) -> dict:
    """Run one benchmark process, and once more if it fails (recorded in ``attempts``); output goes to a log."""
    first = _run_once(job, log_dir, log)
    if first["result"] is not None:
        return {**first, "attempts": 1}
    second = _run_once(job, log_dir, log)
    return {**second, "attempts": 2, "first_attempt": {k: first[k] for k in ("exit", "wall_s", "log")}}


def _run_once(job: dict, log_dir: Path, log=print) -> dict:
    log(f"== {job['name']}: {' '.join(Path(c).name if i < 2 else c for i, c in enumerate(job['command']))}", flush=True)
    log_path = log_dir / f"{job['name']}.log"
    if log_path.exists():  # a retry keeps the failed attempt's log
        log_path = log_dir / f"{job['name']}.retry.log"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    start = time.monotonic()
    with open(log_path, "w") as out:
        try:
            code = subprocess.run(
                job["command"], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env, timeout=job["limit_s"]
            ).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    wall = time.monotonic() - start
    result = None
    if code == 0 and job["json"].is_file():
        result = json.loads(job["json"].read_text())
    tail = log_path.read_text().strip().splitlines()[-3:]
    log(
        f"   {'ok' if result is not None else 'FAILED (' + str(code) + ')'} in {wall:.0f} s"
        + ("" if result is not None else "; " + " | ".join(tail)),
        flush=True,
    )
    return {"command": job["command"], "exit": code, "wall_s": round(wall, 1), "log": str(log_path), "result": result}


# ----- the table --------------------------------------------------------------------------------------------


def _get(data, *keys, default=None):
    for key in keys:
        if (
            isinstance(data, dict)
            and key in data
            or isinstance(data, list)
            and isinstance(key, int)
            and -len(data) <= key < len(data)
        ):
            data = data[key]
        else:
            return default
    return data


def _core_without_ros(p):
    """The pipeline's own cost over inference without ROS; older result files name it differently."""
    overhead = _get(p, "overhead", default={})
    legacy = _get(overhead, "pipeline_overhead_ratio_vs_bare")
    return _get(overhead, "pipeline_without_ros_own_over_inference_p50", default=legacy)


def _f(value, digits=1, suffix="") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, (int, float)):
        return f"{value:.{digits}f}{suffix}"
    return str(value)


def table_rows(results: dict) -> list[tuple[str, str, str]]:
    """(measure, value, how) rows from the collected results; missing parts show as n/a."""
    r = {name: entry.get("result") for name, entry in results["benchmarks"].items()}
    rows = []

    p = r.get("perception") or {}
    e2e = _get(p, "node", "e2e_stamp_to_publish_ms", default={})
    bare = _get(p, "bare_ort_ms", default={})
    rows.append(
        (
            "End-to-end latency per clip, input stamp -> publish (p50 / p95)",
            f"{_f(e2e.get('p50'))} / {_f(e2e.get('p95'))} ms",
            f"perception node, one {_get(p, 'input', 'camera', default='camera')}; "
            f"model {_get(p, 'model', 'model_id', default='?')} on {_get(p, 'model', 'provider', default='?')}",
        )
    )
    rows.append(
        (
            "Bare inference (ORT encoder + predictor, batch 1, p50 / p95)",
            f"{_f(bare.get('p50'))} / {_f(bare.get('p95'))} ms",
            f"raw session.run, alternated with the runtime; {bare.get('intra_op_threads', '?')} CPU thread(s) "
            f"per model as the node; ONNX Runtime's default threads: {_f(bare.get('default_threads_p50'))} ms",
        )
    )
    rows.append(
        (
            "Node overhead vs bare inference",
            f"{_f(_get(p, 'overhead', 'overhead_ratio_vs_bare'), 3)}x "
            f"({_f(_get(p, 'overhead', 'node_overhead_ms_p50'), 2)} ms)",
            "per clip: ((frame received -> publish) - model time + runtime wrapper work) / the clip's time "
            "in session.run; over back-to-back bare p50 instead: "
            f"{_f(_get(p, 'overhead', 'overhead_over_back_to_back_bare_p50'), 3)}x; core without ROS: "
            f"{_f(_core_without_ros(p), 3)}x",
        )
    )
    processing = _get(p, "node", "processing_received_to_publish_ms", "p50")
    rows.append(
        (
            "Frame received -> publish over bare inference",
            f"{_f(None if processing is None or not bare.get('p50') else processing / bare['p50'], 2)}x "
            f"({_f(processing, 2)} ms)",
            "p50s measured minutes apart: the node's model calls run cold, between camera frames, the bare "
            "ones back to back",
        )
    )
    rows.append(
        (
            "End-to-end over bare inference",
            f"{_f(_get(p, 'overhead', 'e2e_stamp_to_publish_over_bare_ratio'), 2)}x",
            "stamp -> publish p50 / bare p50; includes DDS transport between processes "
            f"(stamp -> node p50 {_f(_get(p, 'node', 'input_stamp_to_node_ms', 'p50'))} ms)",
        )
    )
    for t in _get(p, "throughput", default=[]) or []:
        rows.append(
            (
                f"Clips/s, {t.get('cameras')} camera(s), batched vs unbatched",
                f"{_f(t.get('batched_clips_per_s'))} vs {_f(t.get('unbatched_clips_per_s'))}",
                "pipeline.run_clips, one call for all cameras vs one per camera, interleaved",
            )
        )

    peak = r.get("peak_rate") or {}
    for mode, label in (("every_frame", "every frame a clip"), ("model_rate", "sampled at the model rate")):
        found = [x for x in peak.get("results", []) if x.get("mode") == mode]
        if found:
            found = sorted(found, key=lambda x: x["cameras"])
            per_camera = " / ".join(_f(x.get("peak_rate_hz_per_camera"), 1) for x in found)
            total = " / ".join(_f(x.get("peak_input_hz_total"), 1) for x in found)
            cams = "/".join(str(x["cameras"]) for x in found)
            rows.append(
                (
                    f"Peak input rate with <5% drops, {cams} cameras ({label})",
                    f"{per_camera} Hz per camera ({total} Hz total)",
                    f"rate ladder vs the perception_node process over DDS; {_get(peak, 'camera', default='')}; "
                    "n/a: no step passed",
                )
            )

    cameras = r.get("cameras") or {}
    by_row: dict[str, dict] = {}
    for x in cameras.get("results", []):
        by_row.setdefault(x["row"], {})[x["transport"]] = x
    for label, pair in by_row.items():
        shipped, default = pair.get("shipped", {}), pair.get("default", {})
        rows.append(
            (
                f"Camera processes -> node, {label}: frames received, shipped vs default transport",
                f"{_f(100 * (shipped.get('received_fraction') or 0))}% vs "
                f"{_f(100 * (default.get('received_fraction') or 0))}%; clips "
                f"{shipped.get('clips_out')}/{shipped.get('clips_expected')} vs "
                f"{default.get('clips_out')}/{default.get('clips_expected')}",
                f"bench_cameras: SENSOR_DATA publisher processes, live stamps; shipped: latency p50/p95 "
                f"{_f(shipped.get('latency_ms_p50'))}/{_f(shipped.get('latency_ms_p95'))} ms, node CPU "
                f"{_f(shipped.get('node_cpu_percent'))}%",
            )
        )

    enc = r.get("encoder_fp32") or {}
    rows.append(
        (
            "ONNX Runtime vs PyTorch eager (encoder, batch 1)",
            f"{_f(_get(enc, 'encoder', 'torch_over_ort'), 2)}x faster "
            f"({_f(_get(enc, 'encoder', 'onnxruntime', 'median_ms'), 2)} vs "
            f"{_f(_get(enc, 'encoder', 'torch_eager', 'median_ms'), 2)} ms)",
            f"{_get(enc, 'model', 'preset', default='?')} encoder, same weights and threads, alternated blocks",
        )
    )
    fused = _get(enc, "fused_preprocessing", default={})
    rows.append(
        (
            "Fused vs unfused preprocessing (camera frames -> tokens; unfused time / fused time)",
            f"{_f(fused.get('unfused_over_fused'), 2)}x (fused "
            f"{_f(_get(fused, 'frames_to_tokens', 'fused', 'median_ms'), 2)} ms, unfused "
            f"{_f(_get(fused, 'frames_to_tokens', 'unfused', 'median_ms'), 2)} ms)",
            f"unfused = OpenCV resize/crop/normalise + float graph; fused = uint8 frames into the graph; "
            f"camera {fused.get('camera')}",
        )
    )
    prec = r.get("precision") or {}
    rows.append(
        (
            "fp16 vs fp32 ONNX encoder (time fp16 / fp32)",
            f"{_f(prec.get('fp16_over_fp32_time'), 2)}x ({_f(prec.get('fp16_median_ms'), 2)} vs "
            f"{_f(prec.get('fp32_median_ms'), 2)} ms)",
            f"{_get(prec, 'model', 'preset', default='?')} encoder on {prec.get('provider', '?')}, alternated "
            f"blocks; tokens differ by <= {_f(prec.get('fp16_vs_fp32_tokens_max_abs_diff'), 4)}",
        )
    )

    sel = r.get("selective_equal_quality")
    if sel:
        rows.append(selective_row(sel))
    syn = r.get("selective_synthetic") or {}
    rows.append(
        (
            "Selective vs uniform decoding, synthetic stream",
            f"{_f(syn.get('reduction_factor'), 2)}x fewer decodes",
            f"bench_selective: {syn.get('uniform_decodes')} uniform ({syn.get('uniform_rate_hz')} Hz) vs "
            f"{syn.get('selective_decodes')} selective decodes; detector "
            f"{_f(syn.get('detector_us_per_embedding'), 1)} us/embedding (quality not scored here)",
        )
    )

    soak = _get(r.get("soak") or {}, "summary", default={})
    rows.append(
        (
            f"Memory over a {soak.get('frames', '?')}-frame soak",
            f"RSS {_f(soak.get('rss_mb_at_20pct'))} -> {_f(soak.get('rss_mb_end'))} MB; slope "
            f"{_f(soak.get('rss_growth_kb_per_1000_frames'))} KB/1000 frames",
            f"after 20% warm-up; live Python objects {_f(soak.get('python_objects_growth_per_1000_frames'))} "
            f"per 1000 frames; {_f(soak.get('frames_per_s'), 0)} frames/s through the core",
        )
    )
    return rows


def selective_row(report: dict) -> tuple[str, str, str]:
    """README/benchmarks row of an evaluate_selective report: the node's shipped defaults on held-out streams,
    in-effect quality (the fraction of the time the caption a subscriber holds is right) against uniform
    decoding, with the paired 95% interval of the difference."""
    test = report.get("test", {})
    metric = report.get("primary_metric", "in_effect_time")
    bar = max([_get(test, k, metric, default=0.0) for k in ("uniform_newest", "uniform_average")])
    shipped = test.get("shipped_defaults") or test.get("selective") or {}
    quality = shipped.get(metric)
    verdict = "n/a" if quality is None else ("meets" if quality >= bar - 1e-12 else "below")
    gap = shipped.get("in_effect_vs_uniform") or {}
    lo, hi = gap.get("ci95") or (None, None)
    return (
        "Selective vs uniform 1 Hz decoding, node defaults on held-out streams",
        f"{_f(shipped.get('reduction_factor'), 2)}x fewer decodes; caption in effect right {_f(quality, 3)} of the "
        f"time vs uniform {_f(bar, 3)} ({verdict}: {_f(gap.get('difference'), 3)}, 95% interval {_f(lo, 3)} .. "
        f"{_f(hi, 3)}); right caption {_f(shipped.get('latency_p50_s'), 2)} / "
        f"{_f(shipped.get('latency_p90_s'), 2)} s after a change (p50 / p90)",
        f"evaluate_selective: held-out tiny-world streams {test.get('seeds')} ({_f(test.get('stream_seconds'), 0)} s), "
        f"event recall {_f(shipped.get('event_recall'), 3)}; benchmarks/results/selective_eval.json",
    )


def markdown(results: dict) -> str:
    machine = results["machine"]
    lines = [
        f"Benchmarks ({'quick' if results['quick'] else 'full'} run, {results['date_utc']}, "
        f"{machine['cpu_count']} CPU cores, load average at start {machine['load_avg_start']}; "
        f"suite wall time {results['wall_s']:.0f} s)",
        "",
        "| measure | value | how |",
        "|---|---|---|",
    ]
    lines += [f"| {m} | {v} | {h} |" for m, v, h in table_rows(results)]
    failed = [f"{n} ({e['exit']})" for n, e in results["benchmarks"].items() if e["result"] is None]
    if failed:
        lines += ["", "Failed: " + ", ".join(failed) + " (see the logs next to results.json)."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="~3 minute version")
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "bench")
    parser.add_argument("--manifest", type=Path, help="model manifest (default: bundled, else tiny random)")
    parser.add_argument("--only", nargs="+", help="run only these benchmarks (names as in results.json)")
    parser.add_argument("--table-only", action="store_true", help="re-render the table from OUT/results.json")
    args = parser.parse_args(argv)
    if args.table_only:
        results = json.loads((args.out / "results.json").read_text())
        (args.out / "results.md").write_text(markdown(results))
        print(markdown(results))
        return 0
    apply_transport_defaults()  # the shipped transport (config/transport.env); no traffic leaves this host
    os.environ.setdefault("ROS_DOMAIN_ID", str(150 + os.getpid() % 80))
    out = args.out.resolve()
    (out / "logs").mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        sys.path.insert(0, str(HERE))
        from bench_peak_rate import default_manifest

        manifest, source = (args.manifest, "given") if args.manifest else default_manifest(Path(tmp))
        print(f"model: {manifest} ({source})")
        plan = benchmark_plan(args.quick, Path(manifest), source == "bundled default", out)
        if args.only:
            plan = [j for j in plan if j["name"] in args.only]
        results = {
            "quick": args.quick,
            "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "model": {"manifest": str(manifest), "source": source},
            "machine": {
                "cpu_count": os.cpu_count(),
                "platform": platform.platform(),
                "load_avg_start": [round(x, 2) for x in os.getloadavg()],
            },
            "benchmarks": {job["name"]: run_benchmark(job, out / "logs") for job in plan},
        }
    results["wall_s"] = round(time.monotonic() - start, 1)
    results["machine"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    table = markdown(results)
    (out / "results.md").write_text(table)
    print()
    print(table)
    print(f"wrote {out / 'results.json'} and {out / 'results.md'}")
    return 0 if all(e["result"] is not None for e in results["benchmarks"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
