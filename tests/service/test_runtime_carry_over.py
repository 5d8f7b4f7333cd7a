"""A reload keeps each stateful per-upstream object whose settings did not change."""

from __future__ import annotations

from pathlib import Path

from support import MODELS, runtime_of

from gateway.service.runtime import Runtime
from gateway.settings import parse_config

CONFIG = f"""models:
  fraud:
    card: {MODELS / "fraud-v1"}
    primary: {{name: fraud-v1, url: "http://127.0.0.1:8001"}}
    canary: {{name: fraud-v2, url: "http://127.0.0.1:8002", weight: 0}}
    shadows: [{{name: fraud-v3, url: "http://127.0.0.1:8003", sample_percent: 10}}]
"""


def upstreams(runtime: Runtime) -> tuple[object, object, object]:
    model = runtime.models["fraud"]
    return model.router.primary, model.router.canary, model.shadows[0].target


def reloaded(old: Runtime, text: str, path: Path) -> Runtime:
    return runtime_of(parse_config(text, path), previous=old)


def test_routing_changes_keep_every_upstream(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    old = runtime_of(parse_config(CONFIG, path))
    routed = CONFIG.replace("weight: 0", "weight: 40").replace("sample_percent: 10", "sample_percent: 50")  # fmt: skip
    new = reloaded(old, routed, path)
    assert all(a is b for a, b in zip(upstreams(new), upstreams(old), strict=True))
    model = new.models["fraud"]
    assert (model.router.split.weight, model.shadows[0].sample_percent) == (40, 50)


def test_a_new_url_replaces_only_that_upstream(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    old = runtime_of(parse_config(CONFIG, path))
    primary, canary, shadow = upstreams(reloaded(old, CONFIG.replace("8002", "9002"), path))
    assert primary is upstreams(old)[0] and shadow is upstreams(old)[2]
    assert canary is not upstreams(old)[1]
    moved_shadow = upstreams(reloaded(old, CONFIG.replace("8003", "9003"), path))
    assert moved_shadow[2] is not upstreams(old)[2] and moved_shadow[0] is upstreams(old)[0]


def test_new_breaker_rules_replace_every_routed_upstream(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    old = runtime_of(parse_config(CONFIG, path))
    stricter = reloaded(old, CONFIG + "    breaker: {consecutive_failures: 2}\n", path)
    new, before = upstreams(stricter), upstreams(old)
    assert new[0] is not before[0] and new[1] is not before[1]
    assert new[2] is before[2]  # a shadow's breaker is its own, not the model's rules


def test_an_upstream_that_changes_role_is_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    old = runtime_of(parse_config(CONFIG, path))
    swapped = CONFIG.replace("canary: {name: fraud-v2", "canary: {name: fraud-v9")
    swapped = swapped.replace("{name: fraud-v3", "{name: fraud-v2")
    new = upstreams(reloaded(old, swapped, path))
    assert new[2] is not upstreams(old)[1]  # fraud-v2 was the canary, now a shadow
