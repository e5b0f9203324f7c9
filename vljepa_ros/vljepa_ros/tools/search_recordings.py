"""search_recordings: find the moments of replayed recordings that match a text, or look like a given moment.

The text goes through the model's Y-encoder (or its caption bank when the manifest ships no text encoder; see
vljepa_ros.index.query_encoding). Results are moments: runs of consecutive clips of one camera that show one
state (vljepa_ros.index.moments), ranked by the cosine similarity of their mean predicted embedding; --clips
ranks single clips instead. Each result gives the bag, camera, time (a moment's span and its middle clip),
score, the segment's caption and the `live_replay` command that plays the bag from there; --html writes a page
with the thumbnails.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from vljepa_ros.index.moment_search import MomentSearcher
from vljepa_ros.index.moments import MOMENT_DISTANCE
from vljepa_ros.index.query_encoding import QueryEncoder
from vljepa_ros.index.recording_index import RecordingIndex
from vljepa_ros.index.results_page import write_results_page
from vljepa_ros.index.search import ClipSearcher, Filters, Hit, thumbnails_of
from vljepa_ros.runtime.bundled_model import bundled_manifest_path


def parse_time_ns(text: str) -> int:
    """A time given as Unix seconds ("1767225600.5") or ISO 8601 (UTC when no zone is given) -> ns."""
    try:
        return int(round(float(text) * 1e9))
    except ValueError:
        pass
    # Python 3.10's fromisoformat does not read the "Z" suffix that 3.11 accepts.
    moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(round(moment.timestamp() * 1e9))


def parse_example(text: str) -> tuple[str, float]:
    """BAG@SECONDS -> (bag name or path, seconds after the bag's first camera frame)."""
    bag, sep, seconds = text.rpartition("@")
    if not sep or not bag:
        raise ValueError(f"--like wants BAG@SECONDS, got {text!r}")
    return bag, float(seconds)


def build_parser() -> argparse.ArgumentParser:
    """Command-line interface of `search_recordings`."""
    parser = argparse.ArgumentParser(prog="search_recordings", description="Search replayed recordings by meaning.")
    parser.add_argument("index", type=Path, help="recording index folder (fleet_replay's OUT/index)")
    parser.add_argument("text", nargs="?", help='what to look for, e.g. "a person opens the door"')
    parser.add_argument("--like", help="search by example: BAG@SECONDS (a bag name or path in the index)")
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--camera", help="only this camera")
    parser.add_argument("--after", help="only clips stamped at or after this (Unix seconds or ISO 8601)")
    parser.add_argument("--before", help="only clips stamped at or before this (Unix seconds or ISO 8601)")
    parser.add_argument("--model", type=Path, help="model manifest for the text (default: the bundled model)")
    parser.add_argument(
        "--model-version", help="--like: the example's model version, when its bag was replayed under several"
    )
    parser.add_argument("--clips", action="store_true", help="rank single clips instead of moments")
    parser.add_argument(
        "--moment-distance",
        type=float,
        default=MOMENT_DISTANCE,
        help=f"Ward distance that ends a moment; smaller splits finer (default {MOMENT_DISTANCE})",
    )
    parser.add_argument("--ann", action="store_true", help="approximate search (FAISS IVF) instead of exact")
    parser.add_argument("--html", type=Path, help="write a results page with thumbnails here")
    return parser


def hit_time(hit: Hit) -> str:
    """A hit's time for the listing: a moment's span and middle clip, or a clip's time."""
    time_s = "?" if hit.t_s is None else f"{hit.t_s:.2f} s"
    if hit.start_t_s is None or hit.end_t_s is None:
        return time_s
    return f"{hit.start_t_s:.2f}-{hit.end_t_s:.2f} s (middle {time_s}, {hit.clips} clips)"


def main(argv: Sequence[str] | None = None) -> int:
    """Console script `search_recordings`."""
    args = build_parser().parse_args(argv)
    if (args.text is None) == (args.like is None):
        print("search_recordings: give a TEXT or --like BAG@SECONDS (one of them)", file=sys.stderr)
        return 2
    index = RecordingIndex(args.index)
    searcher = ClipSearcher.load(index)
    if not len(searcher):
        print(f"search_recordings: the index at {args.index} is empty", file=sys.stderr)
        return 2
    try:
        filters = Filters(
            camera=args.camera,
            after_ns=parse_time_ns(args.after) if args.after else None,
            before_ns=parse_time_ns(args.before) if args.before else None,
        )
        if args.like:
            bag, seconds = parse_example(args.like)
            query, version = searcher.example(bag, seconds, args.camera, args.model_version)
            source, label = f"example, model version {version}", args.like
            # Only rows of the example's model are comparable with it.
            filters = Filters(filters.camera, filters.after_ns, filters.before_ns, version)
        else:
            encoder = QueryEncoder.from_manifest(args.model or bundled_manifest_path())
            encoded = encoder.encode(args.text)
            query, source, label = encoded.vector, encoded.source, args.text
            filters = Filters(filters.camera, filters.after_ns, filters.before_ns, encoder.model_version)
    except (ValueError, KeyError) as error:
        print(f"search_recordings: {error}", file=sys.stderr)
        return 2
    ranker = searcher if args.clips else MomentSearcher(searcher, args.moment_distance)
    if args.ann:
        ranker.build_ann()
    hits = ranker.search(query, args.top_k, filters, use_ann=args.ann)
    counted = "" if args.clips else f" in {len(ranker)} moments"
    print(f"search_recordings: {label!r} ({source}), {len(searcher)} clips{counted} in the index")
    for rank, hit in enumerate(hits, 1):
        print(f"{rank:3d}. {hit.score:.3f}  {hit.bag}  {hit.camera}  {hit_time(hit)}  {hit.caption!r}")
        print(f"     {hit.replay_command}")
    if args.html:
        page = write_results_page(args.html, label, hits, thumbnails_of(index, hits))
        print(f"search_recordings: page {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
