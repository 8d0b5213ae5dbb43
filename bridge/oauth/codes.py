"""Authorization codes: stored when a login completes (login/completions.py), exchanged once at
the token endpoint (grants/authorization_code.py), spent when the login they belong to ends."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, bindparam, insert, select, update
from sqlalchemy.orm import Session

from bridge.store.models import AuthorizationCode

# Prepared once: the statements of the login path (see also tokens/refresh.py).
_INSERT_CODE = insert(AuthorizationCode)
_GET_CODE = select(*AuthorizationCode.__table__.columns).where(
    AuthorizationCode.code_hash == bindparam("h"))
_USE_CODE = (update(AuthorizationCode)
             .where(AuthorizationCode.code_hash == bindparam("h"),
                    AuthorizationCode.used_at.is_(None))
             .values(used_at=bindparam("now")))
_LINK_CODE = (update(AuthorizationCode).where(AuthorizationCode.code_hash == bindparam("h"))
              .values(family_id=bindparam("family")))


def store_code(connection: Connection, values: dict[str, Any]) -> None:
    connection.execute(_INSERT_CODE, values)


def find_code(connection: Connection, code_hash: str) -> Row[Any] | None:
    return connection.execute(_GET_CODE, {"h": code_hash}).first()


def use_code(connection: Connection, code_hash: str, now: float) -> bool:
    """Mark the code used; False when another request used it first."""
    return connection.execute(_USE_CODE, {"h": code_hash, "now": now}).rowcount == 1


def link_code(connection: Connection, code_hash: str, family_id: str) -> None:
    """Remember the login a code started: a second use of the code revokes it."""
    connection.execute(_LINK_CODE, {"h": code_hash, "family": family_id})


def spend_codes(session: Session, *conditions: ColumnElement[bool], now: float) -> None:
    """Mark the unexchanged authorization codes matching ``conditions`` used, in the caller's
    transaction: a login that is ended must not come back through a code issued just before."""
    session.execute(update(AuthorizationCode)
                    .where(AuthorizationCode.used_at.is_(None), *conditions)
                    .values(used_at=now))
