"""Sticky canary assignment: share, stickiness, monotonicity."""

from __future__ import annotations

import math

from gateway.routing.sticky import CanarySplit, position

KEYS = [f"c-{i:05d}" for i in range(20_000)]


def canary_share(split: CanarySplit) -> float:
    return sum(split.choose(k) == "canary" for k in KEYS) / len(KEYS)


def test_observed_share_is_within_statistical_bounds_of_the_weight() -> None:
    for weight in (0.5, 5.0, 10.0, 50.0, 90.0):
        p = weight / 100
        bound = 4 * math.sqrt(p * (1 - p) / len(KEYS))  # four standard deviations
        assert abs(canary_share(CanarySplit("fraud", weight)) - p) < bound, weight


def test_the_same_key_always_lands_on_the_same_variant() -> None:
    first = [CanarySplit("fraud", 20.0).choose(k) for k in KEYS[:2000]]
    again = [CanarySplit("fraud", 20.0).choose(k) for k in KEYS[:2000]]
    assert first == again


def test_positions_are_stable_across_processes() -> None:
    # Fixed values: a change here would reshuffle every cohort in production.
    assert round(position("fraud", "c-0042"), 9) == 19.365309133
    assert round(position("fraud", "c-9999"), 9) == 79.299286353
    assert position("fraud", "c-0042") != position("other-model", "c-0042")


def test_raising_the_weight_never_moves_a_key_back_to_primary() -> None:
    previous = {k: "primary" for k in KEYS}
    for weight in (1.0, 2.5, 10.0, 30.0, 30.5, 75.0, 100.0):
        split = CanarySplit("fraud", weight)
        current = {k: split.choose(k) for k in KEYS}
        assert all(current[k] == "canary" for k, v in previous.items() if v == "canary")
        previous = current
    assert set(previous.values()) == {"canary"}


def test_requests_without_a_key_split_at_random_by_weight() -> None:
    draws = iter([0.05, 0.15, 0.99])
    split = CanarySplit("fraud", 10.0, random=lambda: next(draws))
    assert [split.choose(None) for _ in range(3)] == ["canary", "primary", "primary"]


def test_zero_and_full_weights_need_no_hashing() -> None:
    assert CanarySplit("fraud", 0.0).choose("c-1") == "primary"
    assert CanarySplit("fraud", 100.0).choose("c-1") == "canary"
