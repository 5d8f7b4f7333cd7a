"""Scenario files: a stack of real processes, load phases, timed faults, expectations.

See ``loadtest/scenarios/*.yaml`` and docs/loadtest.md for the format. Parsed into
frozen objects; unknown keys are refused with their key path, like the gateway's config.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Literal, cast

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from loadtest.chaos import ChaosBounds, ChaosSpec, schedule


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelServerSpec(_Strict):
    model: str  # folder under models/
    fault_mode: str = "normal"
    fault_delay_ms: float = 0.0
    fault_rate: float = 1.0


class StackSpec(_Strict):
    feast: bool = False
    # Feast as `feast serve` runs by default: its gunicorn worker replaced every ~1,000
    # requests (false: never recycled, as `gateway demo` runs it).
    feast_recycling: bool = False
    feast_workers: int = Field(default=1, ge=1, le=8)
    model_servers: dict[str, ModelServerSpec] = Field(default_factory=dict)
    # The gateway's YAML; {url:NAME} (a model server), {feast_url} and {models} are filled in.
    gateway: str


class Phase(_Strict):
    name: str
    seconds: float = Field(gt=0)
    rate: float = Field(gt=0)


Order = Literal["cycle", "zipf"]


class LoadSpec(_Strict):
    # mixed: each request v2 with probability v2_share (seeded), else v1.
    api: Literal["v1", "v2", "mixed"] = "v1"
    v2_share: float = Field(default=0.3, ge=0, le=1)
    # v1 only: send the store's features in the body too (for stacks without Feast).
    with_features: bool = False
    # How requests draw held-out rows. cycle: the first ``rows`` rows in file order, each
    # phase starting again at the first row. zipf: customers of the whole held-out file
    # ranked by a Zipf law with exponent ``zipf_s`` (the ranking and the draws fixed by
    # ``seed``), one sequence continuing across phases: a long tail of rare customers.
    order: Order = "cycle"
    # Held-out rows cycled through; fewer rows means customers repeat (warm caches).
    rows: int = Field(default=2000, ge=1, le=5000)
    # Beyond 10 the first-ranked customer gets over 99.9 % of the traffic: a typo, not a tail.
    zipf_s: float = Field(default=1.1, gt=0, le=10, allow_inf_nan=False, strict=True)
    seed: int = Field(default=0, ge=0, strict=True)
    phases: tuple[Phase, ...] = Field(min_length=1)

    # These run only on keys the file sets, after ``order`` (declared before them): a key
    # that means nothing for the chosen order is refused rather than silently ignored.
    @field_validator("rows")
    @classmethod
    def _rows_cycle_only(cls, value: int, info: ValidationInfo) -> int:
        if info.data.get("order") == "zipf":
            raise PydanticCustomError(
                "order", "only for order: cycle (order: zipf draws from every held-out row)"
            )
        return value

    @field_validator("zipf_s", "seed")
    @classmethod
    def _zipf_only(cls, value: float, info: ValidationInfo) -> float:
        if info.data.get("order", "zipf") != "zipf":  # absent: ``order`` itself was refused
            raise PydanticCustomError("order", "only for order: zipf (this load has order: cycle)")
        return value


Action = Literal[
    "kill", "stop", "cont", "restart", "fault", "set-weight", "corrupt", "heal", "rollout-start"
]
# Actions that run a `gateway rollout` command on the stack's config (need a model, no target).
ROLLOUT_ACTIONS = ("set-weight", "rollout-start")
# Actions on the fault proxy between the gateway and Feast (loadtest/feast_proxy.py).
PROXY_ACTIONS = ("corrupt", "heal")


class Fault(_Strict):
    at: float = Field(ge=0)
    action: Action
    target: str | None = None  # a model server, or "feast"
    mode: str | None = None  # for action: fault
    delay_ms: float = 0.0
    rate: float = 1.0
    model: str | None = None  # for set-weight and rollout-start
    percent: float | None = None
    # For corrupt (target: feast): Feast's answers carry this store feature's values
    # times ``factor``, silently, until a heal.
    feature: str | None = None
    factor: float | None = None

    @property
    def input_name(self) -> str | None:
        """The model input a corrupted store feature feeds (``view:name`` -> ``name``)."""
        return self.feature.rsplit(":", 1)[-1] if self.feature else None


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


Status = Literal["ok", "warning", "critical"]


class Detection(_Strict):
    """After the first fault with action ``after``, a poll of the data-quality verdicts
    shows ``input`` at ``status`` within ``within_seconds``: ``warning``/``critical``
    mean at least that bad (the time to detect), ``ok`` means back to ok."""

    input: str
    status: Status = "critical"
    after: Action
    within_seconds: float = Field(gt=0)


class StatusBound(_Strict):
    """No poll in ``phase`` (in the whole run when omitted) shows an input or the score
    worse than ``max``: a false alarm."""

    phase: str | None = None
    max: Literal["ok", "warning"] = "ok"
    skip_seconds: float = 0.0


class AucBound(_Strict):
    """The AUC of the scores clients received in ``phase`` is at least ``min``, or at least
    ``metrics.auc_holdout`` of the model card in ``models/<at_least_card>``."""

    phase: str
    min: float | None = Field(default=None, ge=0, le=1)
    at_least_card: str | None = None
    skip_seconds: float = 0.0


class RolloutOutcome(_Strict):
    """How the automated rollout of ``model`` (started by a ``rollout-start`` fault) ends,
    read at the end of the run from ``/admin/status`` and the audit log
    (``loadtest/rollout_watch.py``): its final ``state``; for ``rolled_back``, weight 0
    within ``within_intervals`` analysis intervals of the first failing check; for
    ``promoted``, one audit record per step, then the promotion."""

    model: str = "fraud"
    state: Literal["promoted", "rolled_back"]
    within_intervals: float = Field(default=2.0, gt=0)


class Expectations(_Strict):
    max_errors: int | None = 0
    # The bounds of a run with a chaos section (loadtest/chaos.py).
    chaos: ChaosBounds | None = None
    # Answers 400-499 only: what a client would see as its own fault.
    max_4xx: int | None = None
    shares: tuple[Share, ...] = ()
    recovery: tuple[Recovery, ...] = ()
    latency: tuple[LatencyBound, ...] = ()
    auc: tuple[AucBound, ...] = ()
    # Read from the polled data-quality verdicts (needs a data_quality section).
    detect: tuple[Detection, ...] = ()
    quality_status: tuple[StatusBound, ...] = ()
    rollout: RolloutOutcome | None = None

    def merged(self, extra: Expectations) -> Expectations:
        """These expectations and ``extra``'s: lists joined, a number ``extra`` sets wins."""
        update: dict[str, object] = {}
        for key in extra.model_fields_set:
            mine, theirs = getattr(self, key), getattr(extra, key)
            update[key] = mine + theirs if isinstance(mine, tuple) else theirs
        return self.model_copy(update=update)


