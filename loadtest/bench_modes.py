"""What the bench measures: its targets (baselines and gateway modes) and how each is checked.

Every gateway mode is a config written here (:func:`gateway_config`) plus the provenance its
answers must carry. A figure is only reported once the answers are shown to come from the
rung the mode is about: the open-loop records' headers are checked one by one, and the
gateway's own counters (scraped before and after) cover the wrk runs, whose headers wrk
does not keep.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from prometheus_client.parser import text_string_to_metric_families

from loadtest.generator import Record
from loadtest.processes import ROOT

MODELS: Final = ROOT / "models"
REFERENCE: Final = "bare-aiohttp-proxy"  # every ratio is to this target of the same run
BASELINES: Final = ("direct", "nginx-proxy", REFERENCE)
UPSTREAMS: Final = ("static-nginx", "model-server")
PRIMARY_NAME: Final = "fraud-v1"
# Once open, a breaker of the bench stays open for the whole run (no trial calls).
NEVER_RESET_SECONDS: Final = 86400


@dataclass(frozen=True, slots=True)
class GatewayMode:
    """One way of running the gateway; ``expect`` holds (record field, value) pairs."""

    name: str
    what: str
    api: Literal["v1", "v2"] = "v2"
    sampling: float = 0.1
    feature_cache: bool = False  # v1 enrichment from the last-known-good cache, store down
    fallback_only: bool = False  # the primary is unreachable: the fallback ONNX model serves
    shadow_percent: float = 0.0  # copies to a shadow on the same upstream

    @property
    def expect(self) -> tuple[tuple[str, str], ...]:
        if self.fallback_only:
            return (("served_by", "fallback:onnx"),)
        if self.feature_cache:
            return (("served_by", PRIMARY_NAME), ("feature_source", "cache"))
        return (("served_by", PRIMARY_NAME),)

    @property
    def rung(self) -> str:
        return "fallback" if self.fallback_only else "primary"


GATEWAY_MODES: Final = {
    m.name: m
    for m in (
        GatewayMode(
            "gateway-v2-sampled-100", "v2 passthrough, 100% of traces sampled", sampling=1.0
        ),
        GatewayMode("gateway-v2-sampled-10", "v2 passthrough, 10% sampled (the default)"),
        GatewayMode(
            "gateway-v1-cache",
            "v1 with feature enrichment, every feature from the last-known-good cache "
            "(Feast killed after warming, store breaker open)",
            api="v1",
            feature_cache=True,
        ),
        GatewayMode(
            "gateway-fallback",
            "v2 served by the in-process fallback ONNX model only (primary unreachable, "
            "breaker open; the upstream is not used)",
            fallback_only=True,
        ),
        GatewayMode(
            "gateway-v2-shadow-100",
            "v2 passthrough plus a shadow (the same upstream) getting 100% copies",
            shadow_percent=100.0,
        ),
    )
}
# v1 with live Feast lookups, coalescing on and off (loadtest/bench_live.py): measured once,
# not per upstream, and compared with itself rather than with the bare proxy.
LIVE_MODE: Final = "gateway-v1-live"
MODES: Final = (*BASELINES, *GATEWAY_MODES, LIVE_MODE)


def selected_modes(requested: Iterable[str] | None) -> list[str]:
    """The modes to run in report order; the bare proxy (the ratios' reference) and direct
    (the added latency's, measured in the same rounds) are always in."""
    wanted = set(MODES if requested is None else requested) | {REFERENCE, "direct"}
    unknown = wanted - set(MODES)
    if unknown:
        raise ValueError(f"unknown modes: {', '.join(sorted(unknown))}")
    return [m for m in MODES if m in wanted]


def fallback_sha256(model_dir: Path = MODELS / "fraud-fallback") -> str:
    """The fallback artifact's sha256 as its card states it (the gateway checks both)."""
    card = json.loads((model_dir / "model-card.json").read_text())
    return str(card["artifact"]["sha256"])


def gateway_config(
    mode: GatewayMode,
    upstream_url: str,
    *,
    feast_url: str | None = None,
    unreachable_url: str | None = None,
) -> str:
    """The gateway's YAML for ``mode`` in front of ``upstream_url``.

    ``feast_url`` is needed by the cache mode, ``unreachable_url`` (where nothing listens)
    by the fallback mode.
    """
    primary = upstream_url
    if mode.fallback_only:
        if unreachable_url is None:
            raise ValueError(f"{mode.name} needs an unreachable primary URL")
        primary = unreachable_url
    lines = [f"telemetry: {{sampling_ratio: {mode.sampling}, exporter: none}}"]
    if mode.feature_cache:
        if feast_url is None:
            raise ValueError(f"{mode.name} needs the feature store's URL")
        lines += [
            "feature_store:",
            f"  url: '{feast_url}'",
            f"  breaker: {{fail_max: 3, reset_timeout_seconds: {NEVER_RESET_SECONDS}, "
            f"max_reset_timeout_seconds: {NEVER_RESET_SECONDS}}}",
        ]
    lines += [
        "models:",
        "  fraud:",
        f"    card: {MODELS / 'fraud-v1'}",
        f"    primary: {{name: {PRIMARY_NAME}, url: '{primary}'}}",
    ]
    if mode.feature_cache:
        # A cache miss must not turn into defaults: it is a 503, which wrk counts as an error.
        lines.append("    features: {on_missing: unavailable}")
    if mode.fallback_only:
        lines += [
            "    breaker: {consecutive_failures: 5, "
            f"reset_timeout_seconds: {NEVER_RESET_SECONDS}}}",
            f"    fallback: {{card: {MODELS / 'fraud-fallback'}, sha256: {fallback_sha256()}}}",
        ]
    if mode.shadow_percent:
        lines.append(
            f"    shadows: [{{name: fraud-v1-shadow, url: '{upstream_url}', "
            f"sample_percent: {mode.shadow_percent:g}}}]"
        )
    return "\n".join(lines) + "\n"


# The gateway's counters, keyed by sample name and sorted label pairs.
Metrics = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse_metrics(text: str) -> Metrics:
    """Every sample of a Prometheus text exposition."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): float(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(metrics: Metrics, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, pairs), v in metrics.items() if n == name and wanted <= set(pairs))


def _delta(before: Metrics, after: Metrics, name: str, **labels: str) -> int:
    return round(total(after, name, **labels) - total(before, name, **labels))


def outcome_counts(before: Metrics, after: Metrics) -> dict[str, int]:
    """Requests the gateway answered between two scrapes, by outcome (``ok``, ...)."""
    outcomes = {
        dict(pairs).get("outcome", "") for name, pairs in after if name == "gateway_requests_total"
    }
    counts = {o: _delta(before, after, "gateway_requests_total", outcome=o) for o in outcomes}
    return {o: n for o, n in sorted(counts.items()) if n}


def provenance_check(
    mode: GatewayMode, before: Metrics, after: Metrics, answered: int
) -> tuple[dict[str, Any], list[str]]:
    """Counter deltas over a measurement of ``answered`` client-counted 200s, and problems.

    The gateway may count a few more answers than the clients (requests in flight when wrk
    stops), never fewer on the expected rung, and none on another.
    """
    figures: dict[str, Any] = {
        "answers_by_rung": {
            rung: _delta(before, after, "gateway_served_by_total", rung=rung)
            for rung in ("primary", "canary", "fallback", "default", "none")
        },
        # Why answers failed, in the gateway's words (failures are counted at the client:
        # ``rung="none"`` only counts models with lower rungs).
        "gateway_outcomes": outcome_counts(before, after),
    }
    problems = []
    by_rung = figures["answers_by_rung"]
    if by_rung[mode.rung] < answered:
        problems.append(f"{by_rung[mode.rung]} answers by the {mode.rung} rung, fewer than the "
                        f"{answered} the clients counted")  # fmt: skip
    # "none" counts the requests no rung served: errors, reported as such, not provenance.
    others = {r: n for r, n in by_rung.items() if r not in (mode.rung, "none") and n}
    if others:
        problems.append(f"answers by other rungs than {mode.rung}: {others}")
    if mode.feature_cache:
        values = {
            source: _delta(before, after, "gateway_feature_values_served_total", source=source)
            for source in ("live", "cache", "defaults")
        }
        store_calls = _delta(before, after, "gateway_feature_store_requests_total")
        figures["feature_values"] = values
        figures["feature_store_calls"] = store_calls
        if values["cache"] == 0 or values["live"] or values["defaults"]:
            problems.append(f"feature values not all from the cache: {values}")
        if store_calls:
            problems.append(f"{store_calls} calls reached the feature store (breaker not open)")
    if mode.shadow_percent:
        copies = {
            result: _delta(before, after, "gateway_shadow_requests_total", result=result)
            for result in ("sent", "dropped", "failed", "compared", "skipped_breaker_open")
        }
        figures["shadow_copies"] = copies
        if copies["sent"] == 0:
            problems.append("no shadow copy was sent")
    return figures, problems


def record_problems(mode: GatewayMode, records: Sequence[Record]) -> list[str]:
    """Provenance of the successful open-loop answers other than ``mode`` promises.

    Errors are figures of their own (a rate beyond capacity times out), not problems here.
    """
    problems = []
    for field, value in mode.expect:
        seen = {getattr(r, field) for r in records if r.status == 200} - {value}
        if seen:
            problems.append(f"{field} other than {value!r} in answers: {sorted(map(str, seen))}")
    return problems


def check_summary(mode: GatewayMode, figures: dict[str, Any]) -> str:
    """One line of the report saying what the provenance check saw (failures are the
    client's figures, reported beside it: the gateway cannot count what never reached a
    rung)."""
    by_rung = figures.get("answers_by_rung", {})
    others = sum(n for r, n in by_rung.items() if r not in (mode.rung, "none"))
    text = f"{by_rung.get(mode.rung, 0)} answers by the {mode.rung} rung, {others} by others"
    outcomes = figures.get("gateway_outcomes")
    if outcomes:
        text += "; gateway outcomes: " + ", ".join(f"{o} {n}" for o, n in outcomes.items())
    if "feature_values" in figures:
        values = figures["feature_values"]
        text += (
            f"; feature values: {values['cache']} cache, {values['live']} live, "
            f"{values['defaults']} defaults; {figures['feature_store_calls']} store calls"
        )
    if "shadow_copies" in figures:
        copies = figures["shadow_copies"]
        text += "; shadow copies: " + ", ".join(f"{n} {k}" for k, n in copies.items())
    return text
