"""`generate_world`: write a tiny-world stream as a ROS 2 bag with ground truth, or list the vocabulary.

generate_world --out /tmp/world_bag --seed 3 --duration 90 --fps 10 --storage mcap
generate_world --list captions
"""

from __future__ import annotations

import argparse
import sys

from vljepa_ros.bags.bag_io import BagError
from vljepa_ros.tiny_world.bag_writer import write_stream_bag
from vljepa_ros.tiny_world.stream import StreamConfig, generate_stream
from vljepa_ros.tiny_world.vocabulary import action_bank, caption_bank


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of generate_world."""
    parser = argparse.ArgumentParser(prog="generate_world", description=__doc__.split("\n")[0])
    parser.add_argument("--out", help="output bag folder (must not exist)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--duration", type=float, default=90.0, help="seconds")
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap")
    parser.add_argument("--list", choices=("captions", "actions"), help="print the closed vocabulary and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `generate_world` console script."""
    args = build_parser().parse_args(argv)
    if args.list:
        print("\n".join(caption_bank() if args.list == "captions" else action_bank()))
        return 0
    if not args.out:
        print("generate_world: --out is required (or --list)", file=sys.stderr)
        return 2
    try:
        config = StreamConfig(
            seed=args.seed, duration_s=args.duration, fps=args.fps, width=args.width, height=args.height
        )
        truth = write_stream_bag(generate_stream(config), args.out, storage=args.storage)
    except (ValueError, BagError) as error:
        print(f"generate_world: {error}", file=sys.stderr)
        return 2
    print(
        f"wrote {args.out}: {truth['frame_count']} frames {args.width}x{args.height} at {args.fps} Hz on "
        f"{truth['image_topic']}, {len(truth['events'])} events, {len(truth['segments'])} caption segments"
    )
    for segment in truth["segments"]:
        print(f"  {segment['start_s']:7.2f} - {segment['end_s']:7.2f} s  {segment['caption']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
