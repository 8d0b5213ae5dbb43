"""Serves the reference SPA and a small API that verifies the bridge's access tokens through its
JWKS, as any downstream API would. Its payroll action needs a recent second-factor login and says
so with RFC 9470's challenge when a token falls short (docs/step-up.md)."""

from __future__ import annotations

import json
import time
from importlib import resources
from typing import Any

import jwt
from flask import Flask, Response, jsonify, request

# What the payroll action needs: a second factor, at most this many seconds ago.
PAYROLL_ACR = "mfa"
PAYROLL_MAX_AGE = 300


def create_spa_app(*, bridge_url: str, public_url: str, client_id: str = "spa",
                   audience: str = "spa-api") -> Flask:
    app = Flask(__name__)
    files = resources.files("bridge.dev").joinpath("spa")
    jwks = jwt.PyJWKClient(f"{bridge_url}/.well-known/jwks.json", cache_keys=True)
    config = {"bridge": bridge_url, "clientId": client_id, "redirectUri": f"{public_url}/",
              "scope": "openid profile email", "api": f"{public_url}/api/me",
              "payroll": f"{public_url}/api/payroll"}

    @app.get("/")
    def index() -> Response:
        return Response(files.joinpath("index.html").read_text(), mimetype="text/html")

    @app.get("/app.js")
    def script() -> Response:
        return Response(files.joinpath("app.js").read_text(), mimetype="text/javascript")

    @app.get("/config.js")
    def config_js() -> Response:
        return Response(f"window.BRIDGE_SPA_CONFIG = {json.dumps(config)};",
                        mimetype="text/javascript")

    def verified() -> dict[str, Any] | Response:
        """The claims of the request's access token, or the 401 that refuses it."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        try:
            if scheme.lower() != "bearer":
                raise jwt.InvalidTokenError("no bearer token")
            key = jwks.get_signing_key_from_jwt(token)
            claims: dict[str, Any] = jwt.decode(token, key.key,
                                                algorithms=["ES256", "EdDSA", "RS256"],
                                                audience=audience, issuer=bridge_url)
        except jwt.PyJWTError as error:
            response = jsonify({"error": "invalid_token", "why": type(error).__name__})
            response.status_code = 401
            response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
            return response
        return claims

    @app.get("/api/me")
    def me() -> Response:
        claims = verified()
        if isinstance(claims, Response):
            return claims
        return jsonify({"hello": claims.get("name") or claims["sub"], "claims": claims})

    @app.post("/api/payroll")
    def payroll() -> Response:
        claims = verified()
        if isinstance(claims, Response):
            return claims
        if (claims.get("acr") != PAYROLL_ACR
                or time.time() - claims["auth_time"] > PAYROLL_MAX_AGE):
            # RFC 9470 §3: what a new login must bring, for the client to ask the bridge for.
            response = jsonify({"error": "insufficient_user_authentication",
                                "acr": claims.get("acr"), "auth_time": claims["auth_time"]})
            response.status_code = 401
            response.headers["WWW-Authenticate"] = (
                'Bearer error="insufficient_user_authentication", '
                'error_description="Running payroll needs a recent second-factor login", '
                f'acr_values="{PAYROLL_ACR}", max_age="{PAYROLL_MAX_AGE}"')
            return response
        return jsonify({"payroll": "run", "acr": claims["acr"], "amr": claims.get("amr"),
                        "auth_time": claims["auth_time"]})

    return app
