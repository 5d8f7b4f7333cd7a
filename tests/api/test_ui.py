"""``GET /admin/ui``: static files, served without the token, under a self-only CSP."""

from __future__ import annotations

from pathlib import Path

import pytest
from modelserver.support import TestClient
from support import free_port, write_config

from gateway.app import create_app
from gateway.settings import load_config

TOKEN = "ui-test-token"
FILES = {"/admin/ui": "text/html", "/admin/ui/app.js": "text/javascript", "/admin/ui/app.css": "text/css"}  # fmt: skip


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", TOKEN)
    upstream = f"http://127.0.0.1:{free_port()}"
    return TestClient(create_app(load_config(write_config(tmp_path, upstream))))


@pytest.mark.parametrize("path", FILES)
def test_the_page_and_its_files_are_served_without_the_token(client: TestClient, path: str) -> None:
    with client:
        response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(FILES[path])
    policy = response.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'"
    for source in ("script-src", "style-src", "connect-src", "img-src"):
        assert directives[source] == "'self'", source
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"


def test_the_page_holds_no_data(client: TestClient, tmp_path: Path) -> None:
    with client:
        bodies = [client.get(path).text for path in FILES]
    for body in bodies:
        # Neither the model, its upstream, the config's path nor the token: all of it
        # comes from /admin/status, fetched with the token.
        for secret in ("fraud", "127.0.0.1", str(tmp_path), TOKEN):
            assert secret not in body
    page, script, _ = bodies
    assert '<script src="/admin/ui/app.js"' in page
    assert "<script>" not in page and "style=" not in page  # nothing inline for the CSP to refuse
    assert "/admin/status" in script and "sessionStorage" in script
    # Data goes into the DOM as text only.
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink


def test_the_page_is_served_when_the_admin_api_is_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GATEWAY_ADMIN_TOKEN", raising=False)
    app = create_app(load_config(write_config(tmp_path, f"http://127.0.0.1:{free_port()}")))
    with TestClient(app) as client:
        assert client.get("/admin/ui").status_code == 200
        assert client.get("/admin/status").status_code == 403  # the page says so
