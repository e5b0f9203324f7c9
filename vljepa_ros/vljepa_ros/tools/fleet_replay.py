"""Fleet replay: many bags through `replay` on a Ray cluster (local by default), into one recording index.

One Ray actor per worker loads the model once and replays bag after bag with it. Each bag gives exactly what
`replay` gives (output bag, summary.json, report) under OUT/bags/<name>/, and its clips go into the recording
index (OUT/index by default; see vljepa_ros.index). A bag whose content hash and model version already have a
done marker and an index part is skipped, so a rerun after an interruption only does what is left; a bag that
fails (unreadable, unknown encoding) is reported with its reason and the run goes on.

Each bag ends in one status: "done"; "partial" (its input is incomplete: a recording cut short or messages
lost in the bag; every clip it holds is indexed, the reason is kept, and a rerun skips it as the same bytes
give the same result); "failed" (nothing indexed: unreadable, or clips lost to inference, which a rerun
retries; no done marker is written); "skipped" (done or partial in an earlier run).
OUT/fleet_summary.json holds the bags, frames, clips, failures and partial bags with their reasons, wall time
and clips/s per worker.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import ray
from tqdm import tqdm

from vljepa_ros.bags import bag_io
from vljepa_ros.index.clip_rows import ReplayedBag, clip_rows
from vljepa_ros.index.content_hash import bag_content_hash
from vljepa_ros.index.recording_index import RecordingIndex
from vljepa_ros.runtime.bundled_model import bundled_manifest_path
from vljepa_ros.runtime.manifest import load_manifest
from vljepa_ros.runtime.vljepa_runtime import VLJepaRuntime
from vljepa_ros.tools import replay
from vljepa_ros.tools.replay_outputs import TOPIC_EMBEDDING, TOPIC_SEGMENT_CAPTION, TOPIC_VISUAL

DONE_FILE = "fleet_done.json"
FAILED_FILE = "fleet_failed.json"
SUMMARY_FILE = "fleet_summary.json"
IN_FLIGHT_PER_WORKER = 2  # a queued bag per actor, so no worker waits on the driver between bags
OBJECT_STORE_BYTES = 256 * 1024 * 1024  # results are small dicts; keep Ray's shared-memory store small


@dataclass(frozen=True)
class FleetOptions:
    """What every worker needs: where outputs go, the model, and the arguments passed on to `replay`."""

    out: Path
    index: Path
    manifest: Path
    replay_args: tuple[str, ...] = ()
    providers: tuple[str, ...] = ("cpu",)
    threads_per_worker: int = 1

    @property
    def bags_dir(self) -> Path:
        """Where each bag's replay outputs go."""
        return self.out / "bags"


