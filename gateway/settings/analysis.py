"""``canary.analysis``: how the gateway walks a canary through its steps, and where it is.

The first keys say how a run goes; the last four are the run itself, written by
``gateway rollout start|pause|resume|abort`` and by the gateway (``gateway/rollout/``), so
the file is always the truth and a restarted gateway resumes where it was::

    analysis:
      steps: [5, 25, 50, 100]      # canary weight of each step, strictly increasing
      interval_seconds: 60         # each step is judged over (at least) one interval
      min_requests: 200            # canary-cohort requests an interval needs to be judged
      max_failed_checks: 2         # failed checks (in total over the run) that roll back
      checks:
        - {name: error_rate, max: 0.01}
        - {name: latency_p99_ms, max: 50, relative_to: primary}   # canary - primary
        - {name: score_psi, max: 0.2}
        - {name: prometheus, query: 'sum(rate(x[1m]))', max: 5, url: http://127.0.0.1:9090}
      state: progressing           # idle | progressing | paused | promoted | rolled_back
      step: 2                      # 1-based index into steps (here 25 %)
      failed_checks: 1
      reason: null                 # why the run stopped or paused

A check of the built-in kinds (:data:`BUILTIN_CHECKS`) has a ``max`` (>= 0; rates <= 1)
on the canary cohort's figure, or with ``relative_to: primary`` on the canary's figure
minus the primary's. ``score_psi`` compares the canary's scores with the primary's already
and takes no ``relative_to``. A ``prometheus`` check has a ``query``, a ``url`` and
exactly one of ``min`` and ``max``.
"""

from __future__ import annotations

import itertools
import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

RolloutState = Literal["idle", "progressing", "paused", "promoted", "rolled_back"]
# A run in progress (``start`` is refused, the gateway walks it or waits for ``resume``).
RUNNING_STATES: tuple[RolloutState, ...] = ("progressing", "paused")

BUILTIN_CHECKS = (
    "error_rate",
    "latency_p99_ms",
    "fallback_rate",
    "output_violation_rate",
    "score_psi",
)
RATE_CHECKS = frozenset({"error_rate", "fallback_rate", "output_violation_rate"})
CHECK_NAMES = (*BUILTIN_CHECKS, "prometheus")


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CheckSettings(_Section):
    """One check; which keys it takes depends on its ``name`` (see the module docstring)."""

    name: str
    max: float | None = None
    min: float | None = None
    relative_to: Literal["primary"] | None = None
    # prometheus only
    query: str | None = None
    url: str | None = None
    timeout_seconds: float = Field(default=2.0, gt=0, le=60)

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in CHECK_NAMES:
            raise ValueError(f"unknown check {value!r}; known: {', '.join(CHECK_NAMES)}")
        return value

    @field_validator("max", "min")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from gateway.settings.schema import http_base_url  # schema imports this module

        return http_base_url(value)

    @model_validator(mode="after")
    def _shape(self) -> CheckSettings:
        if self.name == "prometheus":
            if self.query is None or not self.query.strip():
                raise ValueError("a prometheus check needs a query")
            if self.url is None:
                raise ValueError("a prometheus check needs the url of the Prometheus server")
            if (self.min is None) == (self.max is None):
                raise ValueError("a prometheus check needs exactly one of min and max")
            if self.relative_to is not None:
                raise ValueError("relative_to is for built-in checks, not prometheus")
            return self
        extra = [k for k in ("min", "query", "url") if getattr(self, k) is not None]
        if extra:
            raise ValueError(f"{self.name} takes max (and relative_to), not {', '.join(extra)}")
        if "timeout_seconds" in self.model_fields_set:
            raise ValueError(f"{self.name} takes no timeout_seconds (prometheus only)")
        if self.max is None:
            raise ValueError(f"{self.name} needs a max")
        if self.max < 0:
            raise ValueError(f"max of {self.name} must be >= 0 (a bound of the wrong sign)")
        if self.name in RATE_CHECKS and self.relative_to is None and self.max > 1:
            raise ValueError(f"max of {self.name} is a share: at most 1")
        if self.name == "score_psi" and self.relative_to is not None:
            raise ValueError("score_psi already compares the canary with the primary")
        return self

    @property
    def bound(self) -> dict[str, object]:
        """How status shows the bound: ``{"max": 0.01}``, with ``relative_to`` when set."""
        out: dict[str, object] = {}
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        if self.relative_to is not None:
            out["relative_to"] = self.relative_to
        return out


class AnalysisSettings(_Section):
    """A canary's automated rollout; see the module docstring."""

    steps: tuple[float, ...] = Field(min_length=1)
    interval_seconds: float = Field(gt=0, le=86_400)
    min_requests: int = Field(default=100, ge=0)
    max_failed_checks: int = Field(default=2, ge=1)
    checks: tuple[CheckSettings, ...] = ()
    state: RolloutState = "idle"
    step: int | None = Field(default=None, ge=1)
    failed_checks: int = Field(default=0, ge=0)
    reason: str | None = None

    @field_validator("steps")
    @classmethod
    def _increasing(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        for weight in value:
            if not 0 < weight <= 100:
                raise ValueError(f"step {weight:g} is outside (0, 100]: steps are canary weights")
        for before, after in itertools.pairwise(value):
            if after <= before:
                raise ValueError(f"steps must increase strictly: {after:g} follows {before:g}")
        return value

    @model_validator(mode="after")
    def _run(self) -> AnalysisSettings:
        if self.step is not None and self.step > len(self.steps):
            raise ValueError(f"step {self.step} is past the last of {len(self.steps)} steps")
        if self.state in RUNNING_STATES and self.step is None:
            raise ValueError(f"state {self.state} needs a step")
        return self
