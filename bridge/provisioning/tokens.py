"""The bearer tokens an IdP's SCIM client presents: one in force per IdP, generated here, shown
once, stored as a SHA-256 hash. Issuing a new one rotates: the one before stops working at once.
Every issue and revocation is audited with who did it; every refused presentation too."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from bridge import audit
from bridge.errors import NotFound, ProvisioningUnauthorized
from bridge.store.models import ProvisioningToken
from bridge.tokens.secrets_util import constant_time_equal, new_secret, secret_hash

if TYPE_CHECKING:
    from bridge.services import Services

TOKEN_PREFIX = "scim_"  # recognisable in logs and secret scanners, never the secret itself


class ProvisioningTokens:
    def __init__(self, services: Services) -> None:
        self.services = services

    def _require_idp(self, slug: str) -> None:
        if slug not in self.services.idps:
            raise NotFound("idp_unknown", "No IdP is configured under this slug.")

    def issue(self, slug: str, *, actor: str,
              owner: tuple[str, str] | None = None) -> tuple[str, str]:
        """A new token for the IdP's SCIM client, revoking the one in force; (its id, the token:
        shown this once). ``owner``: the person whose admin power issued it (IdP slug,
        subject); deprovisioning them revokes it."""
        self._require_idp(slug)
        token_id, token = secrets.token_hex(8), TOKEN_PREFIX + new_secret()
        now = self.services.clock.now()
        with self.services.db.transaction() as session:
            rotated = _revoke_live(session, slug, now)
            session.add(ProvisioningToken(id=token_id, idp_slug=slug, token_hash=secret_hash(token),
                                          created_by=actor, created_at=now,
                                          owner_idp_slug=owner[0] if owner else None,
                                          owner_subject=owner[1] if owner else None))
            audit.record(session, at=now, event="scim_token_issued", outcome="success",
                         idp_slug=slug, detail={"actor": actor, "token_id": token_id,
                                                "revoked": rotated,
                                                "owner": list(owner) if owner else None})
        return token_id, token

    def revoke(self, slug: str, *, actor: str) -> None:
        """No SCIM token in force for the IdP any more: its SCIM client is refused. Also for an
        IdP that loads but is not served (a clash, a pin that does not sign its metadata):
        taking access away must not wait until it is mended, which would make a leaked token
        work again first."""
        if self.services.idps.source(slug) is None:
            raise NotFound("idp_unknown", "No IdP is configured under this slug.")
        now = self.services.clock.now()
        with self.services.db.transaction() as session:
            revoked = _revoke_live(session, slug, now)
            audit.record(session, at=now, event="scim_token_revoked", outcome="success",
                         idp_slug=slug, detail={"actor": actor, "revoked": revoked})

    def status(self, slug: str) -> dict[str, Any] | None:
        """The token in force (never its value), or None."""
        with self.services.db.transaction() as session:
            row = session.scalars(select(ProvisioningToken).where(
                ProvisioningToken.idp_slug == slug, ProvisioningToken.revoked_at.is_(None))).first()
            if row is None:
                return None
            return {"id": row.id, "created_by": row.created_by, "created_at": row.created_at,
                    "last_used_at": row.last_used_at}

    def authenticate(self, slug: str, authorization: str) -> str:
        """The id of the IdP's token in force presented as ``Authorization: Bearer ...``;
        ``ProvisioningUnauthorized`` for anything else (none, unknown, revoked, another IdP's)."""
        scheme, _, presented = authorization.partition(" ")
        presented = presented.strip()
        now = self.services.clock.now()
        # A token outlives an IdP deleted through the admin API: it opens nothing then.
        if (scheme.lower() == "bearer" and presented.startswith(TOKEN_PREFIX)
                and slug in self.services.idps):
            digest = secret_hash(presented)
            with self.services.db.transaction() as session:
                row = session.scalars(select(ProvisioningToken).where(
                    ProvisioningToken.token_hash == digest)).first()
                if (row is not None and row.revoked_at is None and row.idp_slug == slug
                        and constant_time_equal(row.token_hash, digest)):
                    row.last_used_at = now
                    return row.id
        reason = "missing" if not presented else "not this IdP's token in force"
        error = ProvisioningUnauthorized("scim_unauthorized",
                                         "A valid SCIM bearer token for this IdP is required.",
                                         log_detail={"reason": reason})
        audit.record_refusal(self.services, "scim", error, audit.Refusal(idp_slug=slug))
        raise error


def _revoke_live(session: Any, slug: str, now: float) -> list[str]:
    ids = list(session.scalars(select(ProvisioningToken.id).where(
        ProvisioningToken.idp_slug == slug, ProvisioningToken.revoked_at.is_(None))))
    if ids:
        session.execute(update(ProvisioningToken).where(ProvisioningToken.id.in_(ids))
                        .values(revoked_at=now))
    return ids
