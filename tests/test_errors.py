"""The one table from domain errors to HTTP statuses and outcome labels."""

from __future__ import annotations

import pytest

from gateway import errors


@pytest.mark.parametrize(
    ("error", "status", "label"),
    [
        (errors.InvalidInput("x"), 400, "invalid_input"),
        (errors.ModelNotFound("x"), 404, "not_found"),
        (errors.PayloadTooLarge("x"), 413, "too_large"),
        (errors.NotReady("x"), 503, "not_ready"),
        (errors.UpstreamUnavailable("up", "x"), 503, "upstream_unavailable"),
        (errors.UpstreamTimeout("up", "x"), 504, "upstream_timeout"),
        (errors.UpstreamBadResponse("up", "x"), 502, "upstream_bad_response"),
        (errors.FeatureStoreUnavailable("fs", "x"), 503, "feature_store_unavailable"),
        (errors.FeatureStoreTimeout("fs", "x"), 504, "feature_store_timeout"),
        (errors.FeatureStoreBadResponse("fs", "x"), 502, "feature_store_bad_response"),
        (errors.CircuitOpen("fs", 1.0), 503, "circuit_open"),
        (errors.FeaturesUnavailable("x"), 503, "features_unavailable"),
    ],
)
def test_status_and_label(error: errors.GatewayError, status: int, label: str) -> None:
    assert errors.http_status(error) == status
    assert errors.outcome(error) == label


def test_a_new_subclass_inherits_its_parents_entry() -> None:
    class Throttled(errors.RequestError):
        pass

    assert errors.http_status(Throttled("x")) == 400


def test_upstream_errors_name_the_upstream() -> None:
    assert (
        errors.UpstreamTimeout("fraud-v1", "no answer").message == "upstream 'fraud-v1': no answer"
    )
