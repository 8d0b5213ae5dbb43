"""Authorization codes: stored when a login completes (login/completions.py), exchanged once at
the token endpoint (grants/authorization_code.py), spent when the login they belong to ends."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Double,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import BindParameter

from bridge import audit
from bridge.store import direct
from bridge.store.guarded_writes import insert_when
from bridge.store.guarded_writes import parameters as guarded_parameters
from bridge.store.models import (
    AuditEvent,
    AuthorizationCode,
    DeprovisionedSubject,
    RefreshFamily,
    RefreshToken,
)
from bridge.tokens.refresh import NewFamily

# Prepared once: the statements of the login path (see also tokens/refresh.py).
# Whether the code's person has been deprovisioned by their IdP since (oauth/deprovisioned.py).
# A deprovisioning spends the person's codes, but on PostgreSQL a login that completes while it
# runs began its statement before the refusal committed: its code escapes, and is refused here.
_PERSON_DEPROVISIONED = DeprovisionedSubject.of(AuthorizationCode.idp_slug,
                                                AuthorizationCode.subject)
_GET_CODE = select(*AuthorizationCode.__table__.columns,
                   _PERSON_DEPROVISIONED.label("person_deprovisioned")).where(
    AuthorizationCode.code_hash == bindparam("h"))
# The write that uses a code checks again what the grant's checks read earlier: the code unused,
# unexpired by a clock read just before the write, its person not deprovisioned (a deprovisioning
# or an ending may have run in between).
_USABLE = (AuthorizationCode.code_hash == bindparam("h"), AuthorizationCode.used_at.is_(None),
           AuthorizationCode.expires_at > bindparam("now"), ~_PERSON_DEPROVISIONED)
_USE_CODE = update(AuthorizationCode).where(*_USABLE).values(used_at=bindparam("now"))
_LINK_CODE = (update(AuthorizationCode).where(AuthorizationCode.code_hash == bindparam("h"))
              .values(family_id=bindparam("family")))


_INSERT_FAMILY = insert(RefreshFamily)
_INSERT_TOKEN = insert(RefreshToken)
_INSERT_AUDIT = insert(AuditEvent)
_FAMILY_COLUMNS = ("id", "client_id", "subject", "idp_slug", "claims_json", "scope", "auth_time",
                   "session_index", "name_id", "created_at", "expires_at", "last_used_at",
                   "dpop_jkt")
_TOKEN_COLUMNS = ("token_hash", "family_id", "created_at")
# An exchange's audit event: these from the request, the IdP and subject from the code.
_AUDIT_FROM_REQUEST = tuple(name for name in audit.EVENT_COLUMNS
                            if name not in ("idp_slug", "subject"))


# PostgreSQL: the code exchange's writes (use and link the code, start the login's family, audit
# it) as one statement, atomic without a transaction: one round trip. When another request used
# the code first, the UPDATE matches nothing and no insert happens.
_USED = (update(AuthorizationCode)
         .where(*_USABLE)
         .values(used_at=bindparam("now"), family_id=bindparam("login"))
         .returning(AuthorizationCode.code_hash)
         .cte("used"))
_REDEEM_IN_ONE_STATEMENT = select(func.count()).select_from(_USED).add_cte(
    insert_when(_USED, RefreshFamily, _FAMILY_COLUMNS, "family_"),
    insert_when(_USED, RefreshToken, _TOKEN_COLUMNS, "token_"),
    insert_when(_USED, AuditEvent, audit.EVENT_COLUMNS, "audit_"))


def redeem_code(connection: direct.Runner, code_hash: str, now: float, family: NewFamily,
                audit_row: dict[str, Any]) -> bool:
    """Use the code and store the login it starts (family, first token, link to the code) and
    its audit event, all or nothing; False, with nothing written, when the code is no longer
    usable at ``now`` (another request used it, it expired, its person was deprovisioned). One
    statement on PostgreSQL (safe outside a transaction); elsewhere, several in the caller's
    transaction."""
    if connection.dialect.name == "postgresql":
        parameters: dict[str, Any] = {"h": code_hash, "now": now,
                                      "login": family.rotation.family.id}
        parameters.update(guarded_parameters("family_", _FAMILY_COLUMNS, family.family_row))
        parameters.update(guarded_parameters("token_", _TOKEN_COLUMNS, family.token_row))
        parameters.update(guarded_parameters("audit_", audit.EVENT_COLUMNS, audit_row))
        return direct.first(connection, _REDEEM_IN_ONE_STATEMENT, parameters)[0] == 1
    if not use_code(connection, code_hash, now):
        return False
    direct.execute(connection, _INSERT_FAMILY, family.family_row)
    direct.execute(connection, _INSERT_TOKEN, family.token_row)
    link_code(connection, code_hash, family.rotation.family.id)
    direct.execute(connection, _INSERT_AUDIT, audit_row)
    return True


# PostgreSQL: an exchange that passes every check of the grant, done in one statement. The
# UPDATE uses the code only if it is unused, unexpired, the client's, asked for with this
# redirect_uri, bound to this PKCE challenge (or to none, when no verifier came) and to no DPoP
# key or this one, of a person not deprovisioned; the login's family, first token and audit
# event are inserted from what it returns. A code that fails any check is left as it was and
# the grant checks it one by one (``find_code``), for the refusal's own error; so these
# conditions may be stricter than the grant's checks, never looser.
_EXCHANGED = (update(AuthorizationCode)
              .where(AuthorizationCode.code_hash == bindparam("h"),
                     AuthorizationCode.used_at.is_(None),
                     AuthorizationCode.client_id == bindparam("client"),
                     AuthorizationCode.expires_at > bindparam("now"),
                     AuthorizationCode.redirect_uri == bindparam("redirect_uri"),
                     AuthorizationCode.code_challenge.is_not_distinct_from(
                         bindparam("challenge", type_=AuthorizationCode.code_challenge.type)),
                     or_(AuthorizationCode.dpop_jkt.is_(None),
                         AuthorizationCode.dpop_jkt == bindparam("proof_jkt")),
                     ~_PERSON_DEPROVISIONED)
              .values(used_at=bindparam("now"), family_id=bindparam("login"))
              .returning(AuthorizationCode.idp_slug, AuthorizationCode.subject,
                         AuthorizationCode.claims_json, AuthorizationCode.auth_time,
                         AuthorizationCode.scope, AuthorizationCode.nonce,
                         AuthorizationCode.session_index, AuthorizationCode.name_id,
                         AuthorizationCode.session_not_on_or_after)
              .cte("exchanged"))
_FAMILY_END: BindParameter[float] = bindparam("family_expires_at", type_=Double())
_EXCHANGE_IN_ONE_STATEMENT = select(
    _EXCHANGED.c.idp_slug, _EXCHANGED.c.subject, _EXCHANGED.c.claims_json,
    _EXCHANGED.c.auth_time, _EXCHANGED.c.scope, _EXCHANGED.c.nonce,
).add_cte(
    insert_when(_EXCHANGED, RefreshFamily, _FAMILY_COLUMNS, "family_", from_guard={
        "subject": _EXCHANGED.c.subject, "idp_slug": _EXCHANGED.c.idp_slug,
        "claims_json": _EXCHANGED.c.claims_json, "scope": _EXCHANGED.c.scope,
        "auth_time": _EXCHANGED.c.auth_time, "session_index": _EXCHANGED.c.session_index,
        "name_id": _EXCHANGED.c.name_id,
        # A login ends with the IdP's session, if that ends sooner (as new_family is given).
        "expires_at": func.least(_FAMILY_END, func.coalesce(
            _EXCHANGED.c.session_not_on_or_after, _FAMILY_END))}),
    insert_when(_EXCHANGED, RefreshToken, _TOKEN_COLUMNS, "token_"),
    insert_when(_EXCHANGED, AuditEvent, audit.EVENT_COLUMNS, "audit_", from_guard={
        "idp_slug": _EXCHANGED.c.idp_slug, "subject": _EXCHANGED.c.subject}))


@dataclass(frozen=True)
class Exchange:
    """An exchange's request: what the code must match, and what its login is given."""

    code_hash: str
    client_id: str
    redirect_uri: str
    # RFC 7636: the challenge of the verifier sent, or None when none was.
    challenge: str | None
    # RFC 9449: the key of the DPoP proof sent, or None.
    proof_jkt: str | None
    # The family's own values: its ID, end (before the IdP session's), DPoP binding, and
    # first token.
    family_id: str
    family_expires_at: float
    family_dpop_jkt: str | None
    token_hash: str


