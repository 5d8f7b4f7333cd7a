"""``GET /openapi.json``: an OpenAPI 3.0 document of the gateway's HTTP API.

Built from the running config: the model path parameter lists the served models, and each
model's v1 fields (names, JSON types, allowed ranges and categories) come from its card, so
the document says what the contract checks. Fetched rarely, so built on request.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import __version__
from gateway.api.answers import json_response, service_of
from gateway.api.keys import metadata_refusal
from gateway.contracts.oip import DATATYPES
from gateway.service.runtime import Runtime

_JSON = "application/json"
_ERROR = {"$ref": "#/components/schemas/Error"}
_SCALAR = {"oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]}
_PARAMETERS = {"type": "object", "additionalProperties": _SCALAR}
_FIELD_TYPES = {"float": "number", "int": "integer", "bool": "boolean", "category": "string"}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": _ERROR}}}


def _ok(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


_PREDICTION_ERRORS = {
    "400": _error("the request breaks the model's contract; the message names field, row and rule"),
    "404": _error("unknown model or version"),
    "413": _error("the body is larger than server.max_body_bytes"),
    "502": _error("the model server answered badly or broke the output contract"),
    "503": _error("no model server or fallback could answer"),
    "504": _error("the model server did not answer in time"),
}  # fmt: skip


_API_KEY_SCHEMES = {
    "apiKeyBearer": {"type": "http", "scheme": "bearer", "description": "a predict API key"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
}
_API_KEY_ERRORS = {
    "401": _error("no valid API key (Authorization: Bearer <key> or x-api-key)"),
    "403": _error("the API key may not call this model"),
    "429": {**_error("the API key is over its rate limit"),
            "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}}},
}  # fmt: skip


def _param(name: str, description: str, enum: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if enum:
        schema["enum"] = enum
    return {"name": name, "in": "path", "required": True, "schema": schema,
            "description": description}  # fmt: skip


def build_document(runtime: Runtime) -> dict[str, Any]:
    """The whole OpenAPI document for ``runtime``'s models."""
    models = sorted(runtime.models)
    model = _param("model", "a model the gateway serves", models)
    version = _param("version", "the model's version, from its card")
    infer = {
        "summary": "Open Inference Protocol v2 inference",
        "requestBody": {"required": True,
                        "content": {_JSON: {"schema": {"$ref": "#/components/schemas/InferenceRequest"}}}},
        "responses": {"200": _ok({"$ref": "#/components/schemas/InferenceResponse"}),
                      **_PREDICTION_ERRORS},
    }  # fmt: skip
    metadata = {"summary": "model metadata from its card",
                "responses": {"200": _ok({"type": "object"}), "404": _error("unknown model or version")}}  # fmt: skip
    ready = {"summary": "model readiness (its primary upstream)",
             "responses": {"200": _ok({"type": "object"}), "404": _error("unknown model or version"),
                           "503": _ok({"type": "object"}, "not ready")}}  # fmt: skip
    paths: dict[str, Any] = {
        "/v2": {"get": {"summary": "server metadata", "responses": {"200": _ok({"type": "object"})}}},
        "/v2/health/live": {"get": {"summary": "liveness", "responses": {"200": _ok({"type": "object"})}}},
        "/v2/health/ready": {"get": {"summary": "readiness of every model's primary",
                                     "responses": {"200": _ok({"type": "object"}),
                                                   "503": _ok({"type": "object"}, "not ready")}}},
        "/v2/models/{model}": {"parameters": [model], "get": metadata},
        "/v2/models/{model}/versions/{version}": {"parameters": [model, version], "get": metadata},
        "/v2/models/{model}/ready": {"parameters": [model], "get": ready},
        "/v2/models/{model}/versions/{version}/ready": {"parameters": [model, version], "get": ready},
        "/v2/models/{model}/infer": {"parameters": [model], "post": infer},
        "/v2/models/{model}/versions/{version}/infer": {"parameters": [model, version], "post": infer},
        "/v1/models/{model}:predict": {"parameters": [model], "post": {
            "summary": "named-field prediction (KServe v1 / TF-Serving style)",
            "requestBody": {"required": True,
                            "content": {_JSON: {"schema": {"$ref": "#/components/schemas/PredictRequest"}}}},
            "responses": {"200": _ok({"$ref": "#/components/schemas/PredictResponse"}),
                          **_PREDICTION_ERRORS},
        }},
        "/metrics": {"get": {"summary": "Prometheus text exposition",
                             "responses": {"200": {"description": "metrics",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"summary": "this document", "responses": {"200": _ok({"type": "object"})}}},
        "/admin/status": {"get": {
            "summary": "routes, breakers, caches and why a model is degraded",
            "security": [{"bearer": []}],
            "responses": {"200": _ok({"type": "object"}),
                          "401": _error("missing or wrong bearer token"),
                          "403": _error("the admin API is disabled (no GATEWAY_ADMIN_TOKEN)")},
        }},
        "/admin/reload": {"post": {
            "summary": "load the config file now; the running config stays when it is refused",
            "security": [{"bearer": []}],
            "responses": {"200": _ok({"type": "object"}),
                          "401": _error("missing or wrong bearer token"),
                          "403": _error("the admin API is disabled (no GATEWAY_ADMIN_TOKEN)"),
                          "422": _ok({"type": "object"})},
        }},
        **{path: {"get": {"summary": f"the operator page: {what} (no data, no token needed)",
                          "responses": {"200": {"description": what,
                                                "content": {media: {"schema": {"type": "string"}}}}}}}
           for path, what, media in (("/admin/ui", "the page", "text/html"),
                                     ("/admin/ui/app.js", "its script", "text/javascript"),
                                     ("/admin/ui/app.css", "its style sheet", "text/css"))},
    }  # fmt: skip
    schemes: dict[str, Any] = {"bearer": {"type": "http", "scheme": "bearer"}}
    if runtime.auth is not None:
        schemes |= _API_KEY_SCHEMES
        _require_api_keys(paths, runtime.auth.protect_metadata)
    return {
        "openapi": "3.0.3",
        "info": {"title": "gateway", "version": __version__,
                 "description": "A resilient model-serving gateway: OIP v2 and a named-field v1 API."},
        "paths": paths,
        "components": {
            "schemas": {**_schemas(), "Instance": _instance(runtime)},
            "securitySchemes": schemes,
        },
    }  # fmt: skip


def _require_api_keys(paths: dict[str, Any], protect_metadata: bool) -> None:
    """Mark the operations that need a predict API key (docs/auth.md)."""
    for path, item in paths.items():
        for method, operation in item.items():
            predicts = method == "post" and path.startswith(("/v1/", "/v2/"))
            describes = method == "get" and (
                path in ("/v2", "/openapi.json") or path.startswith("/v2/models/")
            )
            if predicts or (describes and protect_metadata):
                operation["security"] = [{"apiKeyBearer": []}, {"apiKey": []}]
                operation["responses"] = {**operation["responses"], **_API_KEY_ERRORS}


def _instance(runtime: Runtime) -> dict[str, Any]:
    """A v1 instance: the union of the served models' fields, with their contracts."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for served in runtime.models.values():
        if served.card.entity_key:
            properties[served.card.entity_key] = {"type": "string", "minLength": 1}
        from_store = getattr(served, "features", None) is not None
        for spec in served.card.inputs:
            if from_store and spec.source == "feature":
                continue  # looked up in the feature store; sending it is refused
            required.append(spec.name)
            rule = served.checker.inputs[spec.name].values
            schema: dict[str, Any] = {"type": _FIELD_TYPES[spec.kind]}
            if rule.categories is not None:
                schema["enum"] = sorted(rule.categories)
            if spec.kind in ("float", "int") and rule.lo is not None:
                schema["minimum"] = rule.lo
            if spec.kind in ("float", "int") and rule.hi is not None:
                schema["maximum"] = rule.hi
            properties[spec.name] = schema
    document: dict[str, Any] = {"type": "object", "properties": properties}
    if len(runtime.models) == 1:  # one model: its fields are exactly what an instance needs
        document["required"] = required
    return document


def _schemas() -> dict[str, Any]:
    tensor = {"type": "object", "required": ["name", "shape", "datatype", "data"], "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {"type": "string", "enum": sorted(DATATYPES)},
        "parameters": _PARAMETERS,
        "data": {"type": "array"},
    }}  # fmt: skip
    return {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
        "InferenceRequest": {"type": "object", "required": ["inputs"], "properties": {
            "id": {"type": "string"},
            "parameters": _PARAMETERS,
            "inputs": {"type": "array", "items": tensor},
            "outputs": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string"}, "parameters": _PARAMETERS}}},
        }},
        "InferenceResponse": {"type": "object", "required": ["model_name", "outputs"], "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "parameters": _PARAMETERS,
            "outputs": {"type": "array", "items": tensor},
        }},
        "PredictRequest": {"type": "object", "required": ["instances"], "properties": {
            "instances": {"type": "array", "minItems": 1,
                          "items": {"$ref": "#/components/schemas/Instance"}},
        }},
        "PredictResponse": {"type": "object", "required": ["predictions", "model_name", "provenance"],
                            "properties": {
            "predictions": {"type": "array", "items": {"type": "object", "properties": {
                "score": {"type": "number"}, "label": {"type": "string"}}}},
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "provenance": {"type": "object"},
        }},
    }  # fmt: skip


async def openapi(request: Request) -> Response:
    if (refusal := metadata_refusal(request, None)) is not None:
        return refusal
    return json_response(build_document(service_of(request).runtime))


ROUTES = [Route("/openapi.json", openapi, methods=["GET"])]
