"""The named-field predict API: ``POST /v1/models/{model}:predict``.

Request ``{"instances": [{field: value, ...}, ...]}``; answer
``{"predictions": [{"score": p, "label": "..."}], "model_name", "model_version",
"provenance": {...}}``. The gateway builds the model's OIP tensors in its declared order
and calls the upstream over v2.

With a feature store configured for the model, an instance carries the entity key and the
request-time fields only; the features are looked up (one store call per request) and
``provenance.features`` says, per instance, where each feature came from and the oldest
feature age used.
"""

from __future__ import annotations

import orjson
from opentelemetry.trace import Span
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.common import (
    choose_variant,
    json_response,
    offer_shadows,
    parse_json,
    read_body,
    state_of,
    traced_prediction,
)
from gateway.dataplane import LadderRequest
from gateway.errors import FeaturesUnavailable
from gateway.resilience.deadline import client_timeout_ms


async def predict(request: Request) -> Response:
    async def handle(span: Span) -> Response:
        state = state_of(request)
        started = state.clock()
        model = state.runtime.model(request.path_params["model"])
        body = await read_body(request, state.runtime.config.settings.server.max_body_bytes)
        doc = parse_json(body)
        decoded = model.decoder.decode_instances(doc)
        variant, upstream = choose_variant(model, request, doc, "v1")
        batch = decoded.batch
        if span.is_recording():
            span.set_attribute("gateway.batch_size", batch)
        enrichment = None
        skip_reason = None  # set when the upstream rung cannot be used for this request
        client_ms = client_timeout_ms(request.headers)
        if model.features is not None:
            # The lookup gets what is left of the request's budget, never the fallback's reserve.
            budget = state.require_predictor().step_budget(model, upstream, client_ms)
            try:
                enrichment = await state.require_enricher().enrich(
                    model.features,
                    decoded.entity_ids,
                    span,
                    None if budget is None else budget - (state.clock() - started),
                )
            except FeaturesUnavailable as exc:
                if model.fallback is None and model.default is None:
                    raise
                skip_reason = exc.message  # the ladder's lower rungs need no store features
        if enrichment is not None and span.is_recording():
            span.set_attribute("gateway.feature_source", enrichment.source)
            span.set_attribute("gateway.feature_store.outcome", enrichment.store_outcome)
        upstream_body = None
        if skip_reason is None:
            inputs = model.decoder.tensors(decoded, enrichment.columns if enrichment else {})
            upstream_body = orjson.dumps({"inputs": inputs})
        ladder_request = LadderRequest(
            upstream_body,
            batch,
            lambda: decoded.columns,
            client_timeout_ms=client_ms,
            started=started,
            skip_reason=skip_reason,
            feature_source=enrichment.source if enrichment is not None else "none",
        )
        answer, provenance = await state.require_predictor().serve(
            model, ladder_request, span, upstream=upstream, variant=variant
        )
        predictions = model.scores.predictions(provenance.served_by, answer, batch)
        state.metrics.observe_served(
            model.name,
            provenance.variant,
            state.clock() - started,
            [p["score"] for p in predictions],
        )
        if upstream_body is not None:
            offer_shadows(state, model, provenance, upstream_body, predictions, batch)
        provenance_body = provenance.v1_body()
        if enrichment is not None and provenance.variant in ("primary", "canary"):
            provenance_body["features"] = [i.body() for i in enrichment.instances]
        return json_response(
            {
                "predictions": predictions,
                "model_name": model.name,
                "model_version": answer.get("model_version", model.card.version),
                "provenance": provenance_body,
            },
            headers=provenance.headers(),
        )

    return await traced_prediction(request, "v1", "POST /v1/models/{model}:predict", handle)


ROUTES = [Route("/v1/models/{model}:predict", predict, methods=["POST"])]
