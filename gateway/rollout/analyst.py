"""The rollout analysis, run in the gateway: judge each step, then step up, hold, roll back
or promote, by editing the routing YAML like an operator would.

For every model whose canary has ``canary.analysis`` in state ``progressing``, each
:meth:`Analyst.tick` (a few times a second) asks whether the step's interval is over.
An interval starts when the gateway first runs a given state of the run (state, step,
failed checks, canary and weight, as the reloaded file says): after a start, a step, a
resume, a restart of the gateway. When ``interval_seconds`` have passed:

- fewer than ``min_requests`` canary-cohort requests so far: the step waits (the
  interval goes on until it has them; status says so);
- else every check is judged on the interval's figures
  (:mod:`gateway.quality.canary_checks`, :mod:`gateway.rollout.prometheus`), and:

  ============================== ==========================================================
  every check passed             the next step (``analysis-step``), or at the last step the
                                 promotion (``analysis-promote``, as ``gateway rollout
                                 promote`` does)
  some failed, fewer in total    the failures are counted (``analysis-failed-checks``) and
  than ``max_failed_checks``     the step is judged again over a new interval
  the total reaches it           weight 0, state ``rolled_back``, the reason
                                 (``analysis-rollback``)
  ============================== ==========================================================

Each decision is one edit of :mod:`gateway.rollout.runs` (atomic, comment-preserving,
audited with actor ``gateway-analysis`` and the check values), written only if the file's
run is still at the judged step, followed at once by a reload so the new weight serves.
With ``gateway serve --workers N`` only worker 0 runs an analyst: one writer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from gateway.quality.canary_checks import CheckResult, evaluate
from gateway.rollout import audit, runs
from gateway.rollout.tree import RolloutError
from gateway.service.runtime import Runtime
from gateway.settings.analysis import AnalysisSettings, CheckSettings

log = logging.getLogger("gateway.rollout")

# A prometheus check's evaluation (gateway.rollout.prometheus.evaluate over a session).
PrometheusCheck = Callable[[CheckSettings], Awaitable[CheckResult]]
TICK_SECONDS = 0.25


@dataclass
class _Interval:
    key: tuple[object, ...]
    started: float


class Analyst:
    """Walks the running config's canaries through their steps; see the module docstring.

    ``current`` gives the running runtime, ``reload`` loads the edited file into it,
    ``clock`` is monotonic seconds; ``audit_log`` defaults to the one the rollout commands
    use (``<config>.audit.jsonl``).
    """

    def __init__(
        self,
        current: Callable[[], Runtime],
        reload: Callable[[], Awaitable[object]],
        prometheus: PrometheusCheck,
        clock: Callable[[], float],
        audit_log: Path | None = None,
    ) -> None:
        self.current = current
        self.reload = reload
        self.prometheus = prometheus
        self.clock = clock
        self.audit_log = audit_log
        self._intervals: dict[str, _Interval] = {}

    async def run_forever(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # a bug here must not end every model's rollout for good
                log.exception("rollout analysis failed; trying again")
            await sleep(TICK_SECONDS)

    async def tick(self) -> None:
        """Judge every model whose interval is over (see the module docstring)."""
        runtime = self.current()
        for name, model in runtime.models.items():
            canary = runtime.config.settings.models[name].canary
            analysis = canary.analysis if canary is not None else None
            cohorts = model.cohorts
            if canary is None or analysis is None or cohorts is None:
                self._intervals.pop(name, None)
                continue
            now = self.clock()
            key = (analysis.state, analysis.step, analysis.failed_checks, canary.name,
                   canary.url, canary.weight)  # fmt: skip
            interval = self._intervals.get(name)
            if interval is None or interval.key != key:
                cohorts.reset()
                self._intervals[name] = _Interval(key, now)
                continue
            if (
                analysis.state != "progressing"
                or now - interval.started < analysis.interval_seconds
            ):
                continue
            seen = cohorts.canary.requests
            if seen < analysis.min_requests:
                cohorts.waiting = (
                    f"{seen} of {analysis.min_requests} canary requests in "
                    f"{now - interval.started:.0f} s; the step waits for min_requests"
                )
                continue
            cohorts.waiting = None
            canary_figures, primary_figures = cohorts.take()
            training = model.card.score.distribution
            results = [
                await self.prometheus(check)
                if check.name == "prometheus"
                else evaluate(check, canary_figures, primary_figures, training)
                for check in analysis.checks
            ]
            cohorts.last_checks = [r.as_dict() for r in results]
            interval.started = now
            await self._decide(runtime, name, analysis, results)

    async def _decide(
        self, runtime: Runtime, model: str, analysis: AnalysisSettings, results: list[CheckResult]
    ) -> None:
        assert analysis.step is not None
        config = runtime.config.source
        audit_log = self.audit_log or audit.default_log_path(config)
        step, checks = analysis.step, [r.as_dict() for r in results]
        failed = [r for r in results if not r.ok]
        write: partial[dict[str, Any]]
        if failed:
            total = analysis.failed_checks + len(failed)
            reason = (
                f"step {step} ({analysis.steps[step - 1]:g}%): "
                + "; ".join(r.describe() for r in failed)
                + f" (failed checks {total} of {analysis.max_failed_checks})"
            )
            edit = runs.roll_back if total >= analysis.max_failed_checks else runs.count_failures
            write = partial(edit, config, model, audit_log, step, total, checks, reason)
        elif step == len(analysis.steps):
            write = partial(runs.promote, config, model, audit_log, step, checks)
        else:
            write = partial(runs.advance, config, model, audit_log, step, checks)
        try:
            entry = await asyncio.to_thread(write)
        except runs.StaleRun as exc:
            log.info("rollout of %r: decision not written, %s", model, exc)
            return
        except RolloutError as exc:
            log.error("rollout of %r: cannot write the decision: %s", model, exc)
            return
        log.warning("rollout of %r: %s %s -> %s (%s)", model, entry["command"], entry["before"],
                    entry["after"], entry.get("reason"))  # fmt: skip
        await self.reload()
