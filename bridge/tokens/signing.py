"""The one place that encodes and decodes JWTs.

Verification never lets the token choose how it is verified: the key is looked up by ``kid`` among
our own published keys, the algorithm must be that key's algorithm, and ``iss``, ``aud``, ``exp``
and ``typ`` are always checked (RFC 8725 §3.1, §3.11).
"""

from __future__ import annotations

from typing import Any

import jwt

from bridge.errors import TokenError
from bridge.tokens.keys import ActiveKey, KeyRing


def sign(payload: dict[str, Any], key: ActiveKey, *, typ: str) -> str:
    return jwt.encode(payload, key.private_key, algorithm=key.alg,
                      headers={"kid": key.kid, "typ": typ})


def verify(token: str, keys: KeyRing, *, issuer: str, audience: str | None, typ: str,
           leeway: int = 0) -> dict[str, Any]:
    """Decode ``token`` or raise ``TokenError('invalid_token')``."""

    def refuse(why: str) -> TokenError:
        return TokenError("invalid_token", "The access token is not valid.", code="token_invalid",
                          log_detail={"why": why})

    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise refuse("not a JWT") from None
    if header.get("typ") != typ:
        raise refuse(f"typ {header.get('typ')!r}")
    public = keys.public_key(str(header.get("kid", "")))
    if public is None:
        raise refuse("unknown kid")
    alg, key = public
    if header.get("alg") != alg:
        raise refuse(f"alg {header.get('alg')!r} is not the key's {alg}")
    # PyJWT would read the system clock; times are checked below against the injected one.
    options = {"require": ["exp", "iat", "iss", "aud", "sub"], "verify_aud": audience is not None,
               "verify_exp": False, "verify_iat": False, "verify_nbf": False}
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=[alg], issuer=issuer, audience=audience,
            options=options)  # type: ignore[arg-type]
    except jwt.PyJWTError as error:
        raise refuse(type(error).__name__) from None
    now = keys.clock.now()
    times = {name: claims.get(name) for name in ("exp", "iat", "nbf")}
    if any(value is not None and (isinstance(value, bool) or not isinstance(value, int | float))
           for value in times.values()):
        raise refuse("a time claim is not a number")
    if float(claims["exp"]) <= now - leeway:  # RFC 7519 §4.1.4
        raise refuse("ExpiredSignatureError")
    if float(claims["iat"]) > now + leeway:
        raise refuse("ImmatureSignatureError (iat)")
    if times["nbf"] is not None and float(claims["nbf"]) > now + leeway:  # RFC 7519 §4.1.5
        raise refuse("ImmatureSignatureError (nbf)")
    return claims


def peek_client_id(token: str) -> str | None:
    """The unverified ``client_id`` claim, only to choose the audience to verify against."""
    try:
        value = jwt.decode(token, options={"verify_signature": False}).get("client_id")
    except jwt.PyJWTError:
        return None
    return value if isinstance(value, str) else None
