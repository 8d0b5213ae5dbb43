"""The SP's own SAML keys as ``saml/`` receives them: plain values, one that decrypts assertions
sent to us and one that signs our requests. They are made, stored, rotated and chosen by
``bridge.sp_keys``; this module knows no database.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DecryptionKey:
    id: str
    private_key_pem: str
    certificate_pem: str


@dataclass(frozen=True)
class SigningKey:
    """The key that signs our AuthnRequests and logout messages (RSA; RSA-SHA256 signatures)."""

    id: str
    private_key_pem: str
    certificate_pem: str
