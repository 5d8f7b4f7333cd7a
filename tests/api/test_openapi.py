"""The OpenAPI document lists exactly the app's routes, with the contract's bounds."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import Route
from support import runtime_of, write_config

from gateway.api.openapi import build_document
from gateway.app import create_app
from gateway.settings import load_config


def test_every_route_is_documented_and_nothing_else(tmp_path: Path) -> None:
    extra = "    contract: {ranges: {hour: {min: 0, max: 23}}}\n"
    config = load_config(write_config(tmp_path, "http://127.0.0.1:9", extra))
    app = create_app(config)
    routes = {
        (r.path, m.lower()) for r in app.routes if isinstance(r, Route) for m in r.methods or ()
    }
    document = build_document(runtime_of(config))
    documented = {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert documented == {(path, method) for path, method in routes if method != "head"}
    hour = document["components"]["schemas"]["Instance"]["properties"]["hour"]
    assert hour == {"type": "integer", "minimum": 0.0, "maximum": 23.0}
    model = document["paths"]["/v2/models/{model}/infer"]["parameters"][0]
    assert model["schema"]["enum"] == ["fraud"]
