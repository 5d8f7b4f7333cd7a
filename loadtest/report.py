"""A scenario's verdicts and report: JSON with every figure, a Markdown table, PNG timelines."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loadtest.breaker_timeline import BreakerSample, after_faults, bands, breaker_names
from loadtest.generator import Record
from loadtest.quality_watch import (
    QualitySample,
    first_reaching,
    highest_psi,
    mitigation_seconds,
    worst,
)
from loadtest.scenario import Fault, Scenario, card_auc
from loadtest.stats import auc, summary

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Band colors of the breaker panel, by state.
STATE_COLORS = {"closed": "tab:green", "half_open": "tab:orange", "open": "tab:red",
                "unknown": "lightgrey"}  # fmt: skip


@dataclass(frozen=True)
class Verdict:
    ok: bool
    text: str


def _field(record: Record, name: str) -> str | None:
    value: str | None = getattr(record, name)
    return value


def in_phase(
    scenario: Scenario, records: list[Record], phase: str, skip: float = 0.0
) -> list[Record]:
    start = scenario.phase_start(phase) + skip
    return [r for r in records if scenario.phase_at(r.intended) == phase and r.intended >= start]


def _is_4xx(record: Record) -> bool:
    return 400 <= record.status < 500


def _received_auc(records: Sequence[Record]) -> float | None:
    """AUC of the scores clients received (200 answers with a score)."""
    scored = [r for r in records if r.status == 200 and r.score is not None]
    return auc([r.label for r in scored], [r.score or 0.0 for r in scored])


def evaluate(
    scenario: Scenario,
    records: list[Record],
    faults: Sequence[tuple[float, Fault]] = (),
    quality: Sequence[QualitySample] = (),
) -> list[Verdict]:
    verdicts = []
    expect = scenario.expect
    if expect.max_errors is not None:
        errors = sum(1 for r in records if r.status != 200)
        verdicts.append(Verdict(errors <= expect.max_errors,
                                f"client-visible errors: {errors} (at most {expect.max_errors})"))  # fmt: skip
    if expect.max_4xx is not None:
        rejected = sum(1 for r in records if _is_4xx(r))
        verdicts.append(Verdict(rejected <= expect.max_4xx,
                                f"4xx answers: {rejected} (at most {expect.max_4xx})"))  # fmt: skip
    for share in expect.shares:
        chosen = in_phase(scenario, records, share.phase, share.skip_seconds)
        hits = sum(1 for r in chosen if _field(r, share.field) == share.value)
        value = hits / len(chosen) if chosen else 0.0
        ok = (
            bool(chosen)
            and (share.min is None or value >= share.min)
            and (share.max is None or value <= share.max)
        )
        bounds = " ".join(b for b in (f">= {share.min}" if share.min is not None else "",
                                      f"<= {share.max}" if share.max is not None else "") if b)  # fmt: skip
        verdicts.append(
            Verdict(
                ok, f"{share.phase}: share of {share.field}={share.value} is {value:.3f} ({bounds})"
            )
        )
    for recovery in expect.recovery:
        back = [
            r.intended
            for r in records
            if r.intended >= recovery.after and _field(r, recovery.field) == recovery.value
        ]
        took = (min(back) - recovery.after) if back else math.inf
        verdicts.append(Verdict(took <= recovery.within_seconds,
                                f"{recovery.field}={recovery.value} back {took:.2f} s after t={recovery.after:g} "
                                f"(within {recovery.within_seconds:g} s)"))  # fmt: skip
    for bound in expect.latency:
        ok_latencies = [
            r.latency * 1000 for r in in_phase(scenario, records, bound.phase) if r.status == 200
        ]
        p99 = summary(ok_latencies).get("p99", math.inf)
        verdicts.append(
            Verdict(
                p99 <= bound.p99_ms,
                f"{bound.phase}: p99 {p99:.2f} ms (at most {bound.p99_ms:g} ms)",
            )
        )
    verdicts += _quality_verdicts(scenario, records, faults, quality)
    return verdicts


def _quality_verdicts(
    scenario: Scenario,
    records: list[Record],
    faults: Sequence[tuple[float, Fault]],
    quality: Sequence[QualitySample],
) -> list[Verdict]:
    """The AUC bounds and the checks read from the polled data-quality verdicts."""
    verdicts = []
    expect = scenario.expect
    for bound in expect.auc:
        value = _received_auc(in_phase(scenario, records, bound.phase, bound.skip_seconds))
        floor = bound.min if bound.min is not None else card_auc(bound.at_least_card or "")
        source = "" if bound.at_least_card is None else f" of models/{bound.at_least_card}"
        text = f"{bound.phase}: AUC of received scores {_round(value)} (at least {floor}{source})"
        verdicts.append(Verdict(value is not None and floor is not None and value >= floor, text))
    for detection in expect.detect:
        fired = [t for t, f in faults if f.action == detection.after]
        took = (
            first_reaching(quality, detection.input, detection.status, fired[0]) if fired else None
        )
        verdicts.append(Verdict(took is not None and took <= detection.within_seconds,
                                f"{detection.input} {detection.status} {_seconds(took)} after the "
                                f"{detection.after} (within {detection.within_seconds:g} s)"))  # fmt: skip
    for limit in expect.quality_status:
        if limit.phase is None:
            start, end, where = limit.skip_seconds, scenario.seconds, "the whole run"
        else:
            start, end = scenario.phase_span(limit.phase)
            start, where = start + limit.skip_seconds, limit.phase
        polls = sum(1 for q in quality if start <= q.t < end)
        status, whose = worst(quality, start, end)
        ok = polls > 0 and LEVELS_ORDER.index(status) <= LEVELS_ORDER.index(limit.max)
        verdicts.append(Verdict(ok, f"{where}: worst data-quality status {status}"
                                f"{f' ({whose})' if whose else ''} over {polls} polls (at most {limit.max})"))  # fmt: skip
    return verdicts


LEVELS_ORDER = ("ok", "warning", "critical")


def _round(value: float | None) -> str:
    return "none" if value is None else f"{value:.4f}"


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


def phase_figures(scenario: Scenario, records: list[Record]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for phase in scenario.load.phases:
        chosen = in_phase(scenario, records, phase.name)
        ok = [r for r in chosen if r.status == 200]
        scored = [r for r in ok if r.score is not None]
        figures[phase.name] = {
            "requests": len(chosen),
            "errors": len(chosen) - len(ok),
            "4xx": sum(1 for r in chosen if _is_4xx(r)),
            "latency_ms": {
                k: round(v * 1000, 3) for k, v in summary([r.latency for r in ok]).items()
            },
            "served_by": dict(Counter(r.served_by for r in ok)),
            "variant": dict(Counter(r.variant for r in ok)),
            "feature_source": dict(Counter(r.feature_source for r in ok)),
            # Of the answered requests (200): what a store outage costs, beside the AUC.
            "feature_source_share": {
                k: round(v / len(ok), 4) for k, v in Counter(r.feature_source for r in ok).items()
            },
            "auc_of_received_scores": auc(
                [r.label for r in scored], [r.score or 0.0 for r in scored]
            ),
        }
    return figures


def quality_figures(
    scenario: Scenario, faults: Sequence[tuple[float, Fault]], quality: Sequence[QualitySample]
) -> dict[str, Any]:
    """Per phase, the worst status, the highest PSIs and the mitigation's seconds; per fault,
    when each input first went critical and came back to ok after it."""
    phases = {}
    for phase in scenario.load.phases:
        start, end = scenario.phase_span(phase.name)
        status, whose = worst(quality, start, end)
        psi = highest_psi(quality, start, end)
        phases[phase.name] = {
            "polls": sum(1 for q in quality if start <= q.t < end),
            "worst_status": status, "worst_of": whose,
            "highest_psi": {k: round(v, 4) for k, v in sorted(psi.items(), key=lambda kv: -kv[1])},
            "mitigation_seconds": round(mitigation_seconds(quality, start, end), 2),
        }  # fmt: skip
    names = sorted({n for q in quality for n in q.statuses})
    after_faults = []
    for t, fault in faults:
        moves = {}
        for name in names:
            critical = first_reaching(quality, name, "critical", t)
            warning = first_reaching(quality, name, "warning", t)
            back = first_reaching(quality, name, "ok", t + (critical or warning or 0.0))
            if critical is not None or warning is not None:
                moves[name] = {"warning_after": _r(warning), "critical_after": _r(critical),
                               "ok_again_after": _r(None if back is None else back + (critical or warning or 0.0))}  # fmt: skip
        after_faults.append({"at": round(t, 3), "action": fault.action, "inputs": moves})
    return {"phases": phases, "after_faults": after_faults}


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def timeline(records: list[Record]) -> list[dict[str, Any]]:
    """Per second: answers, errors, p50/p99 and the served-by and feature-source mix."""
    seconds: dict[int, list[Record]] = {}
    for record in records:
        seconds.setdefault(int(record.intended), []).append(record)
    rows = []
    for second in sorted(seconds):
        chosen = seconds[second]
        ok = [r for r in chosen if r.status == 200]
        lat = summary([r.latency * 1000 for r in ok], (50, 99))
        rows.append({
            "second": second, "requests": len(chosen), "errors": len(chosen) - len(ok),
            "p50_ms": lat.get("p50"), "p99_ms": lat.get("p99"),
            "statuses": dict(Counter(str(r.status) for r in chosen)),
            "served_by": dict(Counter(r.served_by for r in ok)),
            "feature_source": dict(Counter(r.feature_source for r in ok)),
        })  # fmt: skip
    return rows


def write_report(scenario: Scenario, records: list[Record], faults: list[tuple[float, Fault]],
                 verdicts: list[Verdict], out: Path, breakers: Sequence[BreakerSample] = (),
                 quality: Sequence[QualitySample] = (),
                 chaos: dict[str, Any] | None = None) -> None:  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "scenario": scenario.name,
        "description": scenario.description,
        "passed": all(v.ok for v in verdicts),
        "verdicts": [asdict(v) for v in verdicts],
        "faults": [{"at": round(t, 3), **f.model_dump(exclude_defaults=True)} for t, f in faults],
        "phases": phase_figures(scenario, records),
        "timeline": timeline(records),
        "breaker_timeline": [s.as_dict() for s in breakers],
    }
    if chaos is not None:
        doc["chaos"] = chaos
    if scenario.data_quality is not None:
        doc["data_quality"] = quality_figures(scenario, faults, quality)
        doc["data_quality_timeline"] = [q.as_dict() for q in quality]
    (out / "report.json").write_text(json.dumps(doc, indent=2))
    (out / "report.md").write_text(markdown(doc))
    plot(doc, out)


def markdown(doc: dict[str, Any]) -> str:
    lines = [f"# Scenario {doc['scenario']}: {'passed' if doc['passed'] else 'FAILED'}", "", doc["description"], "",
             "| phase | requests | errors | 4xx | p50 ms | p99 ms | served by | feature source | AUC |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, f in doc["phases"].items():
        auc_value = f["auc_of_received_scores"]
        lines.append(f"| {name} | {f['requests']} | {f['errors']} | {f.get('4xx', '')} | {f['latency_ms'].get('p50', '')} | "
                     f"{f['latency_ms'].get('p99', '')} | {_mix(f['served_by'])} | {_mix(f['feature_source'])} | "
                     f"{'' if auc_value is None else round(auc_value, 4)} |")  # fmt: skip
    lines += ["", "Faults: " + (", ".join(f"{f['action']} {f.get('target', f.get('model', ''))} at {f['at']} s" for f in doc["faults"]) or "none"), ""]  # fmt: skip
    lines += [("- PASS " if v["ok"] else "- FAIL ") + v["text"] for v in doc["verdicts"]]
    lines += breaker_markdown(doc)
    lines += quality_markdown(doc)
    lines += feature_source_markdown(doc)
    lines += chaos_markdown(doc)
    return "\n".join(lines) + "\n"


def chaos_markdown(doc: dict[str, Any]) -> list[str]:
    """The chaos figures (loadtest/chaos.py): sources inside and outside faults, store
    breaker openings, each recovery and the gateway's RSS; nothing for other runs."""
    figures = doc.get("chaos")
    if figures is None:
        return []
    rss = figures["gateway_rss_mb"]
    lines = ["", "## Chaos", "",
             f"- requests {figures['requests']}, 2xx {figures['answered_2xx']}, statuses {figures['statuses']}",
             f"- provenance lies: {len(figures['provenance_lies'])}",
             f"- v1 outside faults: {figures['v1_outside_faults']}, with store features "
             f"{figures['v1_outside_faults_with_features']}, live {figures['v1_outside_faults_live']}; "
             f"sources outside {figures['feature_sources_outside_faults']}, inside {figures['feature_sources_inside_faults']}",
             f"- store-breaker openings: {len(figures['store_breaker_openings'])}, outside a Feast fault: "
             f"{len(figures['spurious_store_breaker_openings'])}",
             f"- gateway RSS MB: first {rss.get('first')}, max {rss.get('max')}, last {rss.get('last')}",
             "", "| part | fault | began s | healed s | back after heal s |", "|---|---|---|---|---|"]  # fmt: skip
    healed = {(r["target"], r["healed_at"]): r["seconds"] for r in figures["recoveries"]}
    for w in figures["windows"]:
        back = healed.get((w["target"], w["healed"]))
        lines.append(f"| {w['target']} | {w['kind']} | {w['began']} | {w['healed']} | {back} |")
    return lines


