"""Dry run: what claims a set of attributes would produce, under the mapping in force and under a
proposed one, for every claims version, before anything is saved."""

from __future__ import annotations

from typing import Any

from bridge.claims import build_claims, schemas
from bridge.claims.mapping import ClaimMapping
from bridge.errors import BridgeError
from bridge.identity import Identity


def _outcome(version: int, identity: Identity, mapping: ClaimMapping) -> dict[str, Any]:
    try:
        return {"claims": build_claims(version, identity, mapping)}
    except BridgeError as error:
        return {"refused": {"code": error.code, "reason": error.public_detail,
                            "detail": error.log_detail}}


def preview(identity: Identity, in_force: ClaimMapping,
            proposed: ClaimMapping | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "attributes": {name: list(values) for name, values in sorted(identity.attributes.items())},
        "name_id": identity.name_id,
        "sub": identity.subject,
        "in_force": {f"v{v}": _outcome(v, identity, in_force) for v in schemas.VERSIONS},
    }
    if proposed is not None:
        result["proposed"] = {f"v{v}": _outcome(v, identity, proposed) for v in schemas.VERSIONS}
    return result
