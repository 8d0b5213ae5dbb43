"""Ending logins: RFC 7009 revocation by the client, and every login of a subject or an IdP at an
operator's word (`bridge revoke`, the admin API)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from bridge import audit
from bridge.config import ClientConfig
from bridge.oauth.codes import spend_codes
from bridge.store.models import AuthorizationCode, RefreshFamily
from bridge.tokens import refresh as refresh_tokens

if TYPE_CHECKING:
    from bridge.services import Services


class Revocation:
    def __init__(self, services: Services) -> None:
        self.services = services

    def revoke(self, client: ClientConfig, token: str, dpop_jkt: str | None = None) -> None:
        """RFC 7009: revoke the family of a refresh token; unknown tokens are not an error. A
        login bound to a DPoP key is revoked only with a proof of that key (``dpop_jkt``)."""
        now = self.services.clock.now()
        with self.services.db.transaction() as session:
            family_id = refresh_tokens.family_of(session, token)
            if family_id is None:
                return
            family = session.get(RefreshFamily, family_id)
            if family is None or family.client_id != client.client_id:
                return
            refresh_tokens.check_key(family.dpop_jkt, dpop_jkt)
            if refresh_tokens.revoke_family(session, family_id, now=now, reason="revoked"):
                audit.record(session, at=now, event="revoke", outcome="success",
                             client_id=client.client_id, subject=family.subject,
                             idp_slug=family.idp_slug)

    def revoke_all(self, *, subject: str | None = None, idp_slug: str | None = None,
                   actor: str, reason: str = "admin") -> int:
        """Revoke every live login of a subject (an offboarded employee) or of an IdP (a
        compromised one); audited with who did it. Returns how many logins were ended."""
        if not subject and not idp_slug:
            raise ValueError("name a subject or an IdP")
        now = self.services.clock.now()
        conditions = [RefreshFamily.expires_at > now]
        codes = []
        if subject:
            conditions.append(RefreshFamily.subject == subject)
            codes.append(AuthorizationCode.subject == subject)
        if idp_slug:
            conditions.append(RefreshFamily.idp_slug == idp_slug)
            codes.append(AuthorizationCode.idp_slug == idp_slug)
        with self.services.db.transaction() as session:
            ended = end_logins(session, families=conditions, codes=codes, now=now, reason=reason)
            audit.record(session, at=now, event="revoke_all", outcome="success",
                         subject=subject, idp_slug=idp_slug,
                         detail={"actor": actor, "families": ended, "reason": reason})
        return ended

    def refresh_token_client(self, token: str) -> str | None:
        """The client a refresh token was issued to, or None: only to tell whose login a cookie
        holds, never as a check of the token itself."""
        with self.services.db.transaction() as session:
            family_id = refresh_tokens.family_of(session, token)
            family = session.get(RefreshFamily, family_id) if family_id else None
            return family.client_id if family is not None else None


def end_logins(session: Session, *, families: Sequence[ColumnElement[bool]],
               codes: Sequence[ColumnElement[bool]], now: float, reason: str) -> int:
    """End the logins matching ``families`` and spend the unexchanged codes matching ``codes``,
    in the caller's transaction; how many logins ended. The codes go first: an exchange in flight
    holds its code's row, so spending waits for it, and the revocation that follows sees the
    login that exchange started (in the other order it would survive, on PostgreSQL)."""
    spend_codes(session, *codes, now=now)
    return refresh_tokens.revoke_families(session, *families, now=now, reason=reason)


def end_persons_logins(session: Session, *, idp_slug: str, subject: str, now: float,
                       reason: str) -> int:
    """``end_logins`` for every live login of one person of one IdP."""
    return end_logins(
        session,
        families=[RefreshFamily.idp_slug == idp_slug, RefreshFamily.subject == subject,
                  RefreshFamily.expires_at > now],
        codes=[AuthorizationCode.idp_slug == idp_slug, AuthorizationCode.subject == subject],
        now=now, reason=reason)