class BagWorker:
    """Holds the model sessions (loaded once) and replays bags with them; a Ray actor in run_fleet."""

    def __init__(self, options: FleetOptions, worker_id: int):
        self.options = options
        self.worker_id = worker_id
        self.runtime = VLJepaRuntime.from_manifest(
            options.manifest, providers=options.providers, intra_op_threads=options.threads_per_worker
        )
        self.model_version = self.runtime.manifest.version
        self.index = RecordingIndex(options.index)
        self.model_loads = 1

    def replay_bag(self, bag: str, name: str) -> dict:
        """Replay one bag into OUT/bags/<name> and the index; returns its outcome (never raises)."""
        start = time.perf_counter()
        out = self.options.bags_dir / name
        outcome = {"bag": bag, "name": name, "worker": self.worker_id, "model_version": self.model_version}
        try:
            content = bag_content_hash(bag)
            outcome["bag_hash"] = content
            done = _read_json(out / DONE_FILE)
            finished = done.get("bag_hash") == content and done.get("model_version") == self.model_version
            if finished and self.index.has_bag(content, self.model_version):
                earlier = done.get("status", "done")
                return {
                    **done,
                    "status": "skipped",
                    "earlier_status": earlier,
                    "worker": self.worker_id,
                    "seconds": 0.0,
                }
            if out.exists():
                shutil.rmtree(out)  # what an interrupted or failed run left
            outcome.update(self._replay(Path(bag), name, out, content))
            outcome["seconds"] = round(time.perf_counter() - start, 4)
            if outcome["status"] != "failed":
                (out / DONE_FILE).write_text(json.dumps(outcome, indent=1))
            else:
                (out / FAILED_FILE).write_text(json.dumps(outcome, indent=1))
        except Exception as error:  # any bag may be broken in its own way; report it and go on
            outcome.update(status="failed", reason=f"{type(error).__name__}: {error}")
            outcome["seconds"] = round(time.perf_counter() - start, 4)
            out.mkdir(parents=True, exist_ok=True)
            (out / FAILED_FILE).write_text(json.dumps(outcome, indent=1))
        return outcome

    def _replay(self, bag: Path, name: str, out: Path, content: str) -> dict:
        args = replay.build_parser().parse_args(
            [str(bag), "--out", str(out), "--model", str(self.options.manifest), "--quiet", *self.options.replay_args]
        )
        config = replay.config_from_args(args)
        summary = replay.run_replay(config, log=lambda *_: None, runtime=self.runtime)
        reasons = replay.losses(summary)
        if summary["clips_lost_to_inference"]:
            # Not indexed and no done marker: a rerun retries the bag instead of keeping a silent hole.
            return {"status": "failed", "reason": "; ".join(reasons), "input": summary["input"], "clips": 0}
        store = bag_io.make_typestore()
        output_bag = out / "bag"
        embeddings = [m for _, m in bag_io.read_messages(output_bag, TOPIC_EMBEDDING, store)]
        replayed = ReplayedBag(
            name=name,
            path=bag,
            content_hash=content,
            topics={c.name: c.topic for c in config.cameras},
            predicted=embeddings,
            visual_states=[m for _, m in bag_io.read_messages(output_bag, TOPIC_VISUAL, store)],
            segments=[m for _, m in bag_io.read_messages(output_bag, TOPIC_SEGMENT_CAPTION, store)],
        )
        rows = clip_rows(replayed)
        self.index.add_bag(rows, content, self.model_version)
        outcome = {
            "status": "partial" if reasons else "done",
            "frames": sum(c["frames_read"] for c in summary["cameras"].values()),
            "clips": len(rows),
            "all_frames_accounted": summary["all_frames_accounted"],
            "input": summary["input"],
        }
        if reasons:
            outcome["reason"] = "; ".join(reasons)
        return outcome

    def stats(self) -> dict:
        """How often this worker loaded the model (once, by construction)."""
        return {"worker": self.worker_id, "model_loads": self.model_loads, "pid": os.getpid()}


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def bag_names(bags: Sequence[str]) -> list[str]:
    """A folder name per bag under OUT/bags (bag folder names; repeated ones get -2, -3, ...)."""
    names, seen = [], {}
    for bag in bags:
        base = Path(bag).name or "bag"
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return names


