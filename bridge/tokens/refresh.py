"""Refresh token families (RFC 9700 §4.14.2: rotation with reuse detection).

One family per login. Every use marks the presented token used and mints its successor in the same
transaction, with the family row locked, so a rotation either happens fully or not at all and
never races a revocation. Presenting a used token again revokes the whole family.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bridge.errors import TokenError
from bridge.store.models import RefreshFamily, RefreshToken
from bridge.tokens.secrets_util import new_secret, secret_hash


@dataclass(frozen=True)
class Rotation:
    family: RefreshFamily
    refresh_token: str


def start_family(
    session: Session,
    *,
    now: float,
    client_id: str,
    subject: str,
    idp_slug: str,
    claims_json: str,
    scope: str,
    auth_time: int,
    session_index: str | None,
    expires_at: float,
) -> Rotation:
    family = RefreshFamily(
        id=uuid.uuid4().hex,
        client_id=client_id,
        subject=subject,
        idp_slug=idp_slug,
        claims_json=claims_json,
        scope=scope,
        auth_time=auth_time,
        session_index=session_index,
        created_at=now,
        expires_at=expires_at,
    )
    session.add(family)
    token = new_secret()
    session.add(RefreshToken(token_hash=secret_hash(token), family_id=family.id, created_at=now))
    return Rotation(family=family, refresh_token=token)


def rotate(session: Session, *, token: str, client_id: str, now: float) -> Rotation:
    """Use ``token`` once: return its successor, or raise ``TokenError`` (and revoke on reuse)."""
    found = session.execute(
        select(RefreshToken.family_id, RefreshToken.used_at).where(
            RefreshToken.token_hash == secret_hash(token))
    ).first()
    if found is None:
        raise TokenError("invalid_grant", "The refresh token is not valid.", code="refresh_token_unknown")
    family = _locked_family(session, found.family_id)
    if family is None or family.client_id != client_id:
        # RFC 6749 §6: the token must have been issued to the authenticated client. Say no more.
        raise TokenError("invalid_grant", "The refresh token is not valid.",
                         code="refresh_token_client_mismatch")
    if family.revoked_at is not None:
        raise TokenError("invalid_grant", "The refresh token has been revoked.",
                         code="refresh_token_revoked")
    if family.expires_at <= now:
        raise TokenError("invalid_grant", "The refresh token has expired.",
                         code="refresh_token_expired")
    marked = session.execute(
        update(RefreshToken)
        .where(RefreshToken.token_hash == secret_hash(token), RefreshToken.used_at.is_(None))
        .values(used_at=now)
    )
    if marked.rowcount != 1:  # type: ignore[attr-defined]
        # RFC 9700 §4.14.2: a rotated token presented again means it leaked (or the legitimate
        # client lost a race it cannot win); either way the family can no longer be trusted.
        # The caller revokes it in a transaction of its own, since this one is rolled back.
        raise ReuseDetected(family.id)
    successor = new_secret()
    session.add(RefreshToken(token_hash=secret_hash(successor), family_id=family.id, created_at=now))
    return Rotation(family=family, refresh_token=successor)


class ReuseDetected(TokenError):
    """A used token came back: the caller must revoke ``family_id`` (see ``revoke_family``)."""

    def __init__(self, family_id: str) -> None:
        super().__init__("invalid_grant", "The refresh token has already been used.",
                         code="refresh_token_reused", log_detail={"family": family_id})
        self.family_id = family_id


def revoke_family(session: Session, family_id: str, *, now: float, reason: str) -> bool:
    family = _locked_family(session, family_id)
    if family is None or family.revoked_at is not None:
        return False
    family.revoked_at = now
    family.revoked_reason = reason
    return True


def family_of(session: Session, token: str) -> str | None:
    return session.scalar(select(RefreshToken.family_id).where(
        RefreshToken.token_hash == secret_hash(token)))


def _locked_family(session: Session, family_id: str) -> RefreshFamily | None:
    # FOR UPDATE serializes rotation and revocation of one family on PostgreSQL; SQLite
    # transactions are already serialized (BEGIN IMMEDIATE).
    return session.scalars(
        select(RefreshFamily).where(RefreshFamily.id == family_id).with_for_update()
    ).first()