class QualityWatch(_Strict):
    """Poll ``GET /admin/status`` for ``model``'s data-quality verdicts during the run."""

    model: str = "fraud"
    poll_seconds: float = Field(default=0.5, gt=0)


class Variant(_Strict):
    """One run of a scenario with several: ``{var:KEY}`` in the gateway's YAML is filled
    from ``vars``; ``expect`` is added to the scenario's own."""

    description: str = ""
    vars: dict[str, str] = Field(default_factory=dict)
    expect: Expectations = Expectations()


VARIABLE = re.compile(r"\{var:([A-Za-z0-9_-]+)\}")


class Scenario(_Strict):
    name: str
    description: str = ""
    stack: StackSpec
    load: LoadSpec
    faults: tuple[Fault, ...] = ()
    # A seeded random schedule of kills and stalls, added to ``faults`` at load.
    chaos: ChaosSpec | None = None
    expect: Expectations = Expectations()
    data_quality: QualityWatch | None = None
    # Runs of the same scenario that differ in a few config values, reported side by side.
    variants: dict[str, Variant] = Field(default_factory=dict)

    def with_variant(self, name: str) -> Scenario:
        """The scenario as variant ``name`` runs it (named ``<scenario>/<variant>``)."""
        variant = self.variants[name]
        gateway = VARIABLE.sub(lambda m: variant.vars[m.group(1)], self.stack.gateway)
        description = f"{self.description.strip()} Variant {name}: {variant.description}".strip()
        return self.model_copy(update={
            "name": f"{self.name}/{name}", "description": description, "variants": {},
            "stack": self.stack.model_copy(update={"gateway": gateway}),
            "expect": self.expect.merged(variant.expect),
        })  # fmt: skip

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

    def phase_span(self, name: str) -> tuple[float, float]:
        """When phase ``name`` starts and ends (seconds after the run's start)."""
        start = self.phase_start(name)
        return start, start + next(p.seconds for p in self.load.phases if p.name == name)


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
    problem = _inconsistency(scenario)
    if problem:
        raise ScenarioError(f"{path}: {problem}")
    return with_chaos_faults(scenario)


