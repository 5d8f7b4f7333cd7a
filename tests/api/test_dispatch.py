"""GatewayApp answers its hot routes ahead of Starlette's router, inside the app's middleware."""

from __future__ import annotations

from pathlib import Path

from modelserver.support import TestClient
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from support import write_config

from gateway.api.dispatch import GatewayApp
from gateway.app import create_app
from gateway.settings import load_config


class TagMiddleware:
    """Marks every answer that went through Starlette's middleware stack."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-stack", b"starlette")]
            await send(message)

        await self.app(scope, receive, tagged)


async def echo(request: Request) -> Response:
    body = (await request.body()).decode()
    return JSONResponse({"model": request.path_params["model"], "body": body})


async def broken(request: Request) -> Response:
    raise RuntimeError("a bug")


def tagged_app() -> GatewayApp:
    hot = [Route("/hot/{model}", echo, methods=["POST"]), Route("/bug", broken, methods=["POST"])]
    return GatewayApp(
        hot_routes=hot,
        routes=[*hot, Route("/cold/{model}", echo, methods=["POST"])],
        middleware=[Middleware(TagMiddleware)],
    )


def test_the_middleware_wraps_hot_and_cold_routes_alike() -> None:
    with TestClient(tagged_app()) as client:
        hot = client.post("/hot/fraud", content=b"abc")
        cold = client.post("/cold/fraud", content=b"abc")
    assert hot.json() == cold.json() == {"model": "fraud", "body": "abc"}
    assert hot.headers["x-stack"] == cold.headers["x-stack"] == "starlette"


def test_a_hot_route_is_answered_without_the_router() -> None:
    # Not in the router's table at all: only the hot-route matcher can answer it.
    app = GatewayApp(
        hot_routes=[Route("/hot/{model}", echo, methods=["POST"])],
        routes=[],
        middleware=[Middleware(TagMiddleware)],
    )
    with TestClient(app) as client:
        hot = client.post("/hot/fraud", content=b"abc")
    assert hot.status_code == 200
    assert hot.json() == {"model": "fraud", "body": "abc"}
    assert hot.headers["x-stack"] == "starlette"


def test_other_methods_and_paths_go_through_starlette() -> None:
    with TestClient(tagged_app()) as client:
        wrong_method = client.get("/hot/fraud")
        unknown = client.post("/hot/fraud/extra")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["x-stack"] == "starlette"
    assert unknown.status_code == 404
    assert unknown.headers["x-stack"] == "starlette"


def test_an_error_escaping_a_hot_endpoint_is_a_json_500() -> None:
    with TestClient(tagged_app(), raise_server_exceptions=False) as client:
        answer = client.post("/bug")
    assert answer.status_code == 500
    assert answer.json() == {"error": "internal error; see the gateway log"}


def test_the_gateways_middleware_sees_its_prediction_endpoints(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, "http://127.0.0.1:9"))
    app = create_app(config, middleware=[Middleware(TagMiddleware)])
    with TestClient(app) as client:
        prediction = client.post("/v2/models/fraud/infer", content=b"{}")
        metadata = client.get("/v2/models/fraud")
    assert prediction.status_code == 400  # refused by the contract, inside the middleware
    assert prediction.headers["x-stack"] == metadata.headers["x-stack"] == "starlette"


def test_the_gateways_hot_routes_are_its_prediction_endpoints(tmp_path: Path) -> None:
    app = create_app(load_config(write_config(tmp_path, "http://127.0.0.1:9")))
    assert {route.path for route in app.hot_routes} == {
        "/v2/models/{model}/infer",
        "/v2/models/{model}/versions/{version}/infer",
        "/v1/models/{model}:predict",
    }
    with TestClient(app) as client:
        unknown_model = client.post("/v2/models/nope/infer", content=b"{}")
        wrong_method = client.get("/v2/models/fraud/infer")
    assert unknown_model.status_code == 404
    assert "nope" in unknown_model.json()["error"]
    assert "traceparent" in unknown_model.headers
    assert wrong_method.status_code == 405
    assert wrong_method.json() == {"error": "method GET is not allowed on /v2/models/fraud/infer"}
