"""Random chaos: a seeded schedule of kills and stalls, and what a run under it must show.

A scenario's ``chaos:`` section expands, before the run, into ordinary faults: after
``start_after_seconds`` of calm, one part at a time (drawn from ``targets``) is either
killed (``kill``, then ``restart`` after a down time) or stalled (``stop``, then ``cont``),
with a calm gap between faults, until ``end_calm_seconds`` before the end. The same seed
gives the same schedule, so a run can be repeated.

From the faults as they actually fired (when each began and when it was done) the report
derives each part's **down window**, from the moment the kill or stop was done to the
moment the restart or continue began, and its **heal**, when the part answered its health
check again (a restart waits for it; a continue is immediate). Then:

- a **provenance lie** is an answer (200) sent and received entirely inside a down window
  that claims the part served it: ``served_by`` the model server, or ``feature_source:
  live`` while Feast was down. The part could not have;
- **outside faults** means a request due outside every fault, from its start to
  ``recovery_grace_seconds`` after its heal; the live share is taken over the v1 answers
  that used store features (the fallback model's and the default's use none);
- a **spurious store-breaker opening** is the feature store's breaker moving to open
  outside a Feast fault (start to heal + grace);
- **recovery** is the time from a heal to the first request, due after it, that the part
  served again (live features for Feast).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from loadtest.breaker_timeline import FEATURE_STORE, BreakerSample, changes
from loadtest.generator import Record

FEAST = "feast"
FEATURE_SOURCES = ("live", "cache", "defaults")  # an answer that used store features


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


Range = tuple[float, float]


class ChaosSpec(_Strict):
    """The random fault schedule (expanded into ``faults`` when the scenario loads)."""

    seed: int = Field(default=0, ge=0)
    targets: tuple[str, ...] = Field(min_length=1)
    start_after_seconds: float = Field(default=20.0, ge=0)
    end_calm_seconds: float = Field(default=30.0, ge=0)
    calm_seconds: Range = (10.0, 25.0)  # between one fault's heal and the next fault
    down_seconds: Range = (2.0, 10.0)  # a killed part's time before its restart
    stall_seconds: Range = (1.0, 5.0)  # a stopped part's time before it continues
    kill_share: float = Field(default=0.5, ge=0, le=1)
    # Feast takes ~20 s to restart (importing Feast) on a busy 2-core machine: the
    # schedule leaves that much before the next fault may fire.
    restart_allowance_seconds: dict[str, float] = Field(default_factory=lambda: {FEAST: 25.0})

    @model_validator(mode="after")
    def _ranges(self) -> ChaosSpec:
        for name in ("calm_seconds", "down_seconds", "stall_seconds"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"{name}: needs 0 < low <= high, got [{low}, {high}]")
        return self


class ChaosBounds(_Strict):
    """What a chaos run must show; every bound is checked and reported."""

    min_2xx_share: float = Field(default=0.9999, ge=0, le=1)
    max_provenance_lies: int = Field(default=0, ge=0)
    # v1 answers (features looked up) due outside every fault: the share served live.
    min_live_share_outside_faults: float = Field(default=0.99, ge=0, le=1)
    max_spurious_store_openings: int = Field(default=0, ge=0)
    recovery_grace_seconds: float = Field(default=2.0, ge=0)
    # From Feast's heal to the first live answer; from a model server's heal to the
    # first answer it served.
    max_store_recovery_seconds: float = Field(default=2.0, gt=0)
    max_upstream_recovery_seconds: float = Field(default=10.0, gt=0)


@dataclass(frozen=True, slots=True)
class Planned:
    """One fault of the schedule: ``action`` on ``target`` at ``at`` s."""

    at: float
    action: str
    target: str


def schedule(spec: ChaosSpec, run_seconds: float) -> list[Planned]:
    """The faults ``spec`` draws for a run of ``run_seconds``, in time order, one part at a
    time: the next fault fires a calm gap after the previous part's expected heal."""
    rng = random.Random(spec.seed)
    out: list[Planned] = []
    t = spec.start_after_seconds
    last = run_seconds - spec.end_calm_seconds
    while True:
        target = rng.choice(spec.targets)
        kill = rng.random() < spec.kill_share
        down = rng.uniform(*(spec.down_seconds if kill else spec.stall_seconds))
        if t + down > last:
            return out
        out.append(Planned(round(t, 2), "kill" if kill else "stop", target))
        out.append(Planned(round(t + down, 2), "restart" if kill else "cont", target))
        allowance = spec.restart_allowance_seconds.get(target, 3.0) if kill else 0.0
        t += down + allowance + rng.uniform(*spec.calm_seconds)


