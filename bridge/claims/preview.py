"""Dry run: what claims a set of attributes would produce, under the mapping in force and under a
proposed one, for every claims version, before anything is saved."""

from __future__ import annotations

from typing import Any

from bridge.claims import build_claims, schemas
from bridge.claims.authn_levels import NONE as NO_AUTHN_CONTEXTS
from bridge.claims.authn_levels import AuthnContexts
from bridge.claims.mapping import ClaimMapping
from bridge.errors import BridgeError
from bridge.identity import Identity


def _outcome(version: int, identity: Identity, mapping: ClaimMapping,
             contexts: AuthnContexts) -> dict[str, Any]:
    try:
        return {"claims": build_claims(version, identity, mapping, contexts)}
    except BridgeError as error:
        return {"refused": {"code": error.code, "reason": error.public_detail,
                            "detail": error.log_detail}}


def preview(identity: Identity, in_force: ClaimMapping, proposed: ClaimMapping | None = None,
            contexts: AuthnContexts = NO_AUTHN_CONTEXTS) -> dict[str, Any]:
    """``contexts``: the IdP's authentication levels, which name ``acr`` as a login would."""
    result: dict[str, Any] = {
        "attributes": {name: list(values) for name, values in sorted(identity.attributes.items())},
        "name_id": identity.name_id,
        "sub": identity.subject,
        "in_force": {f"v{v}": _outcome(v, identity, in_force, contexts) for v in schemas.VERSIONS},
    }
    if proposed is not None:
        result["proposed"] = {f"v{v}": _outcome(v, identity, proposed, contexts) for v in schemas.VERSIONS}
    return result
