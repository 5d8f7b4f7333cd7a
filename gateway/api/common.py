"""HTTP shaping shared by the prediction endpoints: bodies, JSON answers, the request span."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.requests import Request
from starlette.responses import Response

from gateway.contracts.problems import ContractViolation, Problem
from gateway.errors import GatewayError, ModelNotFound, PayloadTooLarge, http_status
from gateway.errors import outcome as outcome_of
from gateway.state import AppState
from gateway.telemetry.tracing import traceparent

if TYPE_CHECKING:
    from gateway.provenance import Provenance
    from gateway.routing.sticky import Variant
    from gateway.runtime import ModelRuntime
    from gateway.upstream.client import Upstream

log = logging.getLogger("gateway.api")
_PROPAGATOR = TraceContextTextMapPropagator()
JSON = "application/json"


def state_of(request: Request) -> AppState:
    state: AppState = request.app.state.gateway
    return state


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return Response(content, status_code=status, headers=headers, media_type=JSON)


def error_response(error: GatewayError, headers: dict[str, str] | None = None) -> Response:
    retry_after = getattr(error, "retry_after_seconds", None)  # a shed request: when to retry
    if retry_after is not None:
        headers = {**(headers or {}), "retry-after": str(retry_after)}
    return json_response({"error": error.message}, http_status(error), headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body: {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body: exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ContractViolation(
            [Problem(f"body: not valid JSON: {exc} (rule: json)", "body", "json")]
        ) from exc


Handler = Callable[[Span], Awaitable[Response]]


async def traced_prediction(request: Request, api: str, route: str, handle: Handler) -> Response:
    """Run ``handle`` inside the request's server span; answer errors as ``{"error": ...}``.

    Counts the request per model, API and outcome, and returns ``traceparent`` so a
    client can find its trace.
    """
    state = state_of(request)
    started = state.clock()
    parent: Context | None = None
    if "traceparent" in request.headers:
        parent = _PROPAGATOR.extract(request.headers)
    span = state.tracer.start_span(route, context=parent, kind=SpanKind.SERVER)
    model = request.path_params.get("model", "")
    result = "ok"
    try:
        response = await handle(span)
    except GatewayError as exc:
        result = outcome_of(exc)
        if isinstance(exc, ModelNotFound):
            model = "<unknown>"  # keeps label cardinality bounded by the config
        elif isinstance(exc, ContractViolation | PayloadTooLarge):
            _count_rejection(state, span, model, exc)
        response = error_response(exc)
    except Exception:
        log.exception("unexpected error answering %s %s", request.method, request.url.path)
        result = "internal_error"
        response = json_response({"error": "internal error; see the gateway log"}, 500)
    response.headers["traceparent"] = traceparent(span.get_span_context())
    if span.is_recording():
        span.set_attribute("http.request.method", request.method)
        span.set_attribute("http.route", route)
        span.set_attribute("http.response.status_code", response.status_code)
        span.set_attribute("gateway.model", model)
        span.set_attribute("gateway.outcome", result)
        if response.status_code >= 500:
            span.set_status(Status(StatusCode.ERROR, result))
    span.end()
    state.metrics.observe_request(model, api, result, state.clock() - started)
    return response


def _count_rejection(
    state: AppState, span: Span, model: str, exc: ContractViolation | PayloadTooLarge
) -> None:
    """Count a refused request per (field, rule) and name the rules on the span."""
    if isinstance(exc, PayloadTooLarge):
        labels = [("body", "max_body_bytes")]
    else:
        runtime = state.runtime.models.get(model)
        known = runtime.checker.fields if runtime is not None else frozenset()
        if runtime is not None and runtime.card.entity_key:
            known = known | {runtime.card.entity_key}
        labels = exc.labels(known)
    if model not in state.runtime.models:
        model = "<unknown>"
    for field, rule in labels:
        state.metrics.count_rejection(model, field, rule)
    if span.is_recording():
        span.set_attribute("gateway.rejection.rules", sorted({rule for _, rule in labels}))
        span.set_attribute("gateway.rejection.fields", sorted({field for field, _ in labels}))


def choose_variant(
    model: ModelRuntime, request: Request, doc: Any, api: str
) -> tuple[Variant, Upstream]:
    """The model's router's choice; the primary, reading nothing, when no canary is weighted."""
    router = model.router
    if not router.splits:
        return "primary", model.primary
    key = router.v1_key(doc) if api == "v1" else router.v2_key(doc)
    return router.route(request.headers, key)


def offer_shadows(
    state: AppState,
    model: ModelRuntime,
    provenance: Provenance,
    body: bytes,
    predictions: list[dict[str, Any]],
    batch: int,
) -> None:
    """Queue sampled copies of a request an upstream served; never waits, never fails."""
    dispatcher = state.shadows
    if dispatcher is None or not model.shadows or provenance.variant not in ("primary", "canary"):
        return
    dispatcher.offer(model.shadows, body, [p["score"] for p in predictions], batch)
