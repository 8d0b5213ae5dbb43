"""IDs for our LogoutRequests that only we can make (SAML Core §1.3.4: random, and here also
keyed), so that an IdP's LogoutResponse shows it answers one of ours, with no record kept of every
request sent."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from bridge.tokens.secrets_util import constant_time_equal


def logout_request_id(key: bytes, slug: str) -> str:
    """A new ID for our LogoutRequest to IdP ``slug``."""
    nonce = secrets.token_hex(12)
    return f"_{nonce}{_mac(key, slug, nonce)}"


def is_our_logout_request(key: bytes, slug: str, request_id: str | None) -> bool:
    if not request_id or len(request_id) != 57 or not request_id.startswith("_"):
        return False
    nonce, mac = request_id[1:25], request_id[25:]
    return constant_time_equal(_mac(key, slug, nonce), mac)


def _mac(key: bytes, slug: str, nonce: str) -> str:
    return hmac.new(key, f"{slug}\x00{nonce}".encode(), hashlib.sha256).hexdigest()[:32]
