"""Open Inference Protocol v2 REST endpoints."""

from __future__ import annotations

import asyncio

import orjson
from opentelemetry.trace import Span
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.common import (
    choose_variant,
    error_response,
    json_response,
    offer_shadows,
    parse_json,
    read_body,
    state_of,
    traced_prediction,
)
from gateway.dataplane import LadderRequest
from gateway.errors import GatewayError
from gateway.fallback.onnx_model import columns_from_v2
from gateway.features.oip_entities import enrich_infer_request
from gateway.resilience.deadline import client_timeout_ms
from gateway.runtime import ModelRuntime
from gateway.upstream.client import probe_ready

# A readiness probe must answer quickly even when an upstream hangs.
READY_PROBE_SECONDS = 0.5
_LIVE = b'{"live":true}'


async def server_metadata(request: Request) -> Response:
    return json_response(state_of(request).runtime.server_metadata_body)


async def live(request: Request) -> Response:
    return json_response(_LIVE)


async def server_ready(request: Request) -> Response:
    """Ready when every model has a rung that can serve (see :func:`_model_ready`)."""
    state = state_of(request)
    models = list(state.runtime.models.values())
    ready = await asyncio.gather(*(_model_ready(request, m) for m in models))
    not_ready = [m.name for m, ok in zip(models, ready, strict=True) if not ok]
    if not_ready:
        return json_response({"ready": False, "not_ready": not_ready}, 503)
    return json_response({"ready": True})


async def model_metadata(request: Request) -> Response:
    try:
        model = _model(request)
    except GatewayError as exc:
        return error_response(exc)
    return json_response(model.metadata_body)


async def model_ready(request: Request) -> Response:
    try:
        model = _model(request)
    except GatewayError as exc:
        return error_response(exc)
    ready = await _model_ready(request, model)
    return json_response({"name": model.name, "ready": ready}, 200 if ready else 503)


async def infer(request: Request) -> Response:
    async def handle(span: Span) -> Response:
        state = state_of(request)
        started = state.clock()
        model = _model(request)
        body = await read_body(request, state.runtime.config.settings.server.max_body_bytes)
        doc = parse_json(body)
        # Rows may name their entities in `parameters`; the store's tensors are then added.
        enrichment = await enrich_infer_request(model, doc, state.require_enricher, span)
        batch, relabelled = model.checker.check_converting(doc)
        if relabelled or enrichment is not None:  # the tensors changed: serialize again
            body = orjson.dumps(doc)
        if span.is_recording():
            span.set_attribute("gateway.batch_size", batch)
        outputs = doc.get("outputs")
        requested = tuple(o["name"] for o in outputs) if outputs else None
        fallback = model.fallback
        ladder_request = LadderRequest(
            body,
            batch,
            lambda: columns_from_v2(doc, fallback.input_names) if fallback else {},
            requested,
            client_timeout_ms(request.headers, doc),
            feature_source=enrichment.source if enrichment is not None else "none",
            started=started,
        )
        variant, upstream = choose_variant(model, request, doc, "v2")
        answer, provenance = await state.require_predictor().serve(
            model, ladder_request, span, upstream=upstream, variant=variant
        )
        try:
            predictions = model.scores.predictions(provenance.served_by, answer, batch)
        except GatewayError:  # the client asked for outputs without the score
            predictions = []
        state.metrics.observe_served(
            model.name,
            provenance.variant,
            state.clock() - started,
            [p["score"] for p in predictions],
        )
        if predictions:
            offer_shadows(state, model, provenance, body, predictions, batch)
        answer["model_name"] = model.name
        if "id" in doc:
            answer["id"] = doc["id"]
        parameters = answer.get("parameters")
        answer["parameters"] = {
            **(parameters if isinstance(parameters, dict) else {}),
            **provenance.v2_parameters(),
        }
        return json_response(answer, headers=provenance.headers())

    return await traced_prediction(request, "v2", "POST /v2/models/{model}/infer", handle)


def _model(request: Request) -> ModelRuntime:
    model = state_of(request).runtime.model(request.path_params["model"])
    model.check_version(request.path_params.get("version"))
    return model


async def _model_ready(request: Request, model: ModelRuntime) -> bool:
    """Ready while any rung can serve: an in-process rung always can, else the upstream."""
    if model.fallback is not None or model.default is not None:
        return True
    predictor = state_of(request).require_predictor()
    return await probe_ready(predictor.session, model.primary, READY_PROBE_SECONDS)


# The hot path: dispatched ahead of Starlette's middleware (see gateway.api.dispatch).
PREDICTION_ROUTES = [
    Route("/v2/models/{model}/infer", infer, methods=["POST"]),
    Route("/v2/models/{model}/versions/{version}/infer", infer, methods=["POST"]),
]

ROUTES = [
    Route("/v2", server_metadata, methods=["GET"]),
    Route("/v2/health/live", live, methods=["GET"]),
    Route("/v2/health/ready", server_ready, methods=["GET"]),
    Route("/v2/models/{model}", model_metadata, methods=["GET"]),
    Route("/v2/models/{model}/versions/{version}", model_metadata, methods=["GET"]),
    Route("/v2/models/{model}/ready", model_ready, methods=["GET"]),
    Route("/v2/models/{model}/versions/{version}/ready", model_ready, methods=["GET"]),
    *PREDICTION_ROUTES,
]
