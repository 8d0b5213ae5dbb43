"""Opaque credentials: random, URL-safe, stored only as their SHA-256; and sealed values (an
HMAC under a key derived from the key-encryption key) that travel through a browser."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets


def new_secret() -> str:
    """256 bits of randomness, URL-safe."""
    return secrets.token_urlsafe(32)


def secret_hash(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def pkce_s256(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL(SHA256(ASCII(code_verifier))) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def constant_time_equal(a: str, b: str) -> bool:
    """Compared as UTF-8 bytes: ``hmac.compare_digest`` refuses two strings with any non-ASCII
    character. A lone surrogate (which no secret of ours holds) passes as its own bytes."""
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"),
                               b.encode("utf-8", "surrogatepass"))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def seal(key: bytes, payload: dict[str, object]) -> str:
    """``payload`` as JSON, readable but not forgeable: base64url(JSON) "." base64url(HMAC)."""
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8"))
    return body + "." + _b64(hmac.new(key, body.encode("ascii"), hashlib.sha256).digest())


def unseal(key: bytes, sealed: str) -> dict[str, object] | None:
    """The payload of ``seal(key, ...)``; None for anything else."""
    body, _, mac = sealed.partition(".")
    expected = _b64(hmac.new(key, body.encode("ascii", "replace"), hashlib.sha256).digest())
    if not body or not hmac.compare_digest(mac.encode("ascii", "replace"), expected.encode()):
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (ValueError, binascii.Error):
        return None
    return value if isinstance(value, dict) else None
