"""The one place that encodes and decodes JWTs.

Verification never lets the token choose how it is verified: the key is looked up by ``kid`` among
our own published keys, the algorithm must be that key's algorithm, and ``iss``, ``aud``, ``exp``
and ``typ`` are always checked (RFC 8725 §3.1, §3.11).
"""

from __future__ import annotations

import base64
import functools
import json
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from bridge.errors import TokenError
from bridge.tokens.keys import ActiveKey, KeyRing

_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
# Made once: json.dumps builds an encoder per call whenever it is given an argument of its own.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


def sign(payload: dict[str, Any], key: ActiveKey, *, typ: str) -> str:
    """A compact JWS (RFC 7515 §7.1) of ``payload`` under ``key``.

    Encoded here rather than by ``jwt.encode``, which makes the same bytes (its header's keys
    sorted, both parts as compact JSON) at about 15 µs more per token, paid by every refresh
    and twice by every login; PyJWT still verifies every token (``verify`` below), and the tests
    compare the two encodings (docs/decisions/0031-jws-encoding.md)."""
    body = _b64(_COMPACT_JSON.encode(payload).encode())
    signing_input = _header(key.alg, key.kid, typ) + b"." + body
    return (signing_input + b"." + _b64(_signature(key, signing_input))).decode("ascii")


@functools.lru_cache(maxsize=64)  # a few keys (rotation keeps two or three) times a few typs
def _header(alg: str, kid: str, typ: str) -> bytes:
    return _b64(json.dumps({"alg": alg, "kid": kid, "typ": typ}, separators=(",", ":")).encode())


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _signature(key: ActiveKey, signing_input: bytes) -> bytes:
    """RFC 7518 §3: the signature of ``signing_input`` in the form JWS gives ``key.alg``."""
    private = key.private_key
    if key.alg == "ES256" and isinstance(private, ec.EllipticCurvePrivateKey) \
            and isinstance(private.curve, ec.SECP256R1):
        r, s = decode_dss_signature(private.sign(signing_input, _ECDSA_SHA256))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")  # §3.4: R and S, 32 bytes each
    if key.alg == "RS256" and isinstance(private, rsa.RSAPrivateKey):
        return private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    if key.alg == "EdDSA" and isinstance(private, ed25519.Ed25519PrivateKey):
        return private.sign(signing_input)  # RFC 8037 §3.1
    raise ValueError(f"a {type(private).__name__} cannot sign {key.alg}")


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


class ForeignTokenRefused(Exception):
    """A JWT signed by another party refused; ``reason`` says which check it failed:
    "signature", "audience", "issuer" or "invalid" (anything else)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def verify_foreign(token: str, key: Any, *, alg: str, issuer: str, audience: str,
                   required: list[str]) -> dict[str, Any]:
    """Decode a JWT another party signed (a Security Event Token) with ``key`` under ``alg``,
    both chosen by the caller from its configuration, never by the token. The times are the
    caller's to check, against the injected clock."""
    options = {"require": required, "verify_exp": False, "verify_iat": False,
               "verify_nbf": False}
    try:
        claims: dict[str, Any] = jwt.decode(token, key, algorithms=[alg], issuer=issuer,
                                            audience=audience, options=options)  # type: ignore[arg-type]
        return claims
    except jwt.InvalidSignatureError:
        raise ForeignTokenRefused("signature") from None
    except jwt.InvalidAudienceError:
        raise ForeignTokenRefused("audience") from None
    except jwt.InvalidIssuerError:
        raise ForeignTokenRefused("issuer") from None
    except jwt.PyJWTError as error:
        raise ForeignTokenRefused("invalid", str(error)) from None
