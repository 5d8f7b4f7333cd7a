"""Applying a reload keeps what did not change: guards of unchanged upstreams."""

from __future__ import annotations

from pathlib import Path

from support import MODELS

from gateway.reconfigure import rebuild_guards
from gateway.resilience.guards import build_guards
from gateway.settings import parse_config

CONFIG = f"""models:
  fraud:
    card: {MODELS / "fraud-v1"}
    primary: {{name: fraud-v1, url: "http://127.0.0.1:8001"}}
    canary: {{name: fraud-v2, url: "http://127.0.0.1:8002", weight: 0}}
"""


def test_a_weight_change_keeps_every_guard_and_a_new_url_replaces_one(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    old = parse_config(CONFIG, path)
    guards = build_guards(old, lambda: 0.0, None)
    weighted = parse_config(CONFIG.replace("weight: 0", "weight: 40"), path)
    kept = rebuild_guards(guards, old, weighted, lambda: 0.0, None)
    assert all(kept[key] is guards[key] for key in guards)
    moved = parse_config(CONFIG.replace("8002", "9002"), path)
    rebuilt = rebuild_guards(guards, old, moved, lambda: 0.0, None)
    assert rebuilt[("fraud", "fraud-v1")] is guards[("fraud", "fraud-v1")]
    assert rebuilt[("fraud", "fraud-v2")] is not guards[("fraud", "fraud-v2")]
    stricter = parse_config(CONFIG + "    breaker: {consecutive_failures: 2}\n", path)
    assert all(
        rebuild_guards(guards, old, stricter, lambda: 0.0, None)[k] is not guards[k] for k in guards
    )
