"""A canary's automated rollout as edits of ``canary.analysis`` in the routing YAML.

The operator's edits (``gateway rollout start|pause|resume|abort``) and the analysis's
(a step up, a failed check counted, a rollback, the promotion; actor
:data:`ANALYST`) are all comment-preserving, validated, atomic edits with an audit
record, like ``set-weight``: the file is the run's only state, so any gateway that loads
it (a restarted one, every worker of a fleet) sees where the run is.

The analysis's edits are conditional: each names the step it judged, and is not written
(:class:`StaleRun`) when the file has moved on meanwhile (an operator paused or aborted
the run between the gateway's last reload and its decision).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.rollout import audit
from gateway.rollout.tree import RolloutError, apply, canary_of, promote_tree, tidy
from gateway.settings.analysis import RUNNING_STATES

ANALYST = "gateway-analysis"


class StaleRun(RolloutError):
    """The file's run is not at the step the analysis judged; nothing was written."""


def _analysis(tree: Any, model: str) -> Any:
    analysis = canary_of(tree, model).get("analysis")
    if analysis is None:
        raise RolloutError(
            f"model {model!r} has no canary.analysis; add one (steps, interval_seconds, "
            "checks: see docs/traffic.md) to run an automated rollout"
        )
    return analysis


def _run(analysis: Any) -> dict[str, Any]:
    return {
        "state": analysis.get("state", "idle"),
        "step": analysis.get("step"),
        "failed_checks": analysis.get("failed_checks", 0),
    }


def _state(analysis: Any, state: str, reason: str | None) -> None:
    analysis["state"] = state
    if reason is None:
        analysis.pop("reason", None)
    else:
        analysis["reason"] = reason


def _operator_edit(
    config: Path, model: str, log: Path, command: str, allowed: tuple[str, ...], change: Any
) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def edit(tree: Any) -> None:
        analysis = _analysis(tree, model)
        canary = canary_of(tree, model)
        state = analysis.get("state", "idle")
        if state not in allowed:
            raise RolloutError(_refusal(command, model, state, analysis.get("step")))
        seen["before"] = {"weight": canary.get("weight", 0), **_run(analysis)}
        change(canary, analysis)
        seen["after"] = {"weight": canary.get("weight", 0), **_run(analysis)}

    apply(config, edit)
    return audit.record(log, command, model, seen["before"], seen["after"])


def _refusal(command: str, model: str, state: str, step: object) -> str:
    if command == "start":
        return (
            f"a rollout of {model!r} is already in progress (state {state}, step {step}); "
            "pause, resume or abort it first"
        )
    if state in RUNNING_STATES:
        return f"the rollout of {model!r} is {state} already"
    return f"no rollout of {model!r} is in progress (state {state}); 'start' begins one"


def start(config: Path, model: str, log: Path) -> dict[str, Any]:
    """Begin a run: step 1, the canary at the first step's weight, no failed checks."""

    def change(canary: Any, analysis: Any) -> None:
        canary["weight"] = tidy(float(analysis["steps"][0]))
        _state(analysis, "progressing", None)
        analysis["step"] = 1
        analysis["failed_checks"] = 0

    return _operator_edit(config, model, log, "start", ("idle", "promoted", "rolled_back"), change)


def pause(config: Path, model: str, log: Path) -> dict[str, Any]:
    """Hold the run at its step and weight until ``resume``."""
    reason = f"paused by {audit.who()}"
    return _operator_edit(
        config, model, log, "pause", ("progressing",), lambda _c, a: _state(a, "paused", reason)
    )


def resume(config: Path, model: str, log: Path) -> dict[str, Any]:
    """Go on from the step the run was paused at (its weight as the file has it now)."""
    return _operator_edit(
        config, model, log, "resume", ("paused",), lambda _c, a: _state(a, "progressing", None)
    )


def abort(config: Path, model: str, log: Path) -> dict[str, Any]:
    """End the run: the canary at weight 0, state ``rolled_back``."""
    reason = f"aborted by {audit.who()}"

    def change(canary: Any, analysis: Any) -> None:
        canary["weight"] = 0
        _state(analysis, "rolled_back", reason)

    return _operator_edit(config, model, log, "abort", RUNNING_STATES, change)


