"""CORS (Fetch standard) for browser clients on other origins.

Credentialed endpoints (token, revoke, logout, userinfo) answer only the origins registered for
some client, echoing the one origin, with ``Vary: Origin``: never ``*`` with credentials. Public
documents (discovery, JWKS, schemas) are readable by any origin, without credentials.
"""

from __future__ import annotations

from flask import Flask, Response, request

from bridge.web.context import services
from bridge.web.cookies import REFRESH_HEADER
from bridge.web.dpop_headers import DPOP_HEADER, NONCE_HEADER

CREDENTIALED = ("/token", "/revoke", "/logout", "/userinfo")
PUBLIC_PREFIXES = ("/.well-known/", "/schemas/")


def install(app: Flask) -> None:
    @app.before_request
    def _preflight() -> Response | None:
        if request.method == "OPTIONS" and request.headers.get("Origin"):
            return Response(status=204)
        return None

    @app.after_request
    def _cors(response: Response) -> Response:
        origin = request.headers.get("Origin")
        if not origin:
            return response
        path = request.path
        if path.startswith(PUBLIC_PREFIXES):
            response.headers["Access-Control-Allow-Origin"] = "*"
            return response
        if path not in CREDENTIALED:
            return response
        response.headers.add("Vary", "Origin")
        allowed = {o for c in services().clients.values() for o in c.allowed_origins}
        if origin not in allowed:
            return response  # no CORS headers: the browser keeps the answer from the script
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
        # A DPoP client's script must read the nonce it is handed, and the resource's challenge.
        response.headers["Access-Control-Expose-Headers"] = f"{NONCE_HEADER}, WWW-Authenticate"
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = "GET, POST"
            response.headers["Access-Control-Allow-Headers"] = (
                f"Authorization, Content-Type, {REFRESH_HEADER}, {DPOP_HEADER}")
            response.headers["Access-Control-Max-Age"] = "600"
        return response
