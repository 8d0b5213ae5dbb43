"""Claims: from a neutral ``Identity`` to the versioned claim set a client receives.

Each version is a published contract: a JSON Schema file in ``schemas/`` served at
``/schemas/claims/v<N>.json``. No Flask, no SAML, no JWT here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge.claims import v1, v2
from bridge.claims.authn_levels import NONE as NO_AUTHN_CONTEXTS
from bridge.claims.authn_levels import AuthnContexts
from bridge.claims.mapping import ClaimMapping, apply_mapping
from bridge.identity import Identity


@dataclass(frozen=True)
class GroupBudget:
    max_count: int = 50
    max_bytes: int = 1024


def build_claims(version: int, identity: Identity, mapping: ClaimMapping,
                 contexts: AuthnContexts = NO_AUTHN_CONTEXTS) -> dict[str, Any]:
    """The full claims of ``identity`` in schema ``version``, stored with the login; ``acr``
    and ``amr`` read through the IdP's ``contexts``."""
    mapped = apply_mapping(mapping, identity)
    if version == 1:
        return v1.build(mapped, identity)
    if version in (2, 3):
        # Version 3 is version 2 with the cnf claim of DPoP-bound tokens, set when minted.
        return v2.build(mapped, identity, contexts, version)
    raise ValueError(f"unknown claims version {version}")


def token_claims(full: dict[str, Any], scope: str, budget: GroupBudget) -> dict[str, Any]:
    """What goes into one access token (without the registered claims)."""
    if full["ver"] in (2, 3):
        return v2.for_token(full, scope, max_groups=budget.max_count,
                            max_group_bytes=budget.max_bytes)
    return full  # version 1 is released whole, as published


def userinfo_claims(full: dict[str, Any], scope: str) -> dict[str, Any]:
    if full["ver"] in (2, 3):
        return v2.for_userinfo(full, scope)
    return full


# OpenID Connect standard claims an ID token may carry (OIDC Core §5.1), as released by scope.
_ID_TOKEN_CLAIMS = ("sub", "email", "email_verified", "name", "given_name", "family_name",
                    "acr", "amr")


def id_token_claims(full: dict[str, Any], scope: str) -> dict[str, Any]:
    released = userinfo_claims(full, scope)
    return {k: v for k, v in released.items() if k in _ID_TOKEN_CLAIMS}
