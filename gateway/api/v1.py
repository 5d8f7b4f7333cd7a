"""The named-field predict API: ``POST /v1/models/{model}:predict``.

Request ``{"instances": [{field: value, ...}, ...]}``; answer
``{"predictions": [{"score": p, "label": "..."}], "model_name", "model_version",
"provenance": {...}}``. The gateway builds the model's OIP tensors in its declared order
and calls the upstream over v2.
"""

from __future__ import annotations

import orjson
from opentelemetry.trace import Span
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.common import json_response, parse_json, read_body, state_of, traced_prediction


async def predict(request: Request) -> Response:
    async def handle(span: Span) -> Response:
        state = state_of(request)
        model = state.runtime.model(request.path_params["model"])
        body = await read_body(request, state.runtime.config.settings.server.max_body_bytes)
        inputs, batch = model.decoder.decode(parse_json(body))
        if span.is_recording():
            span.set_attribute("gateway.batch_size", batch)
        upstream_body = orjson.dumps({"inputs": inputs})
        answer, provenance = await state.require_predictor().forward(model, upstream_body, span)
        predictions = model.scores.predictions(provenance.served_by, answer, batch)
        return json_response(
            {
                "predictions": predictions,
                "model_name": model.name,
                "model_version": answer.get("model_version", model.card.version),
                "provenance": provenance.v1_body(),
            },
            headers=provenance.headers(),
        )

    return await traced_prediction(request, "v1", "POST /v1/models/{model}:predict", handle)


ROUTES = [Route("/v1/models/{model}:predict", predict, methods=["POST"])]
