"""Open Inference Protocol v2 REST endpoints; infer is a codec over the prediction service.

The answer is the serving rung's OIP document with the gateway's ``model_name``, the
request's ``id`` and the provenance in ``parameters``; outputs the client asked for as
binary tensor data (``binary_data_output``, per-output ``binary_data``) follow the JSON
part, whose length is the ``Inference-Header-Content-Length`` header.
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.answers import error_response, json_response, service_of
from gateway.api.keys import metadata_refusal
from gateway.api.predictions import answer_prediction
from gateway.errors import GatewayError
from gateway.service.pipeline import Prediction
from gateway.service.runtime import ModelRuntime
from gateway.wire.binary import HEADER_LENGTH, encode_answer

_LIVE = b'{"live":true}'
OCTETS = "application/octet-stream"


async def server_metadata(request: Request) -> Response:
    if (refusal := metadata_refusal(request, None)) is not None:
        return refusal
    return json_response(service_of(request).runtime.server_metadata_body)


async def live(request: Request) -> Response:
    return json_response(_LIVE)


async def server_ready(request: Request) -> Response:
    """Ready when every model has a rung that can serve."""
    service = service_of(request)
    models = list(service.runtime.models.values())
    ready = await asyncio.gather(*(service.ready(m) for m in models))
    not_ready = [m.name for m, ok in zip(models, ready, strict=True) if not ok]
    if not_ready:
        return json_response({"ready": False, "not_ready": not_ready}, 503)
    return json_response({"ready": True})


async def model_metadata(request: Request) -> Response:
    if (refusal := metadata_refusal(request, request.path_params["model"])) is not None:
        return refusal
    try:
        model = _model(request)
    except GatewayError as exc:
        return error_response(exc)
    return json_response(model.metadata_body)


async def model_ready(request: Request) -> Response:
    if (refusal := metadata_refusal(request, request.path_params["model"])) is not None:
        return refusal
    try:
        model = _model(request)
    except GatewayError as exc:
        return error_response(exc)
    ready = await service_of(request).ready(model)
    return json_response({"name": model.name, "ready": ready}, 200 if ready else 503)


def encode_v2(prediction: Prediction) -> Response:
    answer = prediction.answer
    answer["model_name"] = prediction.model.name
    if prediction.request_id is not None:
        answer["id"] = prediction.request_id
    parameters = answer.get("parameters")
    answer["parameters"] = {
        **(parameters if isinstance(parameters, dict) else {}),
        **prediction.provenance.v2_parameters(),
    }
    headers = prediction.provenance.headers()
    forms = prediction.output_forms
    if forms is not None and forms.any:  # the client asked for binary tensor data
        body, json_length = encode_answer(answer, forms)
        if json_length is not None:
            headers[HEADER_LENGTH] = str(json_length)
            return Response(body, headers=headers, media_type=OCTETS)
        return json_response(body, headers=headers)
    return json_response(answer, headers=headers)


async def infer(request: Request) -> Response:
    return await answer_prediction(request, "v2", "POST /v2/models/{model}/infer", encode_v2)


def _model(request: Request) -> ModelRuntime:
    model = service_of(request).runtime.model(request.path_params["model"])
    model.check_version(request.path_params.get("version"))
    return model


# The hot path: matched ahead of Starlette's router (see gateway.api.dispatch).
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
