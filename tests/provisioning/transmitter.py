"""A Security Event Token transmitter, as an IdP's Shared Signals transmitter would be: its own
key pair, its JWKS, and SETs (RFC 8417) signed with PyJWT."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
RISC = "https://schemas.openid.net/secevent/risc/event-type/"
ISSUER = "https://idp.example.org/ssf"
RECEIVER = "https://bridge.example.com/events/dev"


class Transmitter:
    def __init__(self, *, kid: str = "transmitter-1", alg: str = "RS256") -> None:
        self.kid, self.alg = kid, alg
        self.key = (ec.generate_private_key(ec.SECP256R1()) if alg == "ES256"
                    else rsa.generate_private_key(public_exponent=65537, key_size=2048))

    def jwks(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.alg)
        public = json.loads(algorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**public, "kid": self.kid, "use": "sig", "alg": self.alg}]}

    def settings_toml(self, **overrides: str) -> str:
        values = {"issuer": ISSUER, "jwks": json.dumps(self.jwks()), **overrides}
        inner = ", ".join(f"{key} = {json.dumps(value)}" for key, value in values.items())
        return f"security_events = {{ {inner} }}"

    def claims(self, events: dict[str, Any], **overrides: Any) -> dict[str, Any]:
        return {"iss": ISSUER, "aud": RECEIVER, "iat": int(time.time()),
                "jti": secrets.token_hex(12), "events": events, **overrides}

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(claims, self.key, algorithm=self.alg,
                          headers={"typ": "secevent+jwt", "kid": self.kid, **header})

    def set(self, events: dict[str, Any], **overrides: Any) -> str:
        return self.sign(self.claims(events, **overrides))


def user(name_id: str) -> dict[str, str]:
    return {"format": "opaque", "id": name_id}


def session_of(name_id: str, session_index: str) -> dict[str, Any]:
    return {"format": "complex", "user": user(name_id),
            "session": {"format": "opaque", "id": session_index}}
