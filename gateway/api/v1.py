"""The named-field predict API, ``POST /v1/models/{model}:predict``: a codec over the service.

Request ``{"instances": [{field: value, ...}, ...]}``; answer
``{"predictions": [{"score": p, "label": "..."}], "model_name", "model_version",
"provenance": {...}}``. The service builds the model's OIP tensors in its declared order
and calls the upstream over v2.

With a feature store configured for the model, an instance carries the entity key and the
request-time fields only; the features are looked up (one store call per request) and
``provenance.features`` says, per instance, where each feature came from and the oldest
feature age used.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.answers import json_response
from gateway.api.predictions import answer_prediction
from gateway.service.pipeline import Prediction


def encode_v1(prediction: Prediction) -> Response:
    provenance = prediction.provenance
    body = provenance.v1_body()
    if prediction.features is not None:
        body["features"] = [i.body() for i in prediction.features]
    return json_response(
        {
            "predictions": prediction.predictions,
            "model_name": prediction.model.name,
            "model_version": prediction.answer.get("model_version", prediction.model.card.version),
            "provenance": body,
        },
        headers=provenance.headers(),
    )


async def predict(request: Request) -> Response:
    return await answer_prediction(request, "v1", "POST /v1/models/{model}:predict", encode_v1)


ROUTES = [Route("/v1/models/{model}:predict", predict, methods=["POST"])]
