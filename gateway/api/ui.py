"""``GET /admin/ui``: the operator page, three static files shipped in the package.

The page holds no data: it asks for the admin token once (kept in the tab's
``sessionStorage``), then polls ``GET /admin/status`` with it every few seconds and draws
what it answers (breakers, rungs, canary, shadows, the data-quality matrix, the feature
store, recent events). So the files are served without the token; every figure comes from
the token-protected status endpoint. No build step and no CDN: ``ui/index.html``,
``ui/app.js`` and ``ui/app.css`` are read once, when this module is imported, and served
under a Content-Security-Policy that allows nothing but this origin (no inline script or
style, no other host), so even a value that slipped past the page's escaping could not
run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib.resources import files

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

PREFIX = "/admin/ui"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}
_FILES = {  # path -> (file in gateway/api/ui/, media type)
    PREFIX: ("index.html", "text/html; charset=utf-8"),
    f"{PREFIX}/app.js": ("app.js", "text/javascript; charset=utf-8"),
    f"{PREFIX}/app.css": ("app.css", "text/css; charset=utf-8"),
}


def _static(name: str, media_type: str) -> Callable[[Request], Awaitable[Response]]:
    body = (files("gateway.api") / "ui" / name).read_bytes()

    async def endpoint(request: Request) -> Response:
        return Response(body, headers=HEADERS, media_type=media_type)

    return endpoint


ROUTES = [
    Route(path, _static(name, media_type), methods=["GET"])
    for path, (name, media_type) in _FILES.items()
]