def exchange_in_one_statement(connection: direct.Runner, exchange: Exchange, now: float,
                              audit_row: dict[str, Any]) -> Any:
    """PostgreSQL only: use the code and start its login if the code passes every check of the
    grant; the code's row (idp_slug, subject, claims_json, auth_time, scope, nonce), or None
    with nothing written when it does not (or another request used it first)."""
    family_row = {"id": exchange.family_id, "client_id": exchange.client_id, "created_at": now,
                  "last_used_at": now, "dpop_jkt": exchange.family_dpop_jkt}
    parameters: dict[str, Any] = {
        "h": exchange.code_hash, "client": exchange.client_id, "now": now,
        "redirect_uri": exchange.redirect_uri, "challenge": exchange.challenge,
        "proof_jkt": exchange.proof_jkt, "login": exchange.family_id,
        "family_expires_at": exchange.family_expires_at}
    parameters.update(guarded_parameters("family_", tuple(family_row), family_row))
    parameters.update(guarded_parameters("token_", _TOKEN_COLUMNS, {
        "token_hash": exchange.token_hash, "family_id": exchange.family_id, "created_at": now}))
    parameters.update(guarded_parameters("audit_", _AUDIT_FROM_REQUEST, audit_row))
    return direct.first(connection, _EXCHANGE_IN_ONE_STATEMENT, parameters)


def find_code(connection: direct.Runner, code_hash: str) -> Any:
    """The code's row (its columns as attributes, and ``person_deprovisioned``), or None."""
    return direct.first(connection, _GET_CODE, {"h": code_hash})


def use_code(connection: direct.Runner, code_hash: str, now: float) -> bool:
    """Mark the code used; False when it is no longer usable at ``now`` (used, expired, or of a
    deprovisioned person)."""
    return direct.rowcount(connection, _USE_CODE, {"h": code_hash, "now": now}) == 1


def link_code(connection: direct.Runner, code_hash: str, family_id: str) -> None:
    """Remember the login a code started: a second use of the code revokes it."""
    direct.execute(connection, _LINK_CODE, {"h": code_hash, "family": family_id})


def spend_codes(session: Session, *conditions: ColumnElement[bool], now: float) -> None:
    """Mark the unexchanged authorization codes matching ``conditions`` used, in the caller's
    transaction: a login that is ended must not come back through a code issued just before.

    Every unused code, however long expired: an expired one cannot be exchanged only if the
    exchange and this ending agree on the time, and they may not (an exchange that read its
    clock, then waited for the write lock this transaction holds; nodes' clocks). Decision 32."""
    session.execute(update(AuthorizationCode)
                    .where(AuthorizationCode.used_at.is_(None), *conditions)
                    .values(used_at=now))