def fleet_summary(outcomes: list[dict], wall_s: float, processing_s: float, workers: int, model: dict) -> dict:
    """The run's summary: counts, failures with reasons, wall time and clips/s per worker.

    ``processing_s``: the wall time after every worker had loaded the model (clips/s is measured over it).
    """
    done = [o for o in outcomes if o["status"] in ("done", "partial", "skipped")]
    failed = [o for o in outcomes if o["status"] == "failed"]
    failures = [{"bag": o["bag"], "name": o["name"], "reason": o["reason"]} for o in failed]
    partial = [o for o in outcomes if "partial" in (o["status"], o.get("earlier_status"))]
    per_worker = {}
    for worker in range(workers):
        mine = [o for o in outcomes if o.get("worker") == worker and o["status"] in ("done", "partial")]
        busy = sum(o["seconds"] for o in mine)
        clips = sum(o["clips"] for o in mine)
        per_worker[str(worker)] = {
            "bags": len(mine),
            "clips": clips,
            "busy_s": round(busy, 3),
            "clips_per_s": round(clips / busy, 3) if busy else 0.0,
        }
    replayed_clips = sum(o["clips"] for o in outcomes if o["status"] in ("done", "partial"))
    return {
        "model": model,
        "bags": len(outcomes),
        "bags_replayed": sum(o["status"] in ("done", "partial") for o in outcomes),
        "bags_skipped": sum(o["status"] == "skipped" for o in outcomes),
        "bags_partial": len(partial),
        "bags_failed": len(failures),
        "frames": sum(o.get("frames", 0) for o in done),
        "clips": sum(o.get("clips", 0) for o in done),
        "failures": failures,
        "partial": [{"bag": o["bag"], "name": o["name"], "reason": o["reason"]} for o in partial],
        "wall_s": round(wall_s, 3),
        "processing_s": round(processing_s, 3),
        "clips_per_s": round(replayed_clips / processing_s, 3) if processing_s else 0.0,
        "workers": per_worker,
        "outcomes": sorted(outcomes, key=lambda o: o["name"]),
    }


def _init_ray(address: str | None, workers: int, cpus_per_worker: int) -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report leaves the machine
    if address:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
        return
    ray.init(
        num_cpus=workers * cpus_per_worker,
        include_dashboard=False,
        object_store_memory=OBJECT_STORE_BYTES,
        log_to_driver=False,
    )


