"""The OIP client's boundary: derived endpoints, and failures translated for clients."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
import pytest
from aiohttp import web
from local_http import serving

from gateway.errors import GatewayError, InvalidInput, UpstreamStatusError, UpstreamUnavailable
from gateway.settings.schema import UpstreamSettings
from gateway.upstream.client import Upstream, post_infer


def test_endpoints_hold_the_models_ready_url_host_and_port() -> None:
    settings = UpstreamSettings(name="ml", url="https://models.test", model_name="fraud",
                                model_version="3", replicas=("http://10.0.0.2:8001",))  # fmt: skip
    first, replica = Upstream.endpoints_from_settings(settings, "gateway-name")
    assert first.infer_url == "https://models.test/v2/models/fraud/versions/3/infer"
    assert first.ready_url == "https://models.test/v2/models/fraud/versions/3/ready"
    assert (first.host, first.port) == ("models.test", 443)
    assert replica.ready_url == "http://10.0.0.2:8001/v2/models/fraud/versions/3/ready"
    assert (replica.host, replica.port) == ("10.0.0.2", 8001)


def call(app: web.Application | None) -> GatewayError:
    """post_infer against ``app`` (None: a port nobody listens on); the error it raised."""

    async def scenario() -> GatewayError:
        async with aiohttp.ClientSession() as session:
            if app is None:
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", 0))
                    port = sock.getsockname()[1]
                return await _raised(session, port)
            async with serving(app) as port:
                return await _raised(session, port)

    return asyncio.run(scenario())


async def _raised(session: aiohttp.ClientSession, port: int) -> GatewayError:
    settings = UpstreamSettings(name="fraud-v1", url=f"http://127.0.0.1:{port}")
    with pytest.raises(GatewayError) as caught:
        await post_infer(session, Upstream.from_settings(settings, "fraud"), b"{}")
    return caught.value


def answering(status: int) -> web.Application:
    async def infer(request: web.Request) -> web.Response:
        return web.json_response({"error": "no"}, status=status)

    app = web.Application()
    app.router.add_post("/v2/models/fraud/infer", infer)
    return app


def test_connection_failures_read_without_library_internals() -> None:
    refused = call(None)
    assert isinstance(refused, UpstreamUnavailable)
    assert refused.message == "upstream 'fraud-v1': unreachable: connection refused"

    async def hang_up(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.close()
        return web.Response()

    app = web.Application()
    app.router.add_post("/v2/models/fraud/infer", hang_up)
    dropped = call(app)
    assert dropped.message == "upstream 'fraud-v1': closed the connection before answering"


@pytest.mark.parametrize("status", [404, 408, 429, 401])
def test_4xx_about_the_upstream_or_config_are_upstream_failures(status: int) -> None:
    error = call(answering(status))
    assert isinstance(error, UpstreamStatusError) and error.status == status


def test_other_4xx_are_the_clients() -> None:
    error = call(answering(409))
    assert isinstance(error, InvalidInput)
    assert error.message == "model server 'fraud-v1' refused the request (HTTP 409): no"