@dataclass(frozen=True, slots=True)
class Fired:
    """A fault as it happened: ``began`` and ``done`` on the run's timeline."""

    began: float
    done: float
    action: str
    target: str


@dataclass(frozen=True, slots=True)
class Window:
    target: str
    kind: str  # kill or stop
    began: float  # the fault started
    down_from: float  # the part was dead or stopped from here ...
    down_to: float  # ... to here (the restart or continue began)
    healed: float  # and answered its health check again from here


def windows(fired: Sequence[Fired]) -> list[Window]:
    """Down windows from fired faults: a kill with the restart after it, a stop with its
    continue. A fault without its second half lasts to the end (``inf``)."""
    out: list[Window] = []
    opened: dict[str, Fired] = {}
    for event in sorted(fired, key=lambda f: f.began):
        if event.action in ("kill", "stop"):
            opened[event.target] = event
        elif event.action in ("restart", "cont") and event.target in opened:
            first = opened.pop(event.target)
            out.append(Window(event.target, first.action, first.began, first.done,
                              event.began, event.done))  # fmt: skip
    out += [Window(t, f.action, f.began, f.done, math.inf, math.inf) for t, f in opened.items()]
    return sorted(out, key=lambda w: w.began)


def claims(record: Record, target: str) -> bool:
    """Whether an answer says ``target`` served it (live features, for Feast)."""
    if target == FEAST:
        return record.feature_source == "live"
    return record.served_by == target


def provenance_lies(records: Sequence[Record], down: Sequence[Window]) -> list[dict[str, Any]]:
    """Answers sent and received inside a down window that claim the part served them."""
    lies = []
    for r in records:
        if r.status != 200:
            continue
        end = r.intended + r.latency
        for w in down:
            if w.down_from <= r.intended and end <= w.down_to and claims(r, w.target):
                lies.append({"intended": round(r.intended, 3), "target": w.target,
                             "served_by": r.served_by, "feature_source": r.feature_source})  # fmt: skip
    return lies


def outside(records: Sequence[Record], down: Sequence[Window], grace: float) -> list[Record]:
    """Requests due outside every fault (its start to its heal plus ``grace``)."""
    spans = [(w.began, w.healed + grace) for w in down]
    return [r for r in records if not any(a <= r.intended <= b for a, b in spans)]


def store_openings(samples: Sequence[BreakerSample]) -> list[float]:
    """When the feature store's breaker moved to open (as polled)."""
    return [t for t, state in changes(samples).get(FEATURE_STORE, []) if state == "open"]


def spurious(openings: Sequence[float], down: Sequence[Window], grace: float) -> list[float]:
    """Openings outside every Feast fault (its start to its heal plus ``grace``)."""
    spans = [(w.began, w.healed + grace) for w in down if w.target == FEAST]
    return [t for t in openings if not any(a <= t <= b for a, b in spans)]


def recoveries(records: Sequence[Record], down: Sequence[Window]) -> list[dict[str, Any]]:
    """Per healed window: seconds from the heal to the first request due after it that the
    part served again (``None``: it never did in the run)."""
    ordered = sorted((r for r in records if r.status == 200), key=lambda r: r.intended)
    out = []
    for w in down:
        if math.isinf(w.healed):
            continue
        back = next((r.intended for r in ordered if r.intended >= w.healed and claims(r, w.target)), None)  # fmt: skip
        out.append({"target": w.target, "kind": w.kind, "healed_at": round(w.healed, 3),
                    "seconds": None if back is None else round(back - w.healed, 3)})  # fmt: skip
    return out


def source_shares(records: Sequence[Record]) -> dict[str, float]:
    """The feature-source mix of the answered (200) requests."""
    answered = [str(r.feature_source) for r in records if r.status == 200]
    counts = Counter(answered)
    return {k: round(v / len(answered), 5) for k, v in sorted(counts.items())}


