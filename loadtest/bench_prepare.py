"""Bringing a gateway into the state a bench mode measures, and proving it got there.

``gateway-v1-cache``: a real ``feast serve`` answers while every entity of the load is
requested once (so the last-known-good cache holds each), then Feast is SIGKILLed and
requests go on until the store's breaker reads open; every entity must then answer from
the cache. ``gateway-fallback``: requests go to a primary where nothing listens until its
breaker reads open, and answers must say ``fallback:onnx``.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from loadtest.bench_modes import MODELS, Metrics, parse_metrics
from loadtest.payloads import Payload
from loadtest.processes import Proc, free_port

OPEN: float = 2  # the breaker gauges' value for open
_HEADERS = {"Content-Type": "application/json"}


def post(base: str, payload: Payload, timeout: float = 5.0) -> tuple[int, dict[str, str]]:
    """Status and (lower-cased) headers of one request."""
    request = urllib.request.Request(base + payload.path, data=payload.body, headers=_HEADERS)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read()
            return answer.status, {k.lower(): v for k, v in answer.headers.items()}
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}


def scrape(base: str) -> Metrics:
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as answer:
        return parse_metrics(answer.read().decode())


def gauge_max(metrics: Metrics, name: str) -> float:
    return max((v for (n, _), v in metrics.items() if n == name), default=0.0)


def _require(base: str, payloads: Sequence[Payload], header: str, value: str, when: str) -> None:
    for payload in payloads:
        status, headers = post(base, payload)
        if status != 200 or headers.get(header) != value:
            raise RuntimeError(
                f"{when}: expected 200 with {header}: {value}, got {status} "
                f"{header}: {headers.get(header)} for {payload.body[:120]!r}"
            )


def _until_open(base: str, payload: Payload, gauge: str, timeout: float) -> None:
    """Send ``payload`` until the breaker ``gauge`` reads open."""
    deadline = time.monotonic() + timeout
    while gauge_max(scrape(base), gauge) != OPEN:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{gauge} did not read open within {timeout:g} s")
        post(base, payload)


def start_feast(repo: Path, workdir: Path, start: Callable[[Proc], Proc]) -> tuple[Proc, str]:
    """``feast serve`` over the prepared ``repo`` on a free port; its URL."""
    from gateway.demo.feature_repo import feast_serve_command  # imports pandas: only when needed

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # gunicorn puts its control socket under $XDG_RUNTIME_DIR, else under $HOME.
    runtime = workdir / f"feast-run-{port}"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    command = feast_serve_command(repo, "127.0.0.1", port)
    proc = Proc(f"feast-{port}", command, f"{url}/health", workdir / f"feast-{port}.log", env)
    return start(proc), url


def warm_feast(url: str, payloads: Sequence[Payload], timeout: float = 30.0) -> None:
    """Ask Feast itself for the load's entities, one a call as the gateway does, until five
    calls in a row answer within 100 ms: its first lookups are slow (imports, the online
    store's connection), and a gateway's first requests would time out on them (200 ms),
    tripping the bench's store breaker."""
    card = json.loads((MODELS / "fraud-v1" / "model-card.json").read_text())
    key = card["entity_key"]
    refs = [i["feature_ref"] for i in card["inputs"] if i.get("source") == "feature"]
    deadline, fast = time.monotonic() + timeout, 0
    for payload in itertools.cycle(payloads):
        entity = json.loads(payload.body)["instances"][0][key]
        body = json.dumps({"features": refs, "entities": {key: [entity]}}).encode()
        started = time.monotonic()
        request = urllib.request.Request(f"{url}/get-online-features", data=body, headers=_HEADERS)
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read()
        fast = fast + 1 if time.monotonic() - started < 0.1 else 0
        if fast == 5:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"Feast at {url} still answers slower than 100 ms")


def prepare_feature_repo(workdir: Path) -> Path:
    """The demo's feature repo, applied and materialized (every customer online)."""
    from gateway.demo.feature_repo import prepare_feature_repo as prepare

    return prepare(workdir / "feature_repo")


def serve_from_cache(
    base: str, payloads: Sequence[Payload], feast: Proc, timeout: float = 30
) -> None:
    """Warm the cache with live answers, kill Feast, wait for the store's breaker to open and
    check every entity of ``payloads`` is now served from the cache."""
    _require(base, payloads, "x-gateway-feature-source", "live", "warming the feature cache")
    feast.signal(signal.SIGKILL)  # the whole process group: gunicorn and its worker
    if feast.process is not None:
        feast.process.wait()
    _until_open(base, payloads[0], "gateway_feature_store_breaker_state", timeout)
    _require(base, payloads, "x-gateway-feature-source", "cache", "with the store down")


def serve_from_fallback(base: str, payloads: Sequence[Payload], timeout: float = 30) -> None:
    """Send requests until the unreachable primary's breaker opens; then the fallback must
    answer."""
    _until_open(base, payloads[0], "gateway_upstream_breaker_state", timeout)
    _require(base, payloads[:50], "x-gateway-served-by", "fallback:onnx", "with the primary down")
