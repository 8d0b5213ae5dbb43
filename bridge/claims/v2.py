"""Claims version 2: designed for the APIs that consume it (the reasoning for each claim is in the
``description`` fields of ``schemas/v2.json``).

The full claim set is built at login and stored with the session; every token is cut from it by
the scopes granted (OIDC §5.4: ``email``, ``profile``, ``groups``) and by the group budget, so
tokens stay small and never grow without bound. ``/userinfo`` serves the same claims uncut.
"""

from __future__ import annotations

import json
from typing import Any

from bridge.claims.authn_levels import AuthnContexts
from bridge.claims.mapping import MappedClaims
from bridge.claims.v1 import checked_email, checked_text, invalid
from bridge.identity import Identity

SCOPED = {
    "email": ("email", "email_verified"),
    "profile": ("name", "given_name", "family_name"),
    "groups": ("groups", "groups_overage"),
}
MAX_ROLES = 50


def build(mapped: MappedClaims, identity: Identity, contexts: AuthnContexts,
          version: int = 2) -> dict[str, Any]:
    """The claims of version 2, or of version 3 (the same, with ``cnf`` added to bound tokens
    when they are minted)."""
    claims: dict[str, Any] = {"sub": identity.subject, "idp": identity.idp_slug, "ver": version}
    email = checked_email(mapped, identity, version)
    if email is not None:
        claims["email"] = email
        if mapped.email_verified:
            claims["email_verified"] = True
    for claim in ("name", "given_name", "family_name", "tenant"):
        value = checked_text(getattr(mapped, claim), claim, identity, version)
        if value is not None:
            claims[claim] = value
    for group in mapped.groups:
        checked_text(group, "groups", identity, version)
    for role in mapped.roles:
        checked_text(role, "roles", identity, version)
    if len(mapped.roles) > MAX_ROLES:
        raise invalid(identity, "roles", f"more than {MAX_ROLES} roles", version)
    claims["roles"] = list(mapped.roles)
    claims["groups"] = list(mapped.groups)
    if mapped.groups_incomplete:
        claims["groups_overage"] = True
    acr, amr = contexts.acr_amr(identity.authn_context_class)
    if acr is not None:
        claims["acr"] = checked_text(acr, "acr", identity, version)
    if amr:
        claims["amr"] = list(amr)
    return claims


def for_token(full: dict[str, Any], scope: str, *, max_groups: int,
              max_group_bytes: int) -> dict[str, Any]:
    """Cut the stored claims down to what this token's scopes release, within the group budget."""
    granted = set(scope.split())
    claims = {k: v for k, v in full.items()
              if not any(k in names and s not in granted for s, names in SCOPED.items())}
    groups = claims.get("groups")
    if groups is not None:
        size = len(json.dumps(groups, separators=(",", ":")).encode())
        if len(groups) > max_groups or size > max_group_bytes:
            # The Entra ID pattern: say the list is elsewhere instead of growing the token.
            del claims["groups"]
            claims["groups_overage"] = True
        elif not groups:
            del claims["groups"]
    return claims


def for_userinfo(full: dict[str, Any], scope: str) -> dict[str, Any]:
    granted = set(scope.split())
    return {k: v for k, v in full.items()
            if not any(k in names and s not in granted for s, names in SCOPED.items())}
