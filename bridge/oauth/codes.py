"""Authorization codes: stored when a login completes (login/completions.py), exchanged once at
the token endpoint (grants/authorization_code.py), spent when the login they belong to ends."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Session

from bridge import audit
from bridge.store import direct
from bridge.store.guarded_writes import insert_when
from bridge.store.guarded_writes import parameters as guarded_parameters
from bridge.store.models import (
    AuditEvent,
    AuthorizationCode,
    RefreshFamily,
    RefreshToken,
)
from bridge.tokens.refresh import NewFamily

# Prepared once: the statements of the login path (see also tokens/refresh.py).
_GET_CODE = select(*AuthorizationCode.__table__.columns).where(
    AuthorizationCode.code_hash == bindparam("h"))
_USE_CODE = (update(AuthorizationCode)
             .where(AuthorizationCode.code_hash == bindparam("h"),
                    AuthorizationCode.used_at.is_(None))
             .values(used_at=bindparam("now")))
_LINK_CODE = (update(AuthorizationCode).where(AuthorizationCode.code_hash == bindparam("h"))
              .values(family_id=bindparam("family")))


_INSERT_FAMILY = insert(RefreshFamily)
_INSERT_TOKEN = insert(RefreshToken)
_INSERT_AUDIT = insert(AuditEvent)
_FAMILY_COLUMNS = ("id", "client_id", "subject", "idp_slug", "claims_json", "scope", "auth_time",
                   "session_index", "name_id", "created_at", "expires_at", "last_used_at",
                   "dpop_jkt")
_TOKEN_COLUMNS = ("token_hash", "family_id", "created_at")


# PostgreSQL: the code exchange's writes (use and link the code, start the login's family, audit
# it) as one statement, atomic without a transaction: one round trip. When another request used
# the code first, the UPDATE matches nothing and no insert happens.
_USED = (update(AuthorizationCode)
         .where(AuthorizationCode.code_hash == bindparam("h"),
                AuthorizationCode.used_at.is_(None))
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
    its audit event, all or nothing; False, with nothing written, when another request used the
    code first. One statement on PostgreSQL (safe outside a transaction); elsewhere, several in
    the caller's transaction."""
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


def find_code(connection: direct.Runner, code_hash: str) -> Any:
    """The code's row (its columns as attributes), or None."""
    return direct.first(connection, _GET_CODE, {"h": code_hash})


def use_code(connection: direct.Runner, code_hash: str, now: float) -> bool:
    """Mark the code used; False when another request used it first."""
    return direct.rowcount(connection, _USE_CODE, {"h": code_hash, "now": now}) == 1


def link_code(connection: direct.Runner, code_hash: str, family_id: str) -> None:
    """Remember the login a code started: a second use of the code revokes it."""
    direct.execute(connection, _LINK_CODE, {"h": code_hash, "family": family_id})


def spend_codes(session: Session, *conditions: ColumnElement[bool], now: float) -> None:
    """Mark the unexchanged authorization codes matching ``conditions`` used, in the caller's
    transaction: a login that is ended must not come back through a code issued just before."""
    session.execute(update(AuthorizationCode)
                    .where(AuthorizationCode.used_at.is_(None), *conditions)
                    .values(used_at=now))
