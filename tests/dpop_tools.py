"""A DPoP client as an app would have it, built on joserfc (not the bridge's code): keys, proofs
(RFC 9449 §4) and their thumbprints, and proofs broken on purpose for the attack tests."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
import warnings
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey

from bridge.tokens.dpop import b64url


def ath(access_token: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(access_token.encode()).digest()
                                    ).rstrip(b"=").decode()


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


def unsigned_proof(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A proof with whatever header, claims and signature an attacker chooses."""
    def part(value: dict[str, Any]) -> str:
        return b64url(json.dumps(value).encode())

    return f"{part(header)}.{part(claims)}.{b64url(signature)}"
