"""Refresh token families (RFC 9700 §4.14.2: rotation with reuse detection).

One family per login. Every use marks the presented token used and stores its successor in the
same transaction, with the family row locked, so a rotation happens fully or not at all and never
races a revocation. Presenting a used token again revokes the whole family, except within the
client's reuse interval: a browser with several tabs, or a client whose response got lost, retries
with the same token and gets the *same* successor back.

The successor is not random but derived: HMAC(key, presented token). Nothing but hashes is
stored, a retry recomputes the one successor, and two distinct valid successors of one token
cannot exist by construction.
"""

from __future__ import annotations

import base64
import hmac
import uuid
from dataclasses import dataclass

from sqlalchemy import (
    ColumnElement,
    Double,
    Integer,
    String,
    bindparam,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.orm import Session

from bridge.errors import GrantOfDeprovisionedPerson, TokenError
from bridge.store import direct
from bridge.store.models import DeprovisionedSubject, RefreshFamily, RefreshToken
from bridge.tokens.secrets_util import new_secret, secret_hash


@dataclass(frozen=True)
class RefreshPolicy:
    idle_timeout_seconds: int = 0
    reuse_interval_seconds: int = 0


@dataclass(frozen=True)
class Rotation:
    family: FamilyView
    refresh_token: str
    retried: bool = False


class ReuseDetected(TokenError):
    """A used token came back: the caller must revoke ``family_id`` (see ``revoke_family``) in a
    transaction of its own, since the current one is rolled back."""

    def __init__(self, family_id: str) -> None:
        super().__init__("invalid_grant", "The refresh token has already been used.",
                         code="refresh_token_reused", log_detail={"family": family_id})
        self.family_id = family_id


def successor_of(token: str, key: bytes) -> str:
    # One call into OpenSSL (hmac.new builds an object around it first: four calls of Python).
    digest = hmac.digest(key, token.encode("utf-8"), "sha256")
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class NewFamily:
    """A login's family and first token, chosen but not yet stored."""

    rotation: Rotation
    family_row: dict[str, object]
    token_row: dict[str, object]


def new_family_id() -> str:
    return uuid.uuid4().hex


def new_family(
    *,
    now: float,
    client_id: str,
    subject: str,
    idp_slug: str,
    claims_json: str,
    scope: str,
    auth_time: int,
    session_index: str | None,
    name_id: str | None,
    expires_at: float,
    dpop_jkt: str | None = None,
) -> NewFamily:
    family = FamilyView(new_family_id(), client_id, claims_json, scope, auth_time)
    token = new_secret()
    return NewFamily(
        rotation=Rotation(family=family, refresh_token=token),
        family_row={
            "id": family.id, "client_id": client_id, "subject": subject, "idp_slug": idp_slug,
            "claims_json": claims_json, "scope": scope, "auth_time": auth_time,
            "session_index": session_index, "name_id": name_id, "created_at": now,
            "expires_at": expires_at, "last_used_at": now, "dpop_jkt": dpop_jkt},
        token_row={"token_hash": secret_hash(token), "family_id": family.id, "created_at": now})


def store_family(connection: direct.Runner, new: NewFamily) -> Rotation:
    """Store a family made by ``new_family`` with its first token, in the caller's transaction."""
    direct.execute(connection, _INSERT_FAMILY, new.family_row)
    direct.execute(connection, _INSERT_TOKEN, new.token_row)
    return new.rotation


@dataclass(frozen=True)
class FamilyView:
    """What a rotation needs to know about its family (read with the family row locked)."""

    id: str
    client_id: str
    claims_json: str
    scope: str
    auth_time: int


# Prepared once: the refresh path is the hottest write path, so its statements are built at import
# and only their parameters change per call.
_TOKEN_USED_AT = select(RefreshToken.used_at).where(RefreshToken.token_hash == bindparam("h"))
# The presented token's family, found and locked in one round trip (FOR UPDATE OF the family
# only: the token row is marked used below, guarded by ``used_at IS NULL``).
# Whether the family's person has been deprovisioned by their IdP since: a deprovisioning revokes
# the person's families, but on PostgreSQL one started by a login that completed while it ran can
# escape it (oauth/deprovisioned.py); it rotates no more, and counts as ended wherever a login's
# liveness is asked (oauth/live_logins.py, oauth/introspection.py).
FAMILY_PERSON_DEPROVISIONED = DeprovisionedSubject.of(RefreshFamily.idp_slug,
                                                      RefreshFamily.subject)
_LOCK_FAMILY_OF_TOKEN = (
    select(RefreshFamily.id, RefreshFamily.client_id, RefreshFamily.claims_json,
           RefreshFamily.scope, RefreshFamily.auth_time, RefreshFamily.revoked_at,
           RefreshFamily.expires_at, RefreshFamily.last_used_at, RefreshFamily.created_at,
           RefreshFamily.dpop_jkt, RefreshFamily.idp_slug,
           FAMILY_PERSON_DEPROVISIONED.label("person_deprovisioned"))
    .join(RefreshToken, RefreshToken.family_id == RefreshFamily.id)
    .where(RefreshToken.token_hash == bindparam("h"))
    .with_for_update(of=RefreshFamily))
_MARK_USED = (update(RefreshToken)
              .where(RefreshToken.token_hash == bindparam("h"), RefreshToken.used_at.is_(None))
              .values(used_at=bindparam("now")))
_INSERT_TOKEN = insert(RefreshToken)
_INSERT_FAMILY = insert(RefreshFamily)
_TOUCH_FAMILY = (update(RefreshFamily).where(RefreshFamily.id == bindparam("family"))
                 .values(last_used_at=bindparam("now")))


# PostgreSQL: a plain rotation (the token unused, its family live, the client's own and its
# person not deprovisioned) as one
# statement, so that it costs one round trip and, outside a transaction, commits by itself. FOR
# UPDATE OF both rows: a racer that waited for the lock sees the winner's ``used_at`` (PostgreSQL
# rechecks the WHERE on the newest version of locked rows) and finds nothing. Every other case
# (unknown, refused, used before) returns no row and goes the step-by-step way below.
_ROTATE_IN_ONE_STATEMENT = text("""
WITH found AS (
    SELECT f.id, f.client_id, f.claims_json, f.scope, f.auth_time
    FROM refresh_tokens AS t JOIN refresh_families AS f ON f.id = t.family_id
    WHERE t.token_hash = :h AND t.used_at IS NULL AND f.client_id = :client_id
      AND f.revoked_at IS NULL AND f.expires_at > :now
      AND (:idle = 0 OR :now - COALESCE(f.last_used_at, f.created_at) <= :idle)
      AND (f.dpop_jkt IS NULL OR f.dpop_jkt = :jkt)
      AND NOT EXISTS (SELECT 1 FROM deprovisioned_subjects AS d
                      WHERE d.idp_slug = f.idp_slug AND d.subject = f.subject)
    FOR UPDATE OF f, t
), marked AS (
    UPDATE refresh_tokens SET used_at = :now
    WHERE token_hash = :h AND used_at IS NULL AND EXISTS (SELECT 1 FROM found)
    RETURNING family_id
), successor AS (
    INSERT INTO refresh_tokens (token_hash, family_id, created_at)
    SELECT :successor_hash, family_id, :now FROM marked
), touched AS (
    UPDATE refresh_families SET last_used_at = :now
    WHERE id IN (SELECT family_id FROM marked)
)
SELECT found.* FROM found JOIN marked ON marked.family_id = found.id
""").bindparams(bindparam("h", type_=String), bindparam("successor_hash", type_=String),
                bindparam("client_id", type_=String), bindparam("now", type_=Double),
                bindparam("idle", type_=Integer), bindparam("jkt", type_=String))


def rotates_in_one_statement(dialect: str) -> bool:
    return dialect == "postgresql"


def rotate_at_once(connection: direct.Runner, *, token: str, client_id: str, now: float,
                   policy: RefreshPolicy, successor_key: bytes,
                   dpop_jkt: str | None = None) -> Rotation | None:
    """A plain rotation in one statement (PostgreSQL): the successor, or None when the token is
    anything but unused and valid, or bound to a key other than ``dpop_jkt`` (``rotate`` then
    tells why, or recognizes a retry). Safe outside a transaction: the statement is all or
    nothing on its own."""
    if not rotates_in_one_statement(connection.dialect.name):
        return None
    successor = successor_of(token, successor_key)
    row = direct.first(connection, _ROTATE_IN_ONE_STATEMENT, {
        "h": secret_hash(token), "successor_hash": secret_hash(successor),
        "client_id": client_id, "now": now, "idle": policy.idle_timeout_seconds,
        "jkt": dpop_jkt})
    if row is None:
        return None
    return Rotation(family=FamilyView(row.id, row.client_id, row.claims_json, row.scope,
                                      row.auth_time),
                    refresh_token=successor)


def rotate(connection: direct.Runner, *, token: str, client_id: str, now: float,
           policy: RefreshPolicy, successor_key: bytes, dpop_jkt: str | None = None) -> Rotation:
    """Use ``token`` once: return its successor, or raise ``TokenError`` (``ReuseDetected`` when
    the family must be revoked). ``dpop_jkt`` is the key of the request's DPoP proof, if any: a
    family bound to a key rotates only with proofs of that key. Runs in the caller's
    transaction."""
    at_once = rotate_at_once(connection, token=token, client_id=client_id, now=now,
                             policy=policy, successor_key=successor_key, dpop_jkt=dpop_jkt)
    if at_once is not None:
        return at_once
    # Not a plain rotation: find out why step by step. Each statement below reads afresh (READ
    # COMMITTED) and the family lock is held to the end of the caller's transaction.
    token_hash = secret_hash(token)
    # FOR UPDATE serializes rotation and revocation of one family on PostgreSQL; SQLite
    # transactions are already serialized (BEGIN IMMEDIATE).
    row = direct.first(connection, _LOCK_FAMILY_OF_TOKEN, {"h": token_hash})
    if row is None:
        raise TokenError("invalid_grant", "The refresh token is not valid.",
                         code="refresh_token_unknown")
    if row.client_id != client_id:
        # RFC 6749 §6: the token must have been issued to the authenticated client. Say no more.
        raise TokenError("invalid_grant", "The refresh token is not valid.",
                         code="refresh_token_client_mismatch")
    # RFC 9449 §5: checked before anything is written or counted as reuse.
    check_key(row.dpop_jkt, dpop_jkt)
    if row.revoked_at is not None:
        raise TokenError("invalid_grant", "The refresh token has been revoked.",
                         code="refresh_token_revoked")
    if row.person_deprovisioned:
        raise GrantOfDeprovisionedPerson(row.idp_slug)
    if row.expires_at <= now:
        raise TokenError("invalid_grant", "The refresh token has expired.",
                         code="refresh_token_expired")
    last_used = row.last_used_at or row.created_at
    if policy.idle_timeout_seconds and now - last_used > policy.idle_timeout_seconds:
        raise TokenError("invalid_grant", "The session was idle for too long.",
                         code="refresh_token_idle",
                         log_detail={"idle_seconds": round(now - last_used)})
    family = FamilyView(row.id, row.client_id, row.claims_json, row.scope, row.auth_time)

    successor = successor_of(token, successor_key)
    if direct.rowcount(connection, _MARK_USED, {"h": token_hash, "now": now}) == 1:
        direct.execute(connection, _INSERT_TOKEN, {"token_hash": secret_hash(successor),
                                                   "family_id": family.id, "created_at": now})
        direct.execute(connection, _TOUCH_FAMILY, {"family": family.id, "now": now})
        return Rotation(family=family, refresh_token=successor)

    # Used before. Read again now that the family lock is held: the winner has committed.
    used_at = _used_at(connection, token_hash)
    interval = policy.reuse_interval_seconds
    # Racers that started before the winner committed see now <= used_at: within any interval
    # they are retries; with none (0), every second use is a reuse.
    if interval > 0 and used_at is not None and now - used_at <= interval:
        successor_used = _used_at(connection, secret_hash(successor))
        # Only while the successor itself is still unused: once the client has moved on, an
        # old token coming back is a leak, not a retry.
        if successor_used is None:
            direct.execute(connection, _TOUCH_FAMILY, {"family": family.id, "now": now})
            return Rotation(family=family, refresh_token=successor, retried=True)
    # RFC 9700 §4.14.2: a rotated token presented again means it leaked (or the legitimate client
    # lost a race it cannot win); either way the family can no longer be trusted.
    raise ReuseDetected(family.id)


def _used_at(connection: direct.Runner, token_hash: str) -> float | None:
    row = direct.first(connection, _TOKEN_USED_AT, {"h": token_hash})
    return None if row is None else row.used_at


def check_key(bound_jkt: str | None, proven_jkt: str | None) -> None:
    """Refuse a token of a login bound to a DPoP key (``bound_jkt``) unless the request proved
    that key: whoever copied the token, without the key, can neither use it nor end the login
    (refresh, revocation, logout) of the one who holds both."""
    if bound_jkt is not None and bound_jkt != proven_jkt:
        raise TokenError("invalid_grant", "The refresh token is bound to another DPoP key.",
                         code="refresh_token_key_mismatch",
                         log_detail={"proof": "none" if proven_jkt is None else "another key"})


def revoke_family(session: Session, family_id: str, *, now: float, reason: str) -> bool:
    family = _locked_family(session, family_id)
    if family is None or family.revoked_at is not None:
        return False
    family.revoked_at = now
    family.revoked_reason = reason
    return True


def revoke_families(session: Session, *conditions: ColumnElement[bool], now: float,
                    reason: str) -> int:
    """End every live login matching ``conditions`` (each family locked first); return how many."""
    families = list(session.scalars(
        select(RefreshFamily).where(RefreshFamily.revoked_at.is_(None), *conditions)
        .with_for_update()))
    for family in families:
        family.revoked_at = now
        family.revoked_reason = reason
    return len(families)


def family_of(session: Session, token: str) -> str | None:
    return session.scalar(select(RefreshToken.family_id).where(
        RefreshToken.token_hash == secret_hash(token)))


def _locked_family(session: Session, family_id: str) -> RefreshFamily | None:
    # FOR UPDATE serializes rotation and revocation of one family on PostgreSQL; SQLite
    # transactions are already serialized (BEGIN IMMEDIATE).
    return session.scalars(
        select(RefreshFamily).where(RefreshFamily.id == family_id).with_for_update()
    ).first()