def figures(
    records: Sequence[Record],
    fired: Sequence[Fired],
    samples: Sequence[BreakerSample],
    rss: Sequence[tuple[float, int]],
    bounds: ChaosBounds,
) -> dict[str, Any]:
    """Every chaos figure of a run, for the report (JSON-ready)."""
    down = windows(fired)
    grace = bounds.recovery_grace_seconds
    v1 = [r for r in records if r.api == "v1"]
    calm_v1 = outside(v1, down, grace)
    calm_ids = {id(r) for r in calm_v1}
    inside_v1 = [r for r in v1 if id(r) not in calm_ids]
    calm_answered = [r for r in calm_v1 if r.status == 200]
    # Answers of the fallback model or the static default use no store features (source
    # none): a model server's fault, not the feature path's. Counted apart.
    with_features = [r for r in calm_answered if r.feature_source in FEATURE_SOURCES]
    live = sum(1 for r in with_features if r.feature_source == "live")
    openings = store_openings(samples)
    store_polls = sum(1 for x in samples if x.breaker == FEATURE_STORE and x.state != "unknown")
    mb = [b / 2**20 for _, b in rss]
    return {
        "requests": len(records),
        "answered_2xx": sum(1 for r in records if 200 <= r.status < 300),
        "statuses": _count(str(r.status) for r in records),
        "windows": [_window_dict(w) for w in down],
        "provenance_lies": provenance_lies(records, down),
        "v1_outside_faults": len(calm_v1),
        "v1_outside_faults_answered": len(calm_answered),
        "v1_outside_faults_with_features": len(with_features),
        "v1_outside_faults_live": live,
        "feature_sources_outside_faults": source_shares(calm_v1),
        "feature_sources_inside_faults": source_shares(inside_v1),
        "store_breaker_polls": store_polls,
        "feast_faults": sum(1 for w in down if w.target == FEAST),
        "store_breaker_openings": [round(t, 3) for t in openings],
        "spurious_store_breaker_openings": [round(t, 3) for t in spurious(openings, down, grace)],
        "recoveries": recoveries(records, down),
        "gateway_rss_mb": {
            "first": round(mb[0], 1),
            "max": round(max(mb), 1),
            "last": round(mb[-1], 1),
        }
        if mb
        else {},
    }


def _window_dict(w: Window) -> dict[str, Any]:
    def r(x: float) -> float | None:
        return None if math.isinf(x) else round(x, 3)

    return {"target": w.target, "kind": w.kind, "began": r(w.began), "down_from": r(w.down_from),
            "down_to": r(w.down_to), "healed": r(w.healed)}  # fmt: skip


def _count(values: Iterable[str]) -> dict[str, int]:
    return dict(Counter(values))


def verdicts(doc: dict[str, Any], bounds: ChaosBounds) -> list[tuple[bool, str]]:
    """(ok, text) per bound, from :func:`figures`'s document."""
    out = []
    total = doc["requests"]
    share = doc["answered_2xx"] / total if total else 0.0
    out.append((total > 0 and share >= bounds.min_2xx_share,
                f"2xx answers: {doc['answered_2xx']} of {total} ({share:.5%}; at least {bounds.min_2xx_share:.2%})"))  # fmt: skip
    lies = len(doc["provenance_lies"])
    out.append((lies <= bounds.max_provenance_lies,
                f"provenance lies: {lies} (at most {bounds.max_provenance_lies})"))  # fmt: skip
    calm = doc["v1_outside_faults_with_features"]
    live_share = doc["v1_outside_faults_live"] / calm if calm else 0.0
    out.append((calm > 0 and live_share >= bounds.min_live_share_outside_faults,
                f"v1 answers outside faults with live features: {doc['v1_outside_faults_live']} of {calm} "
                f"({live_share:.3%}; at least {bounds.min_live_share_outside_faults:.0%})"))  # fmt: skip
    windows, healed = len(doc["windows"]), len(doc["recoveries"])
    out.append((windows > 0 and healed == windows,
                f"faults that fired: {windows}, healed in the run: {healed} (all, at least one)"))  # fmt: skip
    extra = doc["spurious_store_breaker_openings"]
    # No poll of the store's breaker seen, with Feast faults in the run: nothing was judged.
    watched = doc["store_breaker_polls"] > 0 or doc["feast_faults"] == 0
    out.append((watched and len(extra) <= bounds.max_spurious_store_openings,
                f"store-breaker openings outside a Feast fault: {len(extra)} {extra}, "
                f"{doc['store_breaker_polls']} polls "
                f"(at most {bounds.max_spurious_store_openings})"))  # fmt: skip
    for rec in doc["recoveries"]:
        bound = (bounds.max_store_recovery_seconds if rec["target"] == FEAST
                 else bounds.max_upstream_recovery_seconds)  # fmt: skip
        took = rec["seconds"]
        out.append((took is not None and took <= bound,
                    f"{rec['target']} back {'never' if took is None else f'{took:.2f} s'} after the heal "
                    f"of its {rec['kind']} at {rec['healed_at']:.1f} s (within {bound:g} s)"))  # fmt: skip
    return out
