"""``canary.analysis`` refused with its key path when it cannot mean anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import MODELS

from gateway.settings import ConfigError, parse_config

PATH = "models.fraud.canary.analysis"


def parse(analysis: str, weight: str = "0") -> None:
    text = f"""
models:
  fraud:
    card: {MODELS / "fraud-v1"}
    primary: {{name: fraud-v1, url: "http://127.0.0.1:8001"}}
    canary:
      name: fraud-v2
      url: http://127.0.0.1:8002
      weight: {weight}
      analysis:
{analysis}"""
    parse_config(text, Path("/tmp/gateway.yaml"))


def problems(analysis: str, weight: str = "0") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(analysis, weight)
    return [str(p) for p in caught.value.problems]


BASE = "        interval_seconds: 60\n"


def test_a_full_analysis_is_accepted() -> None:
    parse(
        "        steps: [5, 25, 50, 100]\n" + BASE + "        min_requests: 200\n"
        "        max_failed_checks: 2\n        checks:\n"
        "          - {name: error_rate, max: 0.01}\n"
        "          - {name: latency_p99_ms, max: 20, relative_to: primary}\n"
        "          - {name: fallback_rate, max: 0.05}\n"
        "          - {name: output_violation_rate, max: 0}\n"
        "          - {name: score_psi, max: 0.2}\n"
        "          - {name: prometheus, query: 'sum(up)', min: 1, url: 'http://127.0.0.1:9090'}\n"
    )


@pytest.mark.parametrize(
    ("analysis", "expected"),
    [
        ("        steps: [5, 25, 25]\n" + BASE, f"{PATH}.steps: steps must increase strictly: 25 follows 25"),
        ("        steps: [50, 25]\n" + BASE, f"{PATH}.steps: steps must increase strictly"),
        ("        steps: [5, 101]\n" + BASE, f"{PATH}.steps: step 101 is outside (0, 100]"),
        ("        steps: [0, 5]\n" + BASE, f"{PATH}.steps: step 0 is outside (0, 100]"),
        ("        steps: [5]\n" + BASE + "        checks: [{name: errors, max: 1}]\n",
         f"{PATH}.checks.0.name: unknown check 'errors'"),
        ("        steps: [5]\n" + BASE + "        checks: [{name: error_rate, max: -0.1}]\n",
         f"{PATH}.checks.0: max of error_rate must be >= 0 (a bound of the wrong sign)"),
        ("        steps: [5]\n" + BASE + "        checks: [{name: latency_p99_ms, max: -5, relative_to: primary}]\n",
         f"{PATH}.checks.0: max of latency_p99_ms must be >= 0"),
        ("        steps: [5]\n" + BASE + "        checks: [{name: error_rate, max: 2}]\n",
         f"{PATH}.checks.0: max of error_rate is a share: at most 1"),
        ("        steps: [5]\n" + BASE + "        checks: [{name: score_psi, min: 0.1}]\n",
         f"{PATH}.checks.0: score_psi takes max (and relative_to), not min"),
        ("        steps: [5]\n" + BASE + "        checks: [{name: prometheus, query: up, max: 1, url: 'ftp://h'}]\n",
         f"{PATH}.checks.0.url: must be an http:// or https:// URL with a host"),
        ("        steps: [5]\n" + BASE + "        checks: [{name: prometheus, query: up, url: 'http://h'}]\n",
         f"{PATH}.checks.0: a prometheus check needs exactly one of min and max"),
        ("        steps: [5]\n" + BASE + "        checks: [{name: prometheus, query: up, min: 0, max: 1, url: 'http://h'}]\n",
         f"{PATH}.checks.0: a prometheus check needs exactly one of min and max"),
        ("        steps: [5]\n" + BASE + "        checks: [{name: prometheus, max: 1, url: 'http://h'}]\n",
         f"{PATH}.checks.0: a prometheus check needs a query"),
        ("        steps: [5]\n" + BASE + "        state: progressing\n",
         f"{PATH}: state progressing needs a step"),
        ("        steps: [5]\n" + BASE + "        state: progressing\n        step: 2\n",
         f"{PATH}: step 2 is past the last of 1 steps"),
        ("        steps: [5]\n" + BASE + "        state: walking\n", f"{PATH}.state: Input should be"),
        ("        steps: [5]\n        interval_seconds: 0\n", f"{PATH}.interval_seconds: Input should be greater than 0"),
    ],
)  # fmt: skip
def test_bad_analysis_is_refused_with_its_key_path(analysis: str, expected: str) -> None:
    found = problems(analysis)
    assert any(p.startswith(expected) or expected in p for p in found), found


def test_a_weight_outside_0_100_is_refused() -> None:
    found = problems("        steps: [5]\n" + BASE, weight="120")
    assert any(p.startswith("models.fraud.canary.weight:") for p in found), found
