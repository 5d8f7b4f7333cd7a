"""``GET /metrics``: the Prometheus text exposition of the app's own registry, or, in a
``gateway serve --workers N`` fleet, of every worker (:mod:`gateway.telemetry.fleet_metrics`)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.answers import service_of
from gateway.settings.fleet import Fleet
from gateway.telemetry.fleet_metrics import fleet_exposition

HEADERS = {"Content-Type": CONTENT_TYPE_LATEST}


async def metrics(request: Request) -> Response:
    body = generate_latest(service_of(request).metrics.registry)
    return Response(body, headers=HEADERS)


def routes(fleet: Fleet) -> list[Route]:
    """``/metrics`` for one process, or for every worker of ``fleet`` (one scrape)."""
    metrics_dir = fleet.metrics_dir
    if metrics_dir is None:
        return ROUTES

    async def fleet_metrics(request: Request) -> Response:
        body = fleet_exposition(service_of(request).metrics.registry, metrics_dir)
        return Response(body, headers=HEADERS)

    return [Route("/metrics", fleet_metrics, methods=["GET"])]


ROUTES = [Route("/metrics", metrics, methods=["GET"])]