def interrupt(tree: Any, model: str, command: str, detail: str) -> str | None:
    """What a manual ``command`` does to a run in progress, applied to ``tree``.

    ``set-weight`` pauses a progressing run (the operator's weight holds until ``resume``
    or ``abort``); ``rollback`` and ``promote`` end it. Returns the sentence to tell the
    operator, or None when no run is in progress.
    """
    analysis = canary_of(tree, model).get("analysis")
    state = analysis.get("state", "idle") if analysis is not None else "idle"
    if state not in RUNNING_STATES:
        return None
    by = audit.who()
    if command == "set-weight":
        _state(analysis, "paused", f"paused by a manual set-weight ({detail}) by {by}")
        return (
            f"the automated rollout was {state}; it is paused now at step "
            f"{analysis.get('step')} ('gateway rollout resume' goes on, 'abort' ends it)"
        )
    final = "rolled_back" if command == "rollback" else "promoted"
    _state(analysis, final, f"ended by a manual {command} by {by}")
    return f"the automated rollout was {state}; the manual {command} ended it ({final})"


# The analysis's edits, made by the gateway.


def _analyst_edit(
    config: Path,
    model: str,
    log: Path,
    command: str,
    step: int,
    change: Any,
    extra: dict[str, Any],
) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def edit(tree: Any) -> None:
        analysis = _analysis(tree, model)
        if analysis.get("state") != "progressing" or analysis.get("step") != step:
            raise StaleRun(
                f"the run of {model!r} is {analysis.get('state')} at step "
                f"{analysis.get('step')} now, not progressing at step {step}"
            )
        canary = canary_of(tree, model)
        seen["before"] = {"weight": canary.get("weight", 0), **_run(analysis)}
        promoted = change(tree, canary, analysis)
        seen["after"] = {"weight": canary.get("weight", 0), **_run(analysis)}
        if promoted is not None:
            seen["before"].update(promoted[0])
            seen["after"].update(promoted[1])

    apply(config, edit)
    return audit.record(log, command, model, seen["before"], seen["after"], actor=ANALYST,
                        extra=extra)  # fmt: skip


def advance(
    config: Path, model: str, log: Path, step: int, checks: list[dict[str, object]]
) -> dict[str, Any]:
    """Step ``step`` passed: the next step, at its weight."""

    def change(_tree: Any, canary: Any, analysis: Any) -> None:
        canary["weight"] = tidy(float(analysis["steps"][step]))
        analysis["step"] = step + 1

    extra = {"checks": checks, "reason": f"step {step} passed its checks"}
    return _analyst_edit(config, model, log, "analysis-step", step, change, extra)


def promote(
    config: Path, model: str, log: Path, step: int, checks: list[dict[str, object]]
) -> dict[str, Any]:
    """The last step passed: the canary becomes the primary (as ``gateway rollout promote``)."""
    reason = f"promoted: all {step} steps passed"

    def change(tree: Any, _canary: Any, analysis: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        names = promote_tree(tree, model)
        _state(analysis, "promoted", reason)
        return names

    extra = {"checks": checks, "reason": reason}
    return _analyst_edit(config, model, log, "analysis-promote", step, change, extra)


def count_failures(
    config: Path,
    model: str,
    log: Path,
    step: int,
    failed_checks: int,
    checks: list[dict[str, object]],
    reason: str,
) -> dict[str, Any]:
    """Checks failed at ``step``, fewer in total than the run allows: counted, step held."""

    def change(_tree: Any, _canary: Any, analysis: Any) -> None:
        analysis["failed_checks"] = failed_checks

    extra = {"checks": checks, "reason": reason}
    return _analyst_edit(config, model, log, "analysis-failed-checks", step, change, extra)


def roll_back(
    config: Path,
    model: str,
    log: Path,
    step: int,
    failed_checks: int,
    checks: list[dict[str, object]],
    reason: str,
) -> dict[str, Any]:
    """Too many failed checks: weight 0, state ``rolled_back`` with the reason."""

    def change(_tree: Any, canary: Any, analysis: Any) -> None:
        canary["weight"] = 0
        analysis["failed_checks"] = failed_checks
        _state(analysis, "rolled_back", reason)

    extra = {"checks": checks, "reason": reason}
    return _analyst_edit(config, model, log, "analysis-rollback", step, change, extra)
