"""A DPoP client as an app would have it, built on joserfc (not the bridge's code): keys, proofs
(RFC 9449 §4) and their thumbprints, and proofs broken on purpose for the attack tests."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
import warnings
from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient
from joserfc import jws, jwt
from joserfc.jwk import ECKey, OKPKey
from werkzeug.test import TestResponse

from tests.leaks import remember


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def ath(access_token: str) -> str:
    return b64url(hashlib.sha256(access_token.encode()).digest())


class DpopKey:
    """A client's proof key: ES256 (P-256) or Ed25519, under the alg name ``alg``."""

    def __init__(self, alg: str = "ES256") -> None:
        self.alg = alg
        self.key: ECKey | OKPKey = (OKPKey.generate_key("Ed25519") if alg in ("EdDSA", "Ed25519")
                                    else ECKey.generate_key("P-256"))

    @property
    def public_jwk(self) -> dict[str, Any]:
        return dict(self.key.as_dict(private=False))

    @property
    def jkt(self) -> str:
        return str(self.key.thumbprint())

    def proof(self, method: str, url: str, *, nonce: str | None = None,
              access_token: str | None = None, iat: float | None = None,
              jti: str | None = None, header: dict[str, Any] | None = None,
              claims: dict[str, Any] | None = None) -> str:
        body: dict[str, Any] = {"jti": jti or secrets.token_urlsafe(16), "htm": method,
                                "htu": url, "iat": int(time.time() if iat is None else iat)}
        if nonce is not None:
            body["nonce"] = nonce
        if access_token is not None:
            body["ath"] = ath(access_token)
        body.update(claims or {})
        protected = {"typ": "dpop+jwt", "alg": self.alg, "jwk": self.public_jwk, **(header or {})}
        with warnings.catch_warnings():
            # joserfc warns that RFC 9864 deprecates the name EdDSA; clients still send it.
            warnings.simplefilter("ignore")
            return str(jwt.encode(protected, body, self.key, algorithms=[self.alg]))

    def signed_claims(self, claims: bytes) -> str:
        """A proof whose claims are exactly the bytes ``claims``, which need not be JSON that
        an encoder would write: signed with this key, as anyone can."""
        protected = {"typ": "dpop+jwt", "alg": self.alg, "jwk": self.public_jwk}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return str(jws.serialize_compact(protected, claims, self.key, algorithms=[self.alg]))


def unsigned_proof(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A proof with whatever header, claims and signature an attacker chooses."""
    def part(value: dict[str, Any]) -> str:
        return b64url(json.dumps(value).encode())

    return f"{part(header)}.{part(claims)}.{b64url(signature)}"


class DpopApp:
    """A DPoP client app against the bridge's test client: it proves possession of ``key`` on
    every request, keeps the nonce it is handed and, like oauth4webapi and oidc-client-ts,
    retries once when asked for a nonce (RFC 9449 §8)."""

    def __init__(self, http: FlaskClient, key: DpopKey | None = None,
                 base_url: str = "https://bridge.example.com") -> None:
        self.http = http
        self.key = key or DpopKey()
        self.base_url = base_url
        self.nonce: str | None = None

    def _send(self, method: str, path: str, make: Callable[[str], TestResponse],
              access_token: str | None = None) -> TestResponse:
        for _ in range(2):
            proof = self.key.proof(method, self.base_url + path, nonce=self.nonce,
                                   access_token=access_token)
            response = make(proof)
            self.nonce = response.headers.get("DPoP-Nonce", self.nonce)
            body = response.get_json(silent=True) or {}
            if body.get("error") != "use_dpop_nonce":
                break
        remember(body.get("access_token"), body.get("refresh_token"), body.get("id_token"))
        return response

    def token(self, form: dict[str, str], auth: tuple[str, str] | None = None) -> TestResponse:
        return self._send("POST", "/token",
                          lambda proof: self.http.post("/token", data=form, auth=auth,
                                                       headers={"DPoP": proof}))

    def refresh(self, refresh_token: str, client_id: str = "demo",
                auth: tuple[str, str] | None = None) -> TestResponse:
        return self.token({"grant_type": "refresh_token", "refresh_token": refresh_token,
                           "client_id": client_id}, auth)

    def userinfo(self, access_token: str) -> TestResponse:
        return self._send("GET", "/userinfo", lambda proof: self.http.get(
            "/userinfo", headers={"Authorization": f"DPoP {access_token}", "DPoP": proof}),
            access_token=access_token)
