"""Access tokens: JWTs per RFC 9068 (``typ: at+jwt``), asymmetric, with ``kid``.

This is the only place in the bridge that calls ``jwt.encode``.
"""

from __future__ import annotations

import secrets
from typing import Any

import jwt

from bridge.clock import Clock
from bridge.tokens.keys import ActiveKey

ACCESS_TOKEN_TYPE = "at+jwt"


def issue_access_token(
    claims: dict[str, Any],
    *,
    issuer: str,
    audience: str,
    client_id: str,
    auth_time: int,
    scope: str,
    ttl: int,
    key: ActiveKey,
    clock: Clock,
) -> str:
    now = int(clock.now())
    # Registered claims come last: nothing derived from an IdP can ever override them.
    payload: dict[str, Any] = {
        **claims,
        "iss": issuer,
        "aud": audience,
        "exp": now + ttl,
        "iat": now,
        "jti": secrets.token_urlsafe(16),
        "client_id": client_id,
        "auth_time": auth_time,
    }
    if scope:
        payload["scope"] = scope
    return jwt.encode(payload, key.private_key, algorithm=key.alg,
                      headers={"kid": key.kid, "typ": ACCESS_TOKEN_TYPE})
