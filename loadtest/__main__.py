"""``python -m loadtest bench``, ``soak`` and ``run SCENARIO``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from loadtest import bench, runner, soak


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest", description="Load tests and benchmarks of the gateway."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    bench_parser = commands.add_parser(
        "bench",
        help="the gateway against its baselines, as ratios",
        description=bench.__doc__,
        epilog=bench.EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_arguments(bench_parser)
    soak_parser = commands.add_parser(
        "soak",
        help="the gateway's RSS over a long steady open-loop run",
        description=soak.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bench.add_soak_arguments(soak_parser)
    run_parser = commands.add_parser(
        "run", help="run a scenario: load phases, faults, expectations", description=runner.__doc__
    )
    run_parser.add_argument(
        "scenario", type=Path, help="a YAML file, e.g. loadtest/scenarios/steady.yaml"
    )
    run_parser.add_argument(
        "--out", type=Path, help="report folder (default: loadtest/results/NAME)"
    )
    run_parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply every duration (0.5: a half-length smoke run)",
    )
    args = parser.parse_args()
    if args.command == "bench":
        return bench.main(args)
    if args.command == "soak":
        return bench.soak_main(args)
    return runner.main(args.scenario, args.out, args.scale)


if __name__ == "__main__":
    sys.exit(main())
