"""``GET /metrics``: the Prometheus text exposition of the app's own registry."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.answers import service_of


async def metrics(request: Request) -> Response:
    body = generate_latest(service_of(request).metrics.registry)
    return Response(body, headers={"Content-Type": CONTENT_TYPE_LATEST})


ROUTES = [Route("/metrics", metrics, methods=["GET"])]
