"""Serves the reference SPA and a small API that verifies the bridge's access tokens through its
JWKS, as any downstream API would, and their DPoP proofs (RFC 9449 §7.1) as docs/dpop.md shows.
Its payroll action needs a recent second-factor login and says so with RFC 9470's challenge when a
token falls short (docs/step-up.md)."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
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

    seen = ProofsSeen()

    def verified() -> dict[str, Any] | Response:
        """The claims of the request's access token, or the 401 that refuses it."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        try:
            if scheme.lower() not in ("bearer", "dpop"):
                raise jwt.InvalidTokenError("no access token")
            key = jwks.get_signing_key_from_jwt(token)
            claims: dict[str, Any] = jwt.decode(token, key.key,
                                                algorithms=["ES256", "EdDSA", "RS256"],
                                                audience=audience, issuer=bridge_url)
            check_binding(claims, scheme.lower(), token, request.headers.getlist("DPoP"),
                          request.method, f"{public_url}{request.path}", seen)
        except jwt.PyJWTError as error:
            response = jsonify({"error": "invalid_token", "why": str(error)})
            response.status_code = 401
            response.headers["WWW-Authenticate"] = (
                f'{_scheme(request.headers.get("Authorization", ""))} error="invalid_token"')
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
                f'{_scheme(request.headers.get("Authorization", ""))} '
                'error="insufficient_user_authentication", '
                'error_description="Running payroll needs a recent second-factor login", '
                f'acr_values="{PAYROLL_ACR}", max_age="{PAYROLL_MAX_AGE}"')
            return response
        return jsonify({"payroll": "run", "acr": claims["acr"], "amr": claims.get("amr"),
                        "auth_time": claims["auth_time"]})

    return app


def _scheme(authorization: str) -> str:
    """The scheme a challenge names: the one the token came with (RFC 9449 §7.1)."""
    return "DPoP" if authorization.lower().startswith("dpop ") else "Bearer"


class ProofsSeen:
    """The DPoP proofs this API accepted in the last minutes: each is good for one request."""

    def __init__(self, window_seconds: int = 120) -> None:
        self.window = window_seconds
        self.seen: dict[tuple[str, str], float] = {}
        self.lock = threading.Lock()

    def first_use(self, jkt: str, jti: str) -> bool:
        now = time.time()
        with self.lock:
            self.seen = {k: t for k, t in self.seen.items() if now - t < self.window}
            return self.seen.setdefault((jkt, jti), now) == now


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _thumbprint(jwk: dict[str, Any]) -> str:  # RFC 7638
    members = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}[jwk["kty"]]
    text = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(text.encode()).digest())


def check_binding(claims: dict[str, Any], scheme: str, token: str, proofs: list[str],
                  method: str, url: str, seen: ProofsSeen) -> None:
    """RFC 9449 §7.1: a token with cnf.jkt only with the DPoP scheme and a fresh proof of that
    key for this request and this token; a plain token only as a Bearer token."""
    bound = (claims.get("cnf") or {}).get("jkt")
    if bound is None:
        if scheme != "bearer":
            raise jwt.InvalidTokenError("a Bearer token sent as DPoP")
        return
    if scheme != "dpop" or len(proofs) != 1:
        raise jwt.InvalidTokenError("a DPoP-bound token needs the DPoP scheme and one proof")
    header = jwt.get_unverified_header(proofs[0])
    jwk = header.get("jwk") or {}
    if (header.get("typ") != "dpop+jwt" or header.get("alg") not in ("ES256", "EdDSA")
            or {"d", "p", "q", "k"} & jwk.keys()):
        raise jwt.InvalidTokenError("not a DPoP proof this API accepts")
    proof = jwt.decode(proofs[0], jwt.PyJWK(jwk, header["alg"]), algorithms=[header["alg"]])
    if (proof.get("htm") != method or proof.get("htu") != url
            or abs(time.time() - proof.get("iat", 0)) > 60
            or proof.get("ath") != _b64url(hashlib.sha256(token.encode()).digest())):
        raise jwt.InvalidTokenError("the proof is not for this request or this token")
    if _thumbprint(jwk) != bound:
        raise jwt.InvalidTokenError("the proof is made with another key than the token's")
    if not seen.first_use(bound, str(proof.get("jti"))):
        raise jwt.InvalidTokenError("the proof was used before")
