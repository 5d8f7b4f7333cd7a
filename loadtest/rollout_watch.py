"""The end of a scenario's automated rollout: its state, its audit records, its timing.

Read once the load is over: ``/admin/status`` (``models.<model>.rollout``) and the audit
log beside the stack's config (``<config>.audit.jsonl``). The figures:

- ``first_failing_check_to_weight_0_seconds``: from the audit record of the first
  interval with a failed check to the ``analysis-rollback`` record (weight 0 written; the
  gateway applies it at once with a reload), for a rolled-back run;
- ``records``: the audit records (command, who, after, the checks that failed);
- ``canary_requests_served``: filled in by the runner from the client's records.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from loadtest.scenario import RolloutOutcome


def outcome(
    gateway_url: str, token: str, config: Path | None, expect: RolloutOutcome
) -> dict[str, Any]:
    answer = httpx.get(f"{gateway_url}/admin/status", headers={"authorization": f"Bearer {token}"},
                       timeout=5, trust_env=False)  # fmt: skip
    rollout = answer.json()["models"][expect.model]["rollout"] or {}
    log = config.with_name(f"{config.name}.audit.jsonl") if config is not None else None
    records = (
        [orjson.loads(x) for x in log.read_bytes().splitlines()] if log and log.exists() else []
    )
    failing = [r for r in records if any(not c.get("ok") for c in r.get("checks", ()))]
    rollback = next((r for r in records if r["command"] == "analysis-rollback"), None)
    to_zero = None
    if failing and rollback is not None:
        to_zero = round(_at(rollback) - _at(failing[0]), 3)
    return {
        "state": rollout.get("state"),
        "step": rollout.get("step"),
        "weight": rollout.get("weight"),
        "reason": rollout.get("reason"),
        "interval_seconds": rollout.get("interval_seconds"),
        "last_checks": rollout.get("last_checks"),
        "first_failing_check_to_weight_0_seconds": to_zero,
        "steps": len(rollout.get("steps") or ()),
        "records": [
            {"at": r["at"], "command": r["command"], "who": r["who"], "after": r["after"],
             "failed": [c["name"] for c in r.get("checks", ()) if not c.get("ok")]}
            for r in records
        ],
    }  # fmt: skip


def _at(record: dict[str, Any]) -> float:
    return datetime.datetime.fromisoformat(record["at"]).timestamp()


def verdicts(found: dict[str, Any], expect: RolloutOutcome) -> list[tuple[bool, str]]:
    out = [(found["state"] == expect.state,
            f"rollout of {expect.model} ends {found['state']} (expected {expect.state}): {found['reason']}")]  # fmt: skip
    commands = [r["command"] for r in found["records"]]
    if expect.state == "rolled_back":
        took, interval = found["first_failing_check_to_weight_0_seconds"], found["interval_seconds"]
        bound = expect.within_intervals * (interval or 0)
        out.append((took is not None and took <= bound,
                    f"weight 0 {took} s after the first failing check (bound {bound:g} s: "
                    f"{expect.within_intervals:g} intervals); the canary served "
                    f"{found.get('canary_requests_served')} requests"))  # fmt: skip
    else:
        # One record per step (start sets the first, analysis-step each next), then the promotion.
        steps = commands.count("start") + commands.count("analysis-step")
        ok = steps == found["steps"] and commands.count("analysis-promote") == 1
        ok = ok and "analysis-rollback" not in commands
        out.append((ok, f"{steps} step records for {found['steps']} steps, then the promotion: {commands}"))  # fmt: skip
    return out
