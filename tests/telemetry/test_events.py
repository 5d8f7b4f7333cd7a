"""The bounded event log behind ``/admin/status`` ``events``."""

from __future__ import annotations

import itertools

import pytest

from gateway.telemetry.events import EventLog


def test_keeps_the_newest_events_last_and_forgets_the_oldest() -> None:
    ticks = itertools.count(1000)
    log = EventLog(capacity=3, clock=lambda: float(next(ticks)))
    for number in range(5):
        log.record("breaker", "fraud", f"move {number}")
    assert len(log) == 3
    assert log.as_list() == [
        {"at": 1002.0, "kind": "breaker", "model": "fraud", "detail": "move 2"},
        {"at": 1003.0, "kind": "breaker", "model": "fraud", "detail": "move 3"},
        {"at": 1004.0, "kind": "breaker", "model": "fraud", "detail": "move 4"},
    ]


def test_gateway_wide_events_name_no_model() -> None:
    log = EventLog(clock=lambda: 1.0)
    log.record("reload", None, "applied (admin)")
    assert log.as_list() == [
        {"at": 1.0, "kind": "reload", "model": None, "detail": "applied (admin)"}
    ]


def test_a_log_keeps_at_least_one_event() -> None:
    with pytest.raises(ValueError, match="capacity"):
        EventLog(capacity=0)
