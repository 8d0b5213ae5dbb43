"""Claims version 1: ``sub``, ``email``, ``name``, ``groups``, ``idp``, ``ver``.

Values are type-checked here so that an IdP can never put something into a token that its schema
does not allow; a value that does not fit is refused with the claim's name, never truncated.
"""

from __future__ import annotations

import re
from typing import Any

from bridge.claims.mapping import MappedClaims
from bridge.errors import SamlRejected
from bridge.identity import Identity

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\Z")  # \Z: $ would allow a final newline
MAX_GROUPS = 200
MAX_TEXT = 256


def invalid(identity: Identity, claim: str, why: str, version: int) -> SamlRejected:
    return SamlRejected(
        "claims_attribute_invalid",
        f"The IdP's value for '{claim}' does not fit claims version {version}: {why}.",
        log_detail={"idp": identity.idp_slug, "claim": claim, "why": why},
    )


def checked_email(mapped: MappedClaims, identity: Identity, version: int) -> str | None:
    if mapped.email is not None and (len(mapped.email) > 254 or not EMAIL.match(mapped.email)):
        raise invalid(identity, "email", "not an e-mail address", version)
    return mapped.email


def checked_text(value: str | None, claim: str, identity: Identity, version: int) -> str | None:
    if value is not None and len(value) > MAX_TEXT:
        raise invalid(identity, claim, f"longer than {MAX_TEXT} characters", version)
    return value


def build(mapped: MappedClaims, identity: Identity) -> dict[str, Any]:
    """The version-1 claims (without the registered JWT claims)."""
    claims: dict[str, Any] = {"sub": identity.subject, "idp": identity.idp_slug, "ver": 1}
    email = checked_email(mapped, identity, 1)
    if email is not None:
        claims["email"] = email
    name = mapped.name
    if name is None:
        parts = [p for p in (mapped.given_name, mapped.family_name) if p]
        name = " ".join(parts) if parts else None
    name = checked_text(name, "name", identity, 1)
    if name is not None:
        claims["name"] = name
    for group in mapped.groups:
        checked_text(group, "groups", identity, 1)
    if len(mapped.groups) > MAX_GROUPS:
        raise invalid(identity, "groups", f"more than {MAX_GROUPS} groups", 1)
    claims["groups"] = list(mapped.groups)
    return claims
