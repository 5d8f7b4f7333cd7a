"""The bench's result files: Markdown rendered from JSON only, and one current soak verdict.

``bench-latest.md`` and ``soak-latest.md`` are rendered from their JSON, nothing else, so
``python -m loadtest bench --render loadtest/results/bench-latest.json`` regenerates them
(and the JSON's ``targets``, re-evaluated from its figures). The soak's home is
``soak-latest.json``: a bench run with a soak writes it there too, a bench run without one
carries the latest soak over (labelled with when it ran), and ``python -m loadtest soak``
puts its result into ``bench-latest.json`` as well: the two files never disagree.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path
from typing import Any, Final

from loadtest import bench_failures, bench_live, bench_targets, quality_cost, soak
from loadtest.bench_modes import GATEWAY_MODES, check_summary
from loadtest.processes import ROOT

RESULTS: Final = ROOT / "loadtest" / "results"
BENCH: Final = "bench-latest"
SOAK: Final = "soak-latest"


def report_upstreams(report: dict[str, Any]) -> tuple[str, ...]:
    """The upstreams the report has figures for (the soak's when it has nothing else)."""
    names = tuple(report.get("upstreams", {}))
    if not names and report.get("soak"):
        names = (report["soak"]["upstream"],)
    return names


def _failed_cell(counts: dict[str, Any] | None) -> str:
    if counts is None:
        return ""
    if not counts["failed"]:
        return f"0 of {counts['requests']}"
    percent = bench_failures.failed_percent(counts)
    return f"{counts['failed']} of {counts['requests']} ({percent:.2f}%)"


def _upstream(upstream: str, figures: dict[str, Any], rate: int, rates: list[int]) -> list[str]:
    lines = [
        f"## Upstream: {upstream}",
        "",
        f"| target | req/s c32 | req/s c64 | x bare proxy | CPU s / 1k req | p50 ms @{rate} "
        f"| p99 ms @{rate} | client failures | processes | RSS MB | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, f in figures.items():
        lat = f.get(f"latency_ms_at_{rate}", {})
        failed = _failed_cell(f.get("client_failures", {}).get("total"))
        lines.append(
            f"| {name} | {f['rps_c32']} | {f['rps_c64']} | {f['throughput_vs_bare_proxy']} "
            f"| {f.get('cpu_seconds_per_1000', '')} | {lat.get('p50', '')} "
            f"| {lat.get('p99', '')} | {failed} | {f.get('processes', '')} "
            f"| {f.get('rss_mb', '')} | {f.get('peak_rss_mb', '')} |"
        )
    lines += [
        "",
        "Open-loop latency, every target in the same interleaved rounds (ms; added: over "
        "direct from the same rounds, negative is noise):",
        "",
        "| target | req/s | p50 | p99 | p99.9 | added p50 | added p99 | client failures |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, f in figures.items():
        for r in rates:
            lat, added = f.get(f"latency_ms_at_{r}", {}), f.get(f"added_ms_at_{r}", {})
            failed = _failed_cell(f.get("client_failures", {}).get(f"at_{r}"))
            lines.append(
                f"| {name} | {r} | {lat.get('p50', '')} | {lat.get('p99', '')} "
                f"| {lat.get('p99.9', '')} | {added.get('p50', '')} | {added.get('p99', '')} "
                f"| {failed} |"
            )
    failing = [(n, f["client_failures"]) for n, f in figures.items()
               if f.get("client_failures", {}).get("total", {}).get("failed")]  # fmt: skip
    if failing:
        lines += ["", "Client failures by measurement:", ""]
        for name, parts in failing:
            where = "; ".join(f"{part}: {bench_failures.describe(c)}"
                              for part, c in parts.items() if part != "total" and c["failed"])  # fmt: skip
            lines.append(f"- {name}: {where}")
    checked = [(n, f["checks"]) for n, f in figures.items() if "checks" in f]
    if checked:
        lines += ["", "Provenance checked over each gateway mode's whole measurement:", ""]
        lines += [f"- {n}: {check_summary(GATEWAY_MODES[n], c)}" for n, c in checked]
    return [*lines, ""]


def _soak(report: dict[str, Any]) -> list[str]:
    lines = soak.markdown(report["soak"])
    when = report["soak"].get("when")
    if when and when != report.get("when"):
        lines += [f"Measured {when} by a separate run (`python -m loadtest soak`, "
                  f"`{SOAK}.json`), the latest soak.", ""]  # fmt: skip
    return lines


def markdown(report: dict[str, Any]) -> str:
    """The report's Markdown, from its JSON alone."""
    kind = report.get("kind") or ("bench" if "settings" in report else "soak")
    title = "Benchmark" if kind == "bench" else "Soak"
    upstreams = report_upstreams(report)
    lines = [f"# {title} {report['when']}", "", f"Machine: {report['machine']}", ""]
    rows = bench_targets.evaluate(report, upstreams)
    if title != "Benchmark":  # a partial run (the soak alone): only what it measured
        rows = [r for r in rows if any(v.measured for v in r.by_upstream.values())]
    lines += bench_targets.markdown(rows, upstreams)
    rates: list[int] = report.get("settings", {}).get("rates", [])
    for upstream, figures in report.get("upstreams", {}).items():
        lines += _upstream(upstream, figures, rates[0], rates)
    if report.get("live_lookups"):
        lines += bench_live.markdown(report["live_lookups"])
    if report.get("modes"):
        lines += ["## Gateway modes", ""]
        lines += [f"- {name}: {what}" for name, what in report["modes"].items()]
        lines.append("")
    if report.get("data_quality_monitors"):
        lines += quality_cost.markdown(report["data_quality_monitors"])
    if report.get("soak"):
        lines += _soak(report)
    if report.get("notes"):
        lines += ["## Notes", "", *(f"- {note}" for note in report["notes"]), ""]
    return "\n".join(lines) + "\n"


def stamp(report: dict[str, Any], kind: str) -> None:
    """When, where, and the verdicts (the Targets table's, as JSON)."""
    report["kind"] = kind
    report["when"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    report["machine"] = (
        f"{platform.machine()}, {platform.processor() or 'cpu'}, {os.cpu_count() or 1} cores, "
        f"Python {platform.python_version()}"
    )
    evaluate(report)


def evaluate(report: dict[str, Any]) -> None:
    report["targets"] = bench_targets.as_json(
        bench_targets.evaluate(report, report_upstreams(report))
    )


def write(report: dict[str, Any], name: str, results: Path = RESULTS) -> str:
    """``name``.json and .md; the JSON's verdicts are the rules applied to its figures. A
    soak without its time was measured by this report's run."""
    if report.get("soak") and "when" not in report["soak"]:
        report["soak"]["when"] = report["when"]
    evaluate(report)
    results.mkdir(parents=True, exist_ok=True)
    text = markdown(report)
    (results / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (results / f"{name}.md").write_text(text)
    return text


def latest_soak(results: Path = RESULTS) -> dict[str, Any] | None:
    """The soak of ``soak-latest.json`` (with when it ran), if there is one."""
    path = results / f"{SOAK}.json"
    if not path.exists():
        return None
    doc = json.loads(path.read_text())
    found = doc.get("soak")
    if not found:
        return None
    return {**found, "when": found.get("when", doc.get("when"))}


def soak_report(soak_figures: dict[str, Any], when: str, machine: str) -> dict[str, Any]:
    """``soak-latest.json``'s content for a soak measured at ``when``."""
    return {"kind": "soak", "upstreams": {}, "soak": soak_figures, "when": when,
            "machine": machine}  # fmt: skip


def save_bench(report: dict[str, Any], results: Path = RESULTS) -> str:
    """Write a stamped bench report; its soak goes to ``soak-latest`` too, or, without one,
    the latest soak is carried over."""
    if report.get("soak"):
        soak_doc = soak_report(report["soak"], report["when"], report["machine"])
        write(soak_doc, SOAK, results)
    else:
        carried = latest_soak(results)
        if carried:
            report["soak"] = carried
    return write(report, BENCH, results)


def save_soak(report: dict[str, Any], results: Path = RESULTS) -> str:
    """Write a stamped soak report, and put its soak into ``bench-latest`` as well."""
    text = write(report, SOAK, results)
    bench_path = results / f"{BENCH}.json"
    if bench_path.exists():
        bench_doc = json.loads(bench_path.read_text())
        bench_doc["soak"] = report["soak"]
        write(bench_doc, BENCH, results)
    return text


def render(path: Path) -> str:
    """Re-render ``path``'s Markdown (beside it) from the JSON, whose ``targets`` are
    re-evaluated from its figures."""
    return write(json.loads(path.read_text()), path.stem, path.parent)
