"""The prediction endpoints' HTTP side, shared by both APIs: span, outcome, error answer.

Each API module is a codec: it names its route and turns a
:class:`~gateway.service.pipeline.Prediction` into its wire format; everything between
(decoding, validation, features, routing, the ladder) is the service's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import partial

from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.answers import INTERNAL_ERROR, error_response, gzip_large, read_body, service_of
from gateway.errors import AccessDenied, GatewayError, ModelNotFound, outcome
from gateway.service.inputs import Api
from gateway.service.pipeline import Prediction, PredictionCall
from gateway.telemetry.tracing import traceparent

log = logging.getLogger("gateway.api")
_PROPAGATOR = TraceContextTextMapPropagator()

Encoder = Callable[[Prediction], Response]


async def answer_prediction(request: Request, api: Api, route: str, encode: Encoder) -> Response:
    """Serve one prediction inside the request's server span; errors as ``{"error": ...}``.

    Counts the request per model, API and outcome, and returns ``traceparent`` so a
    client can find its trace (none when there is no valid trace: tracing off and no
    incoming context). ``route`` is the span's name, ``METHOD /template``.
    """
    service = service_of(request)
    arrived = service.clock()
    parent: Context | None = None
    if "traceparent" in request.headers:
        parent = _PROPAGATOR.extract(request.headers)
    span = service.tracer.start_span(route, context=parent, kind=SpanKind.SERVER)
    params = request.path_params
    model = params["model"]
    call = PredictionCall(
        api, model, params.get("version"), request.headers, partial(read_body, request), arrived
    )
    result = "ok"
    try:
        response = encode(await service.predict(call, span))
    except GatewayError as exc:
        result = outcome(exc)
        if isinstance(exc, ModelNotFound) or (
            isinstance(exc, AccessDenied) and model not in service.runtime.models
        ):
            model = "<unknown>"  # keeps label cardinality bounded by the config
        response = error_response(exc)
    except Exception:
        log.exception("unexpected error answering %s %s", request.method, request.url.path)
        result = "internal_error"
        response = error_response(INTERNAL_ERROR, 500)
    if (context := traceparent(span.get_span_context())) is not None:
        response.headers["traceparent"] = context
    gzip_large(response, request.headers.get("accept-encoding"))
    if span.is_recording():
        span.set_attribute("http.request.method", request.method)
        span.set_attribute("http.route", _route_template(route, params))
        span.set_attribute("http.response.status_code", response.status_code)
        span.set_attribute("gateway.model", model)
        span.set_attribute("gateway.outcome", result)
        if response.status_code >= 500:
            span.set_status(Status(StatusCode.ERROR, result))
    span.end()
    service.metrics.observe_request(model, api, result, service.clock() - arrived)
    return response


def _route_template(route: str, params: Mapping[str, str]) -> str:
    """``http.route`` as the HTTP conventions define it: the matched path template without
    the method (``/v2/models/{model}/versions/{version}/infer`` for a versioned path)."""
    template = route.partition(" ")[2]
    if "version" in params:
        template = template.replace("/{model}/", "/{model}/versions/{version}/", 1)
    return template
