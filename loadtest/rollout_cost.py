"""What the rollout analysis costs a request on the hot path.

    python -m loadtest.rollout_cost [--requests 200000] [--max-us 2]

A request of a model whose canary has ``canary.analysis`` does, besides its usual work,
what the ladder and the pipeline add (``gateway/service/ladder.py``,
``gateway/service/pipeline.py``): pick its cohort, count it, and record its latency and
score in the cohort's bounded samples (:mod:`gateway.quality.cohorts`). This times
exactly those calls, per request, against the same loop doing only the ``None`` check a
model without analysis pays; half the requests are the canary's. Rounds interleave and
the median is reported. Prints JSON; exits 1 above ``--max-us``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from gateway.quality.cohorts import CanaryCohorts, Cohort


def _with_analysis(cohorts: CanaryCohorts | None, n: int) -> float:
    variants = ("primary", "canary")
    scores = [0.01]
    started = time.perf_counter()
    for i in range(n):
        variant = variants[i & 1]
        cohort: Cohort | None = cohorts.of(variant) if cohorts is not None else None
        if cohort is not None:
            cohort.requests += 1
        if cohorts is not None:
            cohorts.of(variant).answered(0.004, scores)
    return time.perf_counter() - started


def measure(requests: int, rounds: int = 7) -> dict[str, float]:
    on, off = [], []
    for _ in range(rounds):
        off.append(_with_analysis(None, requests) / requests)
        on.append(_with_analysis(CanaryCohorts(), requests) / requests)
    added = [a - b for a, b in zip(on, off, strict=True)]
    return {
        "requests_per_round": requests,
        "rounds": rounds,
        "without_analysis_us": round(statistics.median(off) * 1e6, 3),
        "with_analysis_us": round(statistics.median(on) * 1e6, 3),
        "added_us_per_request": round(statistics.median(added) * 1e6, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--max-us", type=float, default=2.0)
    args = parser.parse_args(argv)
    figures = measure(args.requests)
    print(json.dumps(figures, indent=2))
    return 1 if figures["added_us_per_request"] > args.max_us else 0


if __name__ == "__main__":
    sys.exit(main())
