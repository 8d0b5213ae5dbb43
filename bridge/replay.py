"""Once-only use of what an IdP sends: every assertion and logout message enters the replay cache
(``consumed_assertions``), whose primary key (IdP, ID) makes acceptance once-only across every
process and node; a second use fails with an IntegrityError."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, bindparam, func, insert, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session
from sqlalchemy.sql import Insert

from bridge import audit
from bridge.errors import SamlRejected
from bridge.saml import response as saml_response
from bridge.store import direct
from bridge.store.db import Database
from bridge.store.guarded_writes import insert_when
from bridge.store.guarded_writes import parameters as guarded_parameters
from bridge.store.models import AuthnRequestRecord, Base, ConsumedAssertion

_INSERT_ASSERTION = insert(ConsumedAssertion)
_CONSUME_REQUEST = (update(AuthnRequestRecord)
                    .where(AuthnRequestRecord.id == bindparam("request"),
                           AuthnRequestRecord.consumed_at.is_(None))
                    .values(consumed_at=bindparam("now")))
_ASSERTION_COLUMNS = ("idp_entity_id", "assertion_id", "expires_at")
# The rows inserted with a login request's use: a model and the values of its columns.
Rows = Sequence[tuple[type[Base], Mapping[str, Any]]]


def remember_message(session: Session | Connection, *, idp_entity_id: str, message_id: str,
                     expires_at: float) -> None:
    """Enter an IdP's message ID in the replay cache, in the caller's transaction; the row lives
    until the message could no longer be valid."""
    session.execute(_INSERT_ASSERTION, {"idp_entity_id": idp_entity_id, "assertion_id": message_id,
                                        "expires_at": expires_at})


def use_assertion(connection: direct.Runner, verified: saml_response.VerifiedAssertion) -> None:
    direct.execute(connection, _INSERT_ASSERTION, _assertion_row(verified))


@dataclass(frozen=True)
class Unless:
    """What refuses a request's use: a query that finds a row (of one non-null column, the
    refusal's reason), and its parameters; on PostgreSQL the query is part of the statement
    that uses the request."""

    query: Select[Any]
    parameters: Mapping[str, Any]


def consume(connection: direct.Runner, request_id: str, verified: saml_response.VerifiedAssertion,
            now: float, *, unless: Unless, also: Rows = ()) -> Any:
    """Use the outstanding request and the assertion, once each, and insert the rows ``also``
    (the login's code and audit event), all or nothing, unless ``unless`` finds a row:
    ``use_request``."""
    return use_request(connection, request_id, _assertion_row(verified), now, unless=unless,
                       also=also)


def use_request(connection: direct.Runner, request_id: str, assertion: Mapping[str, Any],
                now: float, *, unless: Unless, also: Rows = ()) -> Any:
    """Use the outstanding request and enter ``assertion`` (``idp_entity_id``, ``assertion_id``,
    ``expires_at``) in the replay cache, once each, and insert the rows ``also``, all or
    nothing, unless ``unless`` finds a row: then return its reason, having written nothing
    (None when the request was used). One statement on PostgreSQL, atomic outside a transaction
    (``Database.single_statement()``); elsewhere several, in the caller's transaction. A
    request used before raises ``SamlRejected``, an assertion used before ``IntegrityError``;
    either way nothing is written."""
    if connection.dialect.name == "postgresql":
        values = {"request": request_id, "now": now, **unless.parameters}
        values.update(guarded_parameters("assertion_", _ASSERTION_COLUMNS, assertion))
        for model, row in also:
            values.update(guarded_parameters(_prefix(model), tuple(row), row))
        statement = _consuming_in_one_statement(
            unless.query, tuple((model, tuple(row)) for model, row in also))
        used_rows, refused = direct.first(connection, statement, values)
        if refused is not None:
            return refused
        used = used_rows == 1
    else:
        refusing = direct.first(connection, unless.query, unless.parameters)
        if refusing is not None:
            return refusing[0]
        used = direct.rowcount(connection, _CONSUME_REQUEST, {"request": request_id, "now": now}) == 1
        if used:
            direct.execute(connection, _INSERT_ASSERTION, assertion)
            for model, row in also:
                direct.execute(connection, _insert(model), row)
    if not used:
        raise SamlRejected("saml_replay", "This login response has already been used.")
    return None


def _assertion_row(verified: saml_response.VerifiedAssertion) -> dict[str, Any]:
    return {"idp_entity_id": verified.idp_entity_id, "assertion_id": verified.assertion_id,
            "expires_at": verified.expires_at}


def _prefix(model: type[Base]) -> str:
    return f"{model.__tablename__}_"


@functools.cache
def _insert(model: type[Base]) -> Insert:
    return insert(model)


# A few shapes (a login's code and audit event; nothing more), each built and compiled once.
@functools.lru_cache(maxsize=16)
def _consuming_in_one_statement(unless: Select[Any],
                                shapes: tuple[tuple[type[Base], tuple[str, ...]], ...]) -> Select[Any]:
    """The request's use as an UPDATE that returns it, and the assertion and each row inserted
    from what it returned: nothing is written when the request was used already or ``unless``
    finds a row (the statement returns its reason), and an assertion used before fails the
    whole statement on the replay cache's primary key. Every part sees one snapshot."""
    used = (_CONSUME_REQUEST.where(~unless.exists())
            .returning(AuthnRequestRecord.id).cte("request_used"))
    inserts = [insert_when(used, ConsumedAssertion, _ASSERTION_COLUMNS, "assertion_")]
    inserts += [insert_when(used, model, columns, _prefix(model)) for model, columns in shapes]
    used_rows = select(func.count()).select_from(used).scalar_subquery()
    return select(used_rows, unless.scalar_subquery()).add_cte(*inserts)


def use_unsolicited(db: Database, verified: saml_response.VerifiedAssertion, *, now: float,
                    event: str, outcome: str, client_id: str, subject: str) -> None:
    """Use an assertion that answers no request of ours (IdP-initiated login, bearer grant) once,
    and audit it, in one transaction."""
    try:
        with db.driver_transaction() as connection:
            use_assertion(connection, verified)
            audit.record(connection, at=now, event=event, outcome=outcome,
                         idp_slug=verified.idp_slug, client_id=client_id, subject=subject)
    except sa_exc.IntegrityError:
        raise SamlRejected("saml_replay", "This assertion has already been used.") from None