def run_fleet(
    bags: Sequence[str],
    options: FleetOptions,
    workers: int = 1,
    gpus_per_worker: float = 0.0,
    address: str | None = None,
    progress: bool = True,
) -> dict:
    """Replay `bags` on `workers` Ray actors; returns (and writes) the fleet summary. Ray stops on return."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    manifest = load_manifest(options.manifest, check_files=False)
    options.out.mkdir(parents=True, exist_ok=True)
    wall_start = time.perf_counter()
    outcomes: list[dict] = []
    _init_ray(address, workers, options.threads_per_worker)
    try:
        actor = ray.remote(num_cpus=options.threads_per_worker, num_gpus=gpus_per_worker)(BagWorker)
        actors = [actor.remote(options, i) for i in range(workers)]
        ray.get([a.stats.remote() for a in actors])  # models loaded: from here on the clock measures replay
        processing_start = time.perf_counter()
        todo = list(zip(bags, bag_names(bags)))
        todo.reverse()
        in_flight = {}
        bar = tqdm(total=len(todo), unit="bag", disable=not progress, desc="fleet_replay")
        for worker in actors:
            for _ in range(IN_FLIGHT_PER_WORKER):
                if todo:
                    in_flight[worker.replay_bag.remote(*todo.pop())] = worker
        clips = 0
        while in_flight:
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            worker = in_flight.pop(ready[0])
            outcome = ray.get(ready[0])
            outcomes.append(outcome)
            if todo:
                in_flight[worker.replay_bag.remote(*todo.pop())] = worker
            clips += outcome.get("clips", 0) if outcome["status"] in ("done", "partial") else 0
            elapsed = time.perf_counter() - processing_start
            failed = sum(o["status"] == "failed" for o in outcomes)
            bar.set_postfix(clips_per_s=f"{clips / elapsed:.1f}", failed=failed, refresh=False)
            bar.update(1)
        bar.close()
        processing_s = time.perf_counter() - processing_start
        loads = ray.get([a.stats.remote() for a in actors])
    finally:
        ray.shutdown()
    model = {"model_id": manifest.model_id, "model_version": manifest.version, "manifest": str(options.manifest)}
    summary = fleet_summary(outcomes, time.perf_counter() - wall_start, processing_s, workers, model)
    summary["model_loads"] = sum(s["model_loads"] for s in loads)
    summary["index"] = str(options.index)
    (options.out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    return summary


def read_bag_list(path: Path) -> list[str]:
    """Bag paths from a file, one per line; blank lines and # comments are ignored."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of `fleet_replay`."""
    parser = argparse.ArgumentParser(
        prog="fleet_replay",
        description="Replay many bags on a Ray cluster (local by default) into per-bag outputs and one "
        "recording index; reruns skip finished bags.",
    )
    parser.add_argument("bags", nargs="*", help="input bag folders")
    parser.add_argument("--bags-from", type=Path, help="file listing bag folders, one per line")
    parser.add_argument("--out", type=Path, required=True, help="output folder (bags/<name>/, fleet_summary.json)")
    parser.add_argument("--index", type=Path, help="recording index folder (default: OUT/index)")
    parser.add_argument("--model", type=Path, help="model manifest (default: the bundled model)")
    parser.add_argument("--address", help="Ray cluster address (default: a local Ray on this machine)")
    parser.add_argument("--workers", type=int, default=1, help="Ray actors, each holding the model (default 1)")
    parser.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs reserved per actor (default 0)")
    parser.add_argument("--cpus-per-worker", type=int, default=1, help="CPUs (and ONNX Runtime threads) per actor")
    parser.add_argument("--providers", nargs="+", help="ONNX Runtime providers (default: cpu; cuda cpu with GPUs)")
    parser.add_argument("--params-file", type=Path, help="node parameters YAML passed on to replay")
    parser.add_argument("--segments", type=int, help="offline Ward segments per camera, passed on to replay")
    parser.add_argument("--no-report", action="store_true", help="skip each bag's PNG/HTML report")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def options_from_args(args: argparse.Namespace) -> FleetOptions:
    """Parsed arguments -> FleetOptions."""
    replay_args = []
    if args.params_file:
        replay_args += ["--params-file", str(args.params_file)]
    if args.segments is not None:
        replay_args += ["--segments", str(args.segments)]
    if args.no_report:
        replay_args.append("--no-report")
    providers = args.providers or (["cuda", "cpu"] if args.gpus_per_worker > 0 else ["cpu"])
    replay_args += ["--providers", *providers]
    return FleetOptions(
        out=args.out,
        index=args.index or args.out / "index",
        manifest=(args.model or Path(bundled_manifest_path())).resolve(),
        replay_args=tuple(replay_args),
        providers=tuple(providers),
        threads_per_worker=args.cpus_per_worker,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Console script `fleet_replay`: 0 when every bag is done, 1 when some failed, 2 on usage errors, 3 when
    none failed but some were partial (input incomplete)."""
    args = build_parser().parse_args(argv)
    bags = list(args.bags) + (read_bag_list(args.bags_from) if args.bags_from else [])
    if not bags:
        print("fleet_replay: no bags given (BAGS... or --bags-from LIST)", file=sys.stderr)
        return 2
    bags = [str(Path(b).resolve()) for b in bags]
    try:
        summary = run_fleet(
            bags,
            options_from_args(args),
            args.workers,
            args.gpus_per_worker,
            args.address,
            progress=not args.no_progress,
        )
    except (ValueError, FileNotFoundError) as error:
        print(f"fleet_replay: {error}", file=sys.stderr)
        return 2
    print(
        f"fleet_replay: {summary['bags']} bags ({summary['bags_replayed']} replayed, {summary['bags_skipped']} "
        f"skipped, {summary['bags_partial']} partial, {summary['bags_failed']} failed), {summary['clips']} clips, "
        f"{summary['wall_s']} s wall"
    )
    for failure in summary["failures"]:
        print(f"fleet_replay: FAILED {failure['bag']}: {failure['reason']}")
    for partial in summary["partial"]:
        print(f"fleet_replay: PARTIAL {partial['bag']}: {partial['reason']}")
    print(f"fleet_replay: summary {args.out / SUMMARY_FILE}; index {summary['index']}")
    if summary["failures"]:
        return 1
    return replay.EXIT_INPUT_INCOMPLETE if summary["partial"] else 0


if __name__ == "__main__":
    sys.exit(main())
