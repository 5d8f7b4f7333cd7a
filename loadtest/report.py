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
from loadtest.scenario import Fault, Scenario
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


def evaluate(scenario: Scenario, records: list[Record]) -> list[Verdict]:
    verdicts = []
    expect = scenario.expect
    if expect.max_errors is not None:
        errors = sum(1 for r in records if r.status != 200)
        verdicts.append(Verdict(errors <= expect.max_errors,
                                f"client-visible errors: {errors} (at most {expect.max_errors})"))  # fmt: skip
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
    return verdicts


def phase_figures(scenario: Scenario, records: list[Record]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for phase in scenario.load.phases:
        chosen = in_phase(scenario, records, phase.name)
        ok = [r for r in chosen if r.status == 200]
        scored = [r for r in ok if r.score is not None]
        figures[phase.name] = {
            "requests": len(chosen),
            "errors": len(chosen) - len(ok),
            "latency_ms": {
                k: round(v * 1000, 3) for k, v in summary([r.latency for r in ok]).items()
            },
            "served_by": dict(Counter(r.served_by for r in ok)),
            "variant": dict(Counter(r.variant for r in ok)),
            "feature_source": dict(Counter(r.feature_source for r in ok)),
            "auc_of_received_scores": auc(
                [r.label for r in scored], [r.score or 0.0 for r in scored]
            ),
        }
    return figures


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
                 verdicts: list[Verdict], out: Path, breakers: Sequence[BreakerSample] = ()) -> None:  # fmt: skip
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
    (out / "report.json").write_text(json.dumps(doc, indent=2))
    (out / "report.md").write_text(markdown(doc))
    plot(doc, out)


def markdown(doc: dict[str, Any]) -> str:
    lines = [f"# Scenario {doc['scenario']}: {'passed' if doc['passed'] else 'FAILED'}", "", doc["description"], "",
             "| phase | requests | errors | p50 ms | p99 ms | served by | feature source | AUC |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, f in doc["phases"].items():
        auc_value = f["auc_of_received_scores"]
        lines.append(f"| {name} | {f['requests']} | {f['errors']} | {f['latency_ms'].get('p50', '')} | "
                     f"{f['latency_ms'].get('p99', '')} | {_mix(f['served_by'])} | {_mix(f['feature_source'])} | "
                     f"{'' if auc_value is None else round(auc_value, 4)} |")  # fmt: skip
    lines += ["", "Faults: " + (", ".join(f"{f['action']} {f.get('target', f.get('model', ''))} at {f['at']} s" for f in doc["faults"]) or "none"), ""]  # fmt: skip
    lines += [("- PASS " if v["ok"] else "- FAIL ") + v["text"] for v in doc["verdicts"]]
    lines += breaker_markdown(doc)
    return "\n".join(lines) + "\n"


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
