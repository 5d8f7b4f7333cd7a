"""A model's data-quality verdicts over a scenario run, polled from ``GET /admin/status``.

Every ``poll_seconds`` the poller reads ``models.<model>.data_quality`` and keeps one
:class:`QualitySample`: each input's status and PSI, the score's, and whether the
``on_critical: fallback`` mitigation is active. A failed poll keeps nothing (the load never
waits for it). From the samples: when an input first reached a status after a fault (the
time to detect), the worst status per phase (false alarms), the highest PSI seen.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from loadtest.breaker_timeline import poll_status

SCORE = "score"  # the served score's verdict, beside the inputs'
LEVELS = {"ok": 0, "no_baseline": 0, "warning": 1, "critical": 2}
NAMES = {0: "ok", 1: "warning", 2: "critical"}


@dataclass(frozen=True, slots=True)
class QualitySample:
    t: float  # seconds after the run's start when the poll finished
    statuses: dict[str, str]  # input name (and ``score``) -> ok | warning | critical | ...
    psi: dict[str, float | None] = field(default_factory=dict)
    mitigation: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"t": round(self.t, 3)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> QualitySample:
        return cls(float(raw["t"]), dict(raw["statuses"]), dict(raw.get("psi", {})),
                   bool(raw.get("mitigation")))  # fmt: skip


def sample_from_status(doc: object, model: str, t: float) -> QualitySample | None:
    """The verdicts of ``model`` in one ``/admin/status`` document (None: not there)."""
    models = doc.get("models") if isinstance(doc, Mapping) else None
    status = models.get(model) if isinstance(models, Mapping) else None
    quality = status.get("data_quality") if isinstance(status, Mapping) else None
    if not isinstance(quality, Mapping):
        return None
    verdicts: dict[str, Any] = dict(quality.get("inputs") or {})
    if isinstance(quality.get("score"), Mapping):
        verdicts[SCORE] = quality["score"]
    statuses = {n: str(v.get("status")) for n, v in verdicts.items() if isinstance(v, Mapping)}
    psi = {n: v.get("psi") for n, v in verdicts.items() if isinstance(v, Mapping)}
    mitigation = quality.get("mitigation")
    active = isinstance(mitigation, Mapping) and bool(mitigation.get("active"))
    return QualitySample(t, statuses, psi, active)


async def poll_quality(
    base_url: str,
    token: str,
    model: str,
    stop: asyncio.Event,
    *,
    start: float,
    interval: float = 0.5,
    request_timeout: float = 1.0,
    clock: Callable[[], float] = time.perf_counter,
) -> list[QualitySample]:
    """Poll until ``stop`` is set; samples on ``clock`` minus ``start`` (the run's timeline)."""
    samples: list[QualitySample] = []

    def handle(doc: object | None, t: float) -> None:
        sample = sample_from_status(doc, model, t) if doc is not None else None
        if sample is not None:
            samples.append(sample)

    await poll_status(base_url, token, stop, handle, start=start, interval=interval,
                      request_timeout=request_timeout, clock=clock)  # fmt: skip
    return samples


def reached(level: int, status: str, wanted: str) -> bool:
    """``warning``/``critical`` wanted: at least that bad; ``ok`` wanted: back to ok."""
    if wanted == "ok":
        return LEVELS.get(status, 0) == 0
    return level >= LEVELS[wanted]


def first_reaching(
    samples: Sequence[QualitySample], name: str, wanted: str, after: float
) -> float | None:
    """Seconds from ``after`` to the first sample where ``name`` is ``wanted`` (None: never)."""
    for sample in sorted(samples, key=lambda s: s.t):
        status = sample.statuses.get(name)
        if (
            sample.t >= after
            and status is not None
            and reached(LEVELS.get(status, 0), status, wanted)
        ):
            return sample.t - after
    return None


def worst(samples: Sequence[QualitySample], start: float, end: float) -> tuple[str, str | None]:
    """The worst status any input or the score had between ``start`` and ``end``, and whose."""
    level, whose = 0, None
    for sample in samples:
        if start <= sample.t < end:
            for name, status in sample.statuses.items():
                if LEVELS.get(status, 0) > level:
                    level, whose = LEVELS.get(status, 0), name
    return NAMES[level], whose


def highest_psi(
    samples: Sequence[QualitySample], start: float = 0.0, end: float = float("inf")
) -> dict[str, float]:
    """Per input (and ``score``), the highest PSI seen between ``start`` and ``end``."""
    out: dict[str, float] = {}
    for sample in samples:
        if start <= sample.t < end:
            for name, value in sample.psi.items():
                if value is not None and value > out.get(name, -1.0):
                    out[name] = value
    return out


def mitigation_seconds(samples: Sequence[QualitySample], start: float, end: float) -> float:
    """About how long the fallback mitigation was active between ``start`` and ``end``:
    each sample's state holds until the next sample (the last one's until ``end``)."""
    ordered = sorted(samples, key=lambda s: s.t)
    total = 0.0
    for here, until in zip(ordered, [s.t for s in ordered[1:]] + [end], strict=True):
        if here.mitigation:
            total += max(0.0, min(until, end) - max(here.t, start))
    return total
