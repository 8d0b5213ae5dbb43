"""Claims version 1: ``sub``, ``email``, ``name``, ``groups``, ``idp``, ``ver``.

Values are type-checked here so that an IdP can never put something into a token that its schema
does not allow; a value that does not fit is refused with the attribute's name, never truncated.
"""

from __future__ import annotations

import re
from typing import Any

from bridge.claims import attributes as names
from bridge.errors import SamlRejected
from bridge.identity import Identity

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
MAX_GROUPS = 200


def _first(
    attributes: dict[str, tuple[str, ...]], candidates: tuple[str, ...]
) -> tuple[str, tuple[str, ...]] | None:
    for name in candidates:
        values = attributes.get(name)
        if values:
            return name, values
    return None


def _invalid(identity: Identity, attribute: str, why: str) -> SamlRejected:
    return SamlRejected(
        "claims_attribute_invalid",
        f"The IdP attribute {attribute!r} does not fit claims version 1: {why}.",
        log_detail={"idp": identity.idp_slug, "attribute": attribute, "why": why},
    )


def build(identity: Identity) -> dict[str, Any]:
    """The version-1 claims of ``identity`` (without the registered JWT claims)."""
    attributes = identity.attributes
    claims: dict[str, Any] = {"sub": identity.subject, "idp": identity.idp_slug, "ver": 1}

    found = _first(attributes, names.EMAIL)
    if found:
        attribute, values = found
        email = values[0]
        if len(email) > 254 or not _EMAIL.match(email):
            raise _invalid(identity, attribute, "not an e-mail address")
        claims["email"] = email

    found = _first(attributes, names.DISPLAY_NAME)
    if found:
        claims["name"] = found[1][0]
    else:
        given = _first(attributes, names.GIVEN_NAME)
        family = _first(attributes, names.FAMILY_NAME)
        parts = [p[1][0] for p in (given, family) if p]
        if parts:
            claims["name"] = " ".join(parts)
    if "name" in claims and len(claims["name"]) > 256:
        raise _invalid(identity, "name", "longer than 256 characters")

    groups: list[str] = []
    found = _first(attributes, names.GROUPS)
    if found:
        attribute, values = found
        seen: set[str] = set()
        for group in values:
            if len(group) > 256:
                raise _invalid(identity, attribute, "a group name is longer than 256 characters")
            if group not in seen:
                seen.add(group)
                groups.append(group)
        if len(groups) > MAX_GROUPS:
            raise _invalid(identity, attribute, f"more than {MAX_GROUPS} groups")
    claims["groups"] = groups
    return claims
