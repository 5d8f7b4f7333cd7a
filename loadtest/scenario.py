"""Scenario files: a stack of real processes, load phases, timed faults, expectations.

See ``loadtest/scenarios/*.yaml`` and docs/loadtest.md for the format. Parsed into
frozen objects; unknown keys are refused with their key path, like the gateway's config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelServerSpec(_Strict):
    model: str  # folder under models/
    fault_mode: str = "normal"
    fault_delay_ms: float = 0.0
    fault_rate: float = 1.0


class StackSpec(_Strict):
    feast: bool = False
    model_servers: dict[str, ModelServerSpec] = Field(default_factory=dict)
    # The gateway's YAML; {url:NAME} (a model server), {feast_url} and {models} are filled in.
    gateway: str


class Phase(_Strict):
    name: str
    seconds: float = Field(gt=0)
    rate: float = Field(gt=0)


class LoadSpec(_Strict):
    api: Literal["v1", "v2"] = "v1"
    # v1 only: send the store's features in the body too (for stacks without Feast).
    with_features: bool = False
    # Held-out rows cycled through; fewer rows means customers repeat (warm caches).
    rows: int = Field(default=2000, ge=1, le=5000)
    phases: tuple[Phase, ...] = Field(min_length=1)


Action = Literal["kill", "stop", "cont", "restart", "fault", "set-weight"]


class Fault(_Strict):
    at: float = Field(ge=0)
    action: Action
    target: str | None = None  # a model server, or "feast"
    mode: str | None = None  # for action: fault
    delay_ms: float = 0.0
    rate: float = 1.0
    model: str | None = None  # for set-weight
    percent: float | None = None


class Share(_Strict):
    """At least ``min`` (or at most ``max``) of a phase's answers have ``field == value``."""

    phase: str
    field: Literal["variant", "served_by", "feature_source"]
    value: str
    min: float | None = None
    max: float | None = None
    skip_seconds: float = 0.0  # ignore the phase's first seconds (the transition)


class Recovery(_Strict):
    """After ``after`` s, answers with ``field == value`` are back within ``within_seconds``."""

    field: Literal["variant", "served_by", "feature_source"]
    value: str
    after: float
    within_seconds: float


class LatencyBound(_Strict):
    phase: str
    p99_ms: float


class Expectations(_Strict):
    max_errors: int | None = 0
    shares: tuple[Share, ...] = ()
    recovery: tuple[Recovery, ...] = ()
    latency: tuple[LatencyBound, ...] = ()


class Scenario(_Strict):
    name: str
    description: str = ""
    stack: StackSpec
    load: LoadSpec
    faults: tuple[Fault, ...] = ()
    expect: Expectations = Expectations()

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.load.phases)

    def phase_at(self, t: float) -> str:
        start = 0.0
        for phase in self.load.phases:
            if t < start + phase.seconds:
                return phase.name
            start += phase.seconds
        return self.load.phases[-1].name

    def phase_start(self, name: str) -> float:
        start = 0.0
        for phase in self.load.phases:
            if phase.name == name:
                return start
            start += phase.seconds
        raise KeyError(name)


class ScenarioError(Exception):
    pass


def load_scenario(path: Path) -> Scenario:
    try:
        raw = yaml.safe_load(path.read_text())
        scenario = Scenario.model_validate(raw)
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ScenarioError(f"{path}: {problems}") from exc
    names = {p.name for p in scenario.load.phases}
    for share in scenario.expect.shares:
        if share.phase not in names:
            raise ScenarioError(f"{path}: expect.shares names an unknown phase {share.phase!r}")
    for fault in scenario.faults:
        if fault.action != "set-weight" and fault.target is None:
            raise ScenarioError(f"{path}: a {fault.action} fault needs a target")
    return scenario
