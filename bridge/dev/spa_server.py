"""Serves the reference SPA and a small API that verifies the bridge's access tokens through its
JWKS, as any downstream API would."""

from __future__ import annotations

import json
from importlib import resources

import jwt
from flask import Flask, Response, jsonify, request


def create_spa_app(*, bridge_url: str, public_url: str, client_id: str = "spa",
                   audience: str = "spa-api") -> Flask:
    app = Flask(__name__)
    files = resources.files("bridge.dev").joinpath("spa")
    jwks = jwt.PyJWKClient(f"{bridge_url}/.well-known/jwks.json", cache_keys=True)
    config = {"bridge": bridge_url, "clientId": client_id, "redirectUri": f"{public_url}/",
              "scope": "openid profile email", "api": f"{public_url}/api/me"}

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

    @app.get("/api/me")
    def me() -> Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        try:
            if scheme.lower() != "bearer":
                raise jwt.InvalidTokenError("no bearer token")
            key = jwks.get_signing_key_from_jwt(token)
            claims = jwt.decode(token, key.key, algorithms=["ES256", "EdDSA", "RS256"],
                                audience=audience, issuer=bridge_url)
        except jwt.PyJWTError as error:
            response = jsonify({"error": "invalid_token", "why": type(error).__name__})
            response.status_code = 401
            response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
            return response
        return jsonify({"hello": claims.get("name") or claims["sub"], "claims": claims})

    return app
