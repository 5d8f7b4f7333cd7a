"""``python -m loadtest bench`` (and, as they land, ``run SCENARIO``)."""

from __future__ import annotations

import argparse
import sys

from loadtest import bench


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest", description="Load tests and benchmarks of the gateway."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    bench_parser = commands.add_parser(
        "bench", help="the gateway against its baselines, as ratios", description=bench.__doc__
    )
    bench.add_arguments(bench_parser)
    args = parser.parse_args()
    if args.command == "bench":
        return bench.main(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