FEATURE_SOURCES = ("live", "cache", "defaults")


def feature_source_markdown(doc: dict[str, Any]) -> list[str]:
    """Per phase, the shares of the answered requests (200) whose features came live, from
    the last-known-good cache or from the card's defaults (any other source, such as
    ``none``, is the rest), beside the AUC of the scores received; to a tenth of a percent,
    where the main table rounds its mix to whole ones. Nothing for a run whose features
    never came from a store."""
    phases = doc["phases"]
    if not any(set(f["feature_source"]) & set(FEATURE_SOURCES) for f in phases.values()):
        return []
    lines = ["", "## Feature sources", "", "| phase | answers | live | cache | defaults | AUC |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for name, f in phases.items():
        counts = f["feature_source"]
        total = sum(counts.values())
        shares = " | ".join(
            f"{counts.get(s, 0) / total:.1%}" if total else "-" for s in FEATURE_SOURCES
        )
        auc_value = f["auc_of_received_scores"]
        lines.append(
            f"| {name} | {total} | {shares} | {'' if auc_value is None else round(auc_value, 4)} |"
        )
    return lines


def quality_markdown(doc: dict[str, Any]) -> list[str]:
    """The data-quality verdicts per phase, and how fast inputs moved after each fault."""
    figures = doc.get("data_quality")
    if not figures:
        return []
    lines = ["", "## Data quality", "", "| phase | polls | worst status | highest PSI | fallback mitigation |",
             "|---|---|---|---|---|"]  # fmt: skip
    for name, f in figures["phases"].items():
        top = ", ".join(f"{k} {v}" for k, v in list(f["highest_psi"].items())[:3])
        worst_text = f["worst_status"] + (f" ({f['worst_of']})" if f["worst_of"] else "")
        lines.append(
            f"| {name} | {f['polls']} | {worst_text} | {top} | {f['mitigation_seconds']} s |"
        )
    for fault in figures["after_faults"]:
        for name, m in fault["inputs"].items():
            lines.append(f"- after {fault['action']} at {fault['at']} s: `{name}` warning +{m['warning_after']} s, "
                         f"critical +{m['critical_after']} s, ok again +{m['ok_again_after']} s")  # fmt: skip
    return lines


def _samples(doc: dict[str, Any]) -> list[BreakerSample]:
    return [BreakerSample.from_dict(raw) for raw in doc.get("breaker_timeline", ())]


def breaker_markdown(doc: dict[str, Any]) -> list[str]:
    """Per breaker that left closed, per fault: when it first opened and closed again."""
    samples = _samples(doc)
    if not samples:
        return []
    polls = len({s.t for s in samples})
    failed = len({s.t for s in samples if s.state == "unknown"})
    lines = ["", "## Breakers", "",
             f"Polled `/admin/status` {polls} times; {failed} of the polls failed (state unknown)."]  # fmt: skip
    labels: dict[float, list[str]] = {}  # faults fired at the same time share a row
    for f in doc["faults"]:
        labels.setdefault(f["at"], []).append(
            f"{f['action']} {f.get('target', f.get('model', ''))}"
        )
    moved = after_faults(samples, sorted(labels))
    stayed = [n for n in breaker_names(samples) if n not in {m.breaker for m in moved}]
    if stayed:
        lines += ["", "Stayed closed: " + ", ".join(f"`{n}`" for n in stayed) + "."]
    if moved:
        lines += ["", "| breaker | after the fault | opened | closed again |", "|---|---|---|---|"]
        for m in moved:
            lines.append(f"| `{m.breaker}` | {' + '.join(labels[m.fault_at])} at {m.fault_at} s | "
                         f"{_since(m.opened, m.fault_at)} | {_since(m.closed, m.fault_at)} |")  # fmt: skip
    return lines


def _since(t: float | None, fault_at: float) -> str:
    return "-" if t is None else f"{t:.2f} s (+{t - fault_at:.2f} s)"


def _mix(counts: dict[str | None, int]) -> str:
    total = sum(counts.values()) or 1
    return ", ".join(
        f"{k}: {v / total:.0%}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])
    )


def plot(doc: dict[str, Any], out: Path) -> None:
    import matplotlib.pyplot as plt

    fig = timeline_figure(doc)
    fig.savefig(out / "timeline.png", dpi=80)
    plt.close(fig)


def timeline_figure(doc: dict[str, Any]) -> Figure:
    """Status mix, latency, served-by rung, feature source and breaker states per second,
    one panel each on the same time axis, faults as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = doc["timeline"]
    seconds = [r["second"] + 0.5 for r in rows]  # each second's figures at its middle
    fig, axes = plt.subplots(5, 1, figsize=(10, 13), sharex=True,
                             gridspec_kw={"height_ratios": [3, 3, 3, 2, 2]})  # fmt: skip
    statuses = sorted({k for r in rows for k in r["statuses"]})
    for status in statuses:  # 200 first: the others are what went wrong
        color = "tab:blue" if status == "200" else None
        axes[0].plot(seconds, [r["statuses"].get(status, 0) for r in rows], label=status,
                     color=color)  # fmt: skip
    axes[0].set_ylabel("answers per s, by status")
    axes[1].plot(seconds, [r["p50_ms"] for r in rows], label="p50")
    axes[1].plot(seconds, [r["p99_ms"] for r in rows], label="p99")
    axes[1].set_ylabel("latency (ms)")
    axes[1].set_yscale("log")
    _stacked(axes[2], seconds, [r["served_by"] for r in rows], "served by (per s)")
    _stacked(axes[3], seconds, [r["feature_source"] for r in rows], "feature source (per s)")
    for axis in axes[:4]:
        axis.legend(loc="upper right", fontsize="small")
    breaker_panel(axes[4], _samples(doc))
    axes[4].set_xlabel("seconds")
    for axis in axes:
        for fault in doc["faults"]:
            axis.axvline(fault["at"], color="black", linestyle="--", linewidth=0.8)
    fig.suptitle(f"{doc['scenario']} (dashed: faults)")
    fig.tight_layout()
    return fig


def _stacked(axis: Axes, seconds: list[float], mixes: list[dict[str, int]], label: str) -> None:
    """Answers per second stacked by a provenance value (rung, feature source)."""
    keys = sorted({k for mix in mixes for k in mix if k})
    axis.stackplot(seconds, *[[mix.get(k, 0) for mix in mixes] for k in keys], labels=keys)
    axis.set_ylabel(label)


def breaker_panel(axis: Axes, samples: Sequence[BreakerSample]) -> None:
    """One horizontal band per breaker, colored by its state over time."""
    from matplotlib.patches import Patch

    names = breaker_names(samples)
    for band in bands(samples):
        row = names.index(band.breaker)
        axis.broken_barh([(band.start, band.end - band.start)], (row - 0.4, 0.8),
                         facecolors=STATE_COLORS[band.state])  # fmt: skip
    axis.set_title("breaker states", fontsize="medium", loc="left")
    axis.set_yticks(range(len(names)), names, fontsize="small")
    axis.set_ylim(-0.6, max(len(names), 1) - 0.4)
    axis.invert_yaxis()  # the first breaker on top
    if not names:
        axis.text(0.5, 0.5, "no breaker samples", transform=axis.transAxes, ha="center")
    handles = [Patch(color=color, label=state) for state, color in STATE_COLORS.items()]
    # Above the panel, beside the title: inside it would hide a band.
    axis.legend(handles=handles, loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize="small",
                ncols=4, frameon=False)  # fmt: skip