def with_chaos_faults(scenario: Scenario) -> Scenario:
    """The scenario with its chaos schedule drawn and added to its faults (sorted)."""
    if scenario.chaos is None:
        return scenario
    drawn = [Fault(at=p.at, action=cast(Action, p.action), target=p.target)
             for p in schedule(scenario.chaos, scenario.seconds)]  # fmt: skip
    if not drawn:
        raise ScenarioError(f"chaos: a run of {scenario.seconds:g} s leaves no room for a fault "
                            "after start_after_seconds and before end_calm_seconds")  # fmt: skip
    faults = tuple(sorted(scenario.faults + tuple(drawn), key=lambda f: f.at))
    return scenario.model_copy(update={"faults": faults, "chaos": None})


def _inconsistency(scenario: Scenario) -> str | None:
    """What is wrong across keys (each key is fine on its own), or None."""
    names = {p.name for p in scenario.load.phases}
    if len(names) < len(scenario.load.phases):
        return "load.phases: two phases share a name"
    for where, expect in [("expect", scenario.expect)] + [
        (f"variants.{n}.expect", v.expect) for n, v in scenario.variants.items()
    ]:
        problem = _expectation_problem(scenario, expect, names)
        if problem:
            return f"{where}.{problem}"
    for i, fault in enumerate(scenario.faults):
        problem = _fault_problem(scenario, fault)
        if problem:
            return f"faults.{i}: {problem}"
    if scenario.chaos is not None:
        parts = set(scenario.stack.model_servers) | ({"feast"} if scenario.stack.feast else set())
        unknown = sorted(set(scenario.chaos.targets) - parts)
        if unknown:
            return f"chaos.targets: {unknown} not in the stack ({sorted(parts)})"
    if scenario.expect.chaos is not None and scenario.chaos is None:
        return "expect.chaos needs a chaos section"
    if scenario.load.api != "mixed" and "v2_share" in scenario.load.model_fields_set:
        return "load.v2_share: only for api: mixed"
    used = set(VARIABLE.findall(scenario.stack.gateway))
    if used and not scenario.variants:
        return f"stack.gateway uses {{var:{sorted(used)[0]}}} but the scenario has no variants"
    for name, variant in scenario.variants.items():
        if set(variant.vars) != used:
            missing, unused = sorted(used - set(variant.vars)), sorted(set(variant.vars) - used)
            return (f"variants.{name}.vars: " + (f"missing {missing}" if missing else
                    f"{unused} not used in stack.gateway"))  # fmt: skip
    return None


def _fault_problem(scenario: Scenario, fault: Fault) -> str | None:
    if fault.action in ROLLOUT_ACTIONS and fault.model is None:
        return f"a {fault.action} fault needs a model"
    if fault.action not in ROLLOUT_ACTIONS and fault.target is None:
        return f"a {fault.action} fault needs a target"
    if fault.action in PROXY_ACTIONS and (fault.target != "feast" or not scenario.stack.feast):
        return f"a {fault.action} fault needs target: feast and stack.feast: true"
    if fault.action == "corrupt":
        if not fault.feature or fault.factor is None:
            return "a corrupt fault needs a feature and a factor"
        if not math.isfinite(fault.factor):
            return "factor must be a finite number"
    elif fault.feature is not None or fault.factor is not None:
        return f"feature and factor are for corrupt faults, not {fault.action}"
    return None


def _expectation_problem(scenario: Scenario, expect: Expectations, names: set[str]) -> str | None:
    for key, bounds in (("shares", expect.shares), ("latency", expect.latency),
                        ("auc", expect.auc), ("quality_status", expect.quality_status)):  # fmt: skip
        for bound in bounds:
            phase = getattr(bound, "phase", None)
            if phase is not None and phase not in names:
                return f"{key} names an unknown phase {phase!r}"
    for bound in expect.auc:
        if (bound.min is None) == (bound.at_least_card is None):
            return "auc: give either min or at_least_card"
        if bound.at_least_card is not None and card_auc(bound.at_least_card) is None:
            return f"auc: no metrics.auc_holdout in models/{bound.at_least_card}/model-card.json"
    if (expect.detect or expect.quality_status) and scenario.data_quality is None:
        return "detect and quality_status need a data_quality section"
    actions = {f.action for f in scenario.faults}
    if expect.rollout is not None and "rollout-start" not in actions:
        return "rollout: needs a rollout-start fault"
    for detection in expect.detect:
        if detection.after not in actions:
            return f"detect: no {detection.after} fault to time from"
    return None


MODELS = Path(__file__).resolve().parents[1] / "models"


def card_auc(model: str) -> float | None:
    """``metrics.auc_holdout`` of ``models/<model>/model-card.json`` (None: no such figure)."""
    try:
        doc = json.loads((MODELS / model / "model-card.json").read_text())
        value = doc["metrics"]["auc_holdout"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return float(value) if isinstance(value, int | float) else None
