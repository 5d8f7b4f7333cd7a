"""How scenario traffic draws held-out rows: ``order: cycle`` (the first ``rows`` rows, every
phase from the first) and ``order: zipf`` (a seeded long tail of customers over the whole
held-out file, one sequence continuing across phases); the options' validation; the
report's feature-source shares."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from pathlib import Path

import pytest
from aiohttp import web
from local_http import serving

from loadtest.generator import Record, run
from loadtest.payloads import load_rows, v1_payloads, zipf_draws
from loadtest.report import markdown, phase_figures
from loadtest.runner import Stack, drive, payloads_for, scaled
from loadtest.scenario import Scenario, ScenarioError, load_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "loadtest" / "scenarios"
ROWS = load_rows()
CUSTOMERS = [row["instance"]["customer_id"] for row in ROWS]

SCENARIO = """
name: t
stack: {{gateway: "models: {{}}"}}
load:
  {load}
  phases:
    - {{name: healthy, seconds: 0.1, rate: 200}}
    - {{name: store-down, seconds: 0.1, rate: 200}}
"""


def scenario(tmp_path: Path, load: str) -> Scenario:
    path = tmp_path / "t.yaml"
    path.write_text(SCENARIO.format(load=load))
    return load_scenario(path)


def draws(n: int, s: float = 1.1, seed: int = 0) -> list[str]:
    """The customers of the first ``n`` zipf draws over the held-out file."""
    return [CUSTOMERS[i] for i in itertools.islice(zipf_draws(CUSTOMERS, s, seed), n)]


def test_the_held_out_file_is_what_the_figures_assume() -> None:
    assert len(ROWS) == 5000 and len(set(CUSTOMERS)) == 3970


def test_zipf_draws_are_deterministic_per_seed() -> None:
    assert draws(2000, seed=3) == draws(2000, seed=3)
    assert draws(2000, seed=3) != draws(2000, seed=4)
    assert draws(2000, s=1.1) != draws(2000, s=1.5)
    # Pinned: feature-store-outage's figures (docs, reports) are for this sequence.
    assert draws(5) == ["c-4057", "c-4411", "c-8818", "c-1263", "c-0572"]


def test_zipf_draws_have_a_long_tail_of_customers() -> None:
    counts = Counter(draws(2000))
    ranked = [n for _, n in counts.most_common()]
    top_percent = sum(ranked[: len(set(CUSTOMERS)) // 100]) / 2000  # the top 39 customers
    assert top_percent > 0.4
    assert 0.1 < ranked[0] / 2000 < 0.25  # rank 1 of 3,970 at s=1.1: about 16 %
    assert sum(1 for n in ranked if n == 1) > 300  # seen once
    assert len(set(CUSTOMERS)) - len(counts) > 3000  # never seen in 20 s at 100 req/s
    # The same number of requests cycled: no customer stands out.
    cycled = Counter(CUSTOMERS[:2000]).most_common(39)
    assert sum(n for _, n in cycled) / 2000 < 0.05


def test_zipf_draws_rank_customers_and_pick_one_of_their_rows() -> None:
    keys = ["a", "b", "a", "c", "a"]
    drawn = list(itertools.islice(zipf_draws(keys, 1.1, 0), 3000))
    assert {keys[i] for i in drawn} == {"a", "b", "c"}
    assert {i for i in drawn if keys[i] == "a"} == {0, 2, 4}  # every row of a customer
    shares = sorted(Counter(keys[i] for i in drawn).values(), reverse=True)
    # Ranks 1, 2, 3 at s=1.1: 55 %, 26 %, 17 % of the draws, whatever rows each has.
    assert shares[0] / 3000 == pytest.approx(0.55, abs=0.04)
    assert shares[2] / 3000 == pytest.approx(0.17, abs=0.04)
    with pytest.raises(ValueError):
        next(zipf_draws([]))


def test_a_zipf_scenario_draws_from_every_held_out_row(tmp_path: Path) -> None:
    payloads = payloads_for(scenario(tmp_path, "order: zipf"))
    index = {p.body: i for i, p in enumerate(v1_payloads(ROWS))}
    drawn = [index[p.body] for p in itertools.islice(payloads, 20_000)]
    assert max(drawn) >= 4500  # not only the first ``rows`` (2,000) of cycle
    assert [CUSTOMERS[i] for i in drawn[:5]] == draws(5)


def _echo_app() -> web.Application:
    """Answers every prediction with its customer in ``x-gateway-served-by``."""

    async def echo(request: web.Request) -> web.Response:
        body = await request.json()
        customer = body["instances"][0]["customer_id"]
        return web.json_response({}, headers={"x-gateway-served-by": customer})

    app = web.Application()
    app.router.add_post("/v1/models/fraud:predict", echo)
    return app


def _customers_per_phase(scenario: Scenario, tmp_path: Path) -> dict[str, list[str]]:
    """Drive ``scenario``'s phases (runner.drive, the pollers finding no status page)
    against the echo server; the customers each phase sent, in schedule order."""

    async def go() -> list[Record]:
        async with serving(_echo_app()) as port:
            stack = Stack(tmp_path, gateway_url=f"http://127.0.0.1:{port}")
            return (await drive(scenario, stack)).records

    out: dict[str, list[str]] = {p.name: [] for p in scenario.load.phases}
    for record in asyncio.run(go()):
        assert record.status == 200
        out[scenario.phase_at(record.intended)].append(record.served_by or "")
    return out


def test_zipf_continues_across_phases(tmp_path: Path) -> None:
    two = scenario(tmp_path, "order: zipf\n  seed: 5")
    sent = _customers_per_phase(two, tmp_path)
    assert [len(c) for c in sent.values()] == [20, 20]
    expected = draws(40, seed=5)
    assert sent["healthy"] == expected[:20]
    # Where the healthy phase stopped, not from the start again.
    assert sent["store-down"] == expected[20:]


def test_cycle_is_unchanged_every_phase_from_the_first_row(tmp_path: Path) -> None:
    cycled = scenario(tmp_path, "rows: 7")
    assert payloads_for(cycled) == v1_payloads(load_rows(limit=7))  # the first rows, a list
    sent = _customers_per_phase(cycled, tmp_path)
    assert sent["healthy"] == sent["store-down"] == (CUSTOMERS[:7] * 3)[:20]
    default = payloads_for(scenario(tmp_path, "with_features: true"))
    assert default == v1_payloads(load_rows(limit=2000), with_features=True)


def test_the_generator_still_cycles_any_sequence() -> None:
    """``generator.run`` with a tuple (a sequence, not only a list) restarts every call."""
    bodies = tuple(v1_payloads(ROWS[:3]))

    async def go() -> list[list[str | None]]:
        async with serving(_echo_app()) as port:
            url = f"http://127.0.0.1:{port}"
            return [[r.served_by for r in await run(url, bodies, 200, 0.05)] for _ in range(2)]

    assert asyncio.run(go()) == [(CUSTOMERS[:3] * 4)[:10]] * 2


def test_shipped_scenarios_keep_cycle_but_the_long_tailed_ones() -> None:
    orders = {p.stem: load_scenario(p).load.order for p in SCENARIOS.glob("*.yaml")}
    assert orders.pop("feature-store-outage") == "zipf"
    assert orders.pop("chaos-soak") == "zipf"  # a long tail the cache cannot cover
    assert orders.pop("feast-recycling") == "zipf"  # the chaos soak's load, without faults
    assert orders and set(orders.values()) == {"cycle"}
    outage = load_scenario(SCENARIOS / "feature-store-outage.yaml")
    assert scaled(outage, 0.5).load.order == "zipf"  # --scale keeps the traffic


@pytest.mark.parametrize(
    ("load", "message"),
    [
        ("order: random", "load.order: Input should be 'cycle' or 'zipf'"),
        ("order: zipf\n  zipf_s: 0", "load.zipf_s: Input should be greater than 0"),
        ("order: zipf\n  zipf_s: -1.1", "load.zipf_s: Input should be greater than 0"),
        ("order: zipf\n  zipf_s: .nan", "load.zipf_s: Input should be a finite number"),
        ("order: zipf\n  zipf_s: 11", "load.zipf_s: Input should be less than or equal to 10"),
        ("order: zipf\n  zipf_s: steep", "load.zipf_s: Input should be a valid number"),
        ("order: zipf\n  zipf_s: true", "load.zipf_s: Input should be a valid number"),
        ("order: zipf\n  seed: -1", "load.seed: Input should be greater than or equal to 0"),
        ("order: zipf\n  seed: 1.5", "load.seed: Input should be a valid integer"),
        ("order: zipf\n  seed: '7'", "load.seed: Input should be a valid integer"),
        ("zipf_s: 1.2", r"load.zipf_s: only for order: zipf \(this load has order: cycle\)"),
        ("order: cycle\n  seed: 3", r"load.seed: only for order: zipf"),
        ("order: zipf\n  rows: 300", r"load.rows: only for order: cycle \(order: zipf draws"),
    ],
)
def test_bad_traffic_options_are_refused_with_the_key(
    tmp_path: Path, load: str, message: str
) -> None:
    with pytest.raises(ScenarioError, match=message):
        scenario(tmp_path, load)


def test_good_traffic_options_parse(tmp_path: Path) -> None:
    assert scenario(tmp_path, "rows: 300").load.order == "cycle"
    zipf = scenario(tmp_path, "order: zipf\n  zipf_s: 2\n  seed: 9").load
    assert (zipf.order, zipf.zipf_s, zipf.seed) == ("zipf", 2.0, 9)
    assert scenario(tmp_path, "order: zipf").load.zipf_s == 1.1


def test_the_report_shows_feature_source_shares_per_phase(tmp_path: Path) -> None:
    two = scenario(tmp_path, "order: zipf")
    records = [Record(i / 100, 0.01, 200, i % 2, "primary", "fraud-v1", "live", 0.2 + 0.5 * (i % 2)) for i in range(10)]  # fmt: skip
    records += [Record(0.1 + i / 100, 0.01, 200, i % 2, "primary", "fraud-v1",
                       "cache" if i < 8 else "defaults", 0.4) for i in range(10)]  # fmt: skip
    figures = phase_figures(two, records)
    assert figures["store-down"]["feature_source_share"] == {"cache": 0.8, "defaults": 0.2}
    doc = {"scenario": "t", "description": "", "passed": True, "faults": [], "verdicts": [],
           "phases": figures}  # fmt: skip
    text = markdown(doc)
    assert "| phase | answers | live | cache | defaults | AUC |" in text
    assert "| healthy | 10 | 100.0% | 0.0% | 0.0% | 1.0 |" in text
    assert "| store-down | 10 | 0.0% | 80.0% | 20.0% | 0.5 |" in text
    # The main table is as before.
    assert (
        "| store-down | 10 | 0 | 0 | 10.0 | 10.0 | fraud-v1: 100% | cache: 80%, defaults: 20% | 0.5 |"
        in text
    )
    # Without a feature store (every answer's source is none), no such section.
    plain = [Record(r.intended, r.latency, 200, r.label, "primary", "fraud-v1", "none", r.score) for r in records]  # fmt: skip
    assert "Feature sources" not in markdown({**doc, "phases": phase_figures(two, plain)})
