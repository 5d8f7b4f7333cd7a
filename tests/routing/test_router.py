"""The per-model router: sticky keys from v1 and v2 requests, headers and overrides."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from gateway.errors import InvalidInput
from gateway.resilience.guards import GuardedUpstream
from gateway.routing.router import Router
from gateway.routing.sticky import CanarySplit
from gateway.settings.schema import ModelSettings, UpstreamSettings
from gateway.telemetry.ladder_metrics import LadderMetrics


def router(weight: float = 50.0, **routing: object) -> Router:
    settings = ModelSettings.model_validate({
        "card": "x",
        "primary": {"name": "p", "url": "http://p:1"},
        "canary": {"name": "c", "url": "http://c:1", "weight": weight},
        "routing": routing,
    })  # fmt: skip
    metrics = LadderMetrics(CollectorRegistry())

    def guarded(upstream: UpstreamSettings) -> GuardedUpstream:
        return GuardedUpstream.build("fraud", settings, upstream, lambda: 0.0, metrics)

    assert settings.canary is not None
    return Router.compile(
        "fraud",
        settings,
        entity_key="customer_id",
        primary=guarded(settings.primary),
        canary=guarded(settings.canary),
    )


def test_keys_are_read_from_v1_and_v2_requests() -> None:
    r = router()
    assert r.v1_key({"instances": [{"customer_id": "c-7"}, {"customer_id": "c-8"}]}) == "c-7"
    assert r.v2_key({"parameters": {"customer_id": "c-7,c-8"}}) == "c-7"
    assert r.v2_key({"parameters": {"customer_id": ["c-9"]}}) == "c-9"
    assert r.v2_key({"inputs": [{"name": "customer_id", "data": [["c-5"]]}]}) == "c-5"
    assert r.v1_key({"instances": [{"amount": 1}]}) is None
    assert r.v1_key([]) is None and r.v2_key({"inputs": "x"}) is None


def test_the_same_key_routes_as_the_split_says() -> None:
    r = router(weight=30)
    split = CanarySplit("fraud", 30)
    for key in (f"c-{i}" for i in range(200)):
        variant, upstream = r.route({}, key)
        assert variant == split.choose(key)
        assert upstream.name == ("c" if variant == "canary" else "p")


def test_a_sticky_header_wins_over_the_body() -> None:
    r = router(weight=30, sticky_header="X-User")
    split = CanarySplit("fraud", 30)
    keys = [f"u-{i}" for i in range(100)]
    assert [r.route({"x-user": k}, "ignored")[0] for k in keys] == [split.choose(k) for k in keys]


def test_overrides_only_when_allowed() -> None:
    assert (
        router(weight=0, allow_variant_override=True).route({"x-gateway-variant": "canary"}, None)[
            0
        ]
        == "canary"
    )
    assert router(weight=0).route({"x-gateway-variant": "canary"}, None)[0] == "primary"
    with pytest.raises(InvalidInput, match="must be 'primary' or 'canary'"):
        router(allow_variant_override=True).route({"x-gateway-variant": "green"}, None)


def test_no_canary_means_no_split() -> None:
    assert router(weight=0).splits is False
    assert router(weight=0, allow_variant_override=True).splits is True
    assert router(weight=5).splits is True
